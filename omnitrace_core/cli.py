"""Command-line interface: trace a file of samples in the official OmniTrace JSON format.

    python -m omnitrace_core trace --questions examples/question_audio.json \\
        --model Qwen/Qwen2.5-Omni-7B --method attmean --output out.jsonl

Each sample's outcome is appended to a JSON Lines file as soon as it finishes, so an interrupted
run resumes where it stopped. ``accelerate launch -m omnitrace_core trace ...`` (or ``torchrun``,
or ``mpirun``) splits the samples across processes, one output file per process.

The run loop, :func:`run_batch`, takes a :class:`~omnitrace_core.Tracer` (or a function that
loads one), so it can be driven from Python as well.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .config import AUDIO_UNITS, CurationConfig, GenerationConfig, SourceConfig
from .defaults import DEFAULT_MODEL_DIR
from .errors import MediaError, OmniTraceError
from .media import MediaLimits
from .run_settings import differences, record_settings, run_settings

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_CRASH = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: Fields of a sample that are inputs, not metadata: they are not copied to output records.
INPUT_FIELDS = ("question", "prompt")
#: Fields every output record has; a sample's metadata field of the same name is stored as
#: ``sample_<name>`` instead.
RECORD_FIELDS = ("key", "id", "status", "settings", "result", "error_type", "error", "traceback")
_MEDIA_KINDS = ("image", "audio", "video")

#: Environment variables naming this process's index and the process count, in the order they
#: are read (the order accelerate itself uses): torchrun / ``accelerate launch`` (multi-GPU and
#: multi-node) set RANK and WORLD_SIZE; MPI launchers (``accelerate launch`` multi-CPU runs
#: through mpirun) set the MPICH/Intel MPI, Open MPI or MVAPICH names.
RANK_ENV = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
WORLD_SIZE_ENV = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
LOCAL_RANK_ENV = ("LOCAL_RANK", "MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_RANK")

_SAMPLE_FORMAT = (
    'a JSON list of samples, each like {"id": 0, "prompt": "...", "question": '
    '[{"text": "..."}, {"image": "media/x.jpg"}, {"audio": "a.wav", "transcript": "a.srt"}, {"video": "v.mp4"}], '
    '...metadata} ("transcript" is optional)'
)


class UsageError(OmniTraceError):
    """Bad command-line usage or an unreadable questions/output file (exit code 2)."""


class RunInterrupted(KeyboardInterrupt):
    """A KeyboardInterrupt that stopped :func:`run_batch`, carrying the counts so far as ``summary``."""

    def __init__(self, summary: "RunSummary") -> None:
        super().__init__("interrupted")
        self.summary = summary


# --------------------------------------------------------------------------------------------
# Pieces of a run: questions, media bases, shards, the output file
# --------------------------------------------------------------------------------------------
def load_questions(path: str | Path) -> list[Any]:
    """Read a questions file in the official format; raise UsageError naming the file if it is unusable."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"questions file '{path}' does not exist; pass {_SAMPLE_FORMAT}")
    if path.is_dir():
        raise UsageError(f"questions file '{path}' is a directory; pass a JSON file holding {_SAMPLE_FORMAT}")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"questions file '{path}' cannot be read ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"questions file '{path}' is not UTF-8 text ({exc}); pass {_SAMPLE_FORMAT}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"questions file '{path}' is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            f"pass {_SAMPLE_FORMAT}") from exc
    if not isinstance(data, list):
        kind = {dict: "an object", str: "a string"}.get(type(data), type(data).__name__)
        raise UsageError(f"questions file '{path}' holds {kind}, not a list; pass {_SAMPLE_FORMAT}")
    return data


def media_bases(questions: str | Path, media_root: str | Path | None = None) -> list[Path]:
    """Folders relative media paths are looked up in, in order.

    ``media_root`` (when given), then the questions file's folder, then that folder's parent
    (the official example files name media ``examples/media/x.jpg`` relative to the folder above
    their own). The first folder where the file exists wins.
    """
    folder = Path(questions).expanduser().resolve().parent
    bases = [Path(media_root).expanduser()] if media_root is not None else []
    bases += [folder, folder.parent]
    unique: list[Path] = []
    for base in bases:
        if base not in unique:
            unique.append(base)
    return unique


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n), 0-based, with 0 <= i < n; UsageError otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match:
        raise UsageError(f"--shard must look like I/N (0-based shard I of N, e.g. 0/4); got '{text}'")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise UsageError(f"--shard {text}: the shard count N must be at least 1")
    if not 0 <= index < count:
        raise UsageError(f"--shard {text}: the shard index I must satisfy 0 <= I < N (0-based), so 0..{count - 1}")
    return index, count


def _env_int(names: Sequence[str], environ: Mapping[str, str]) -> tuple[str, int] | None:
    for name in names:
        value = environ.get(name)
        if value is not None and value.strip() != "":
            try:
                return name, int(value)
            except ValueError:
                raise UsageError(f"environment variable {name}={value!r} is not an integer") from None
    return None


def shard_from_env(environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """(process index, process count) from a distributed launcher's environment; (0, 1) when none."""
    environ = os.environ if environ is None else environ
    size = _env_int(WORLD_SIZE_ENV, environ)
    if size is None or size[1] <= 1:
        return 0, 1
    rank = _env_int(RANK_ENV, environ)
    if rank is None:
        raise UsageError(f"{size[0]}={size[1]} is set but no process index is ({', '.join(RANK_ENV)}); "
                         "pass --shard I/N")
    if not 0 <= rank[1] < size[1]:
        raise UsageError(f"{rank[0]}={rank[1]} is outside 0..{size[1] - 1} ({size[0]}={size[1]}); pass --shard I/N")
    return rank[1], size[1]


def shard_output_path(output: str | Path, index: int, count: int) -> Path:
    """The file one shard writes: ``out.jsonl`` itself for a single shard, else ``out.shard-{i}-of-{n}.jsonl``."""
    output = Path(output)
    if count <= 1:
        return output
    return output.with_name(f"{output.stem}.shard-{index}-of-{count}{output.suffix}")


def read_output(path: Path, *, repair: bool = True) -> list[dict[str, Any]]:
    """The records of an output file. A partially written last line (a killed run) is dropped and,
    with ``repair``, cut off the file so new records start on a line of their own."""
    if not path.exists():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        logger.warning("%s: ignoring a partially written last line (%d bytes) from an interrupted run",
                       path, len(data) - end)
        if repair:
            with open(path, "r+b") as handle:
                handle.truncate(end)
                handle.flush()
                os.fsync(handle.fileno())
    records = []
    for number, line in enumerate(data[:end].splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            logger.warning("%s:%d is not a JSON record; ignoring it", path, number)
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


# --------------------------------------------------------------------------------------------
# One sample
# --------------------------------------------------------------------------------------------
def _check_media(raw: Mapping[str, Any], key: str, bases: Sequence[Path]) -> None:
    """Name every folder that was searched when a media file of the sample cannot be found."""
    for index, entry in enumerate(raw.get("question") or ()):
        for kind in _MEDIA_KINDS:
            if kind not in entry:
                continue
            values = entry[kind] if isinstance(entry[kind], list) else [entry[kind]]
            for value in values:
                path = Path(value).expanduser()
                candidates = [path] if path.is_absolute() else [base / path for base in bases]
                if not any(c.exists() for c in candidates):
                    where = ", ".join(f"'{c}'" for c in candidates)
                    raise MediaError(f"sample {key}, question entry {index}: {kind} file '{value}' does not exist "
                                     f"(looked for it at {where}); fix the path or pass --media-root")


def _metadata(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        return {}
    out = {}
    for name, value in raw.items():
        if name in INPUT_FIELDS or name == "id":
            continue
        out[f"sample_{name}" if name in RECORD_FIELDS else name] = value
    return out


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (Path, os.PathLike)):
        return os.fspath(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _dumps(record: Mapping[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, default=_json_default)


@dataclass
class RunSummary:
    """Counts of one run of :func:`run_batch`."""

    output: Path
    total: int = 0  # samples of this shard (after --limit)
    ok: int = 0
    errors: int = 0
    skipped: int = 0  # already ok in the output
    tokens: int = 0
    decode_s: float = 0.0
    elapsed_s: float = 0.0
    shard: tuple[int, int] = (0, 1)
    interrupted: bool = False

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.decode_s if self.decode_s > 0 else 0.0

    def line(self) -> str:
        shard = f" [shard {self.shard[0]}/{self.shard[1]}]" if self.shard[1] > 1 else ""
        state = "interrupted" if self.interrupted else "done"
        return (f"omnitrace trace {state}{shard}: {self.ok} ok, {self.errors} errors, {self.skipped} skipped "
                f"(already ok) of {self.total} samples in {self.elapsed_s:.1f} s "
                f"({self.tokens_per_s:.1f} tokens/s) -> {self.output}")


# --------------------------------------------------------------------------------------------
# The run loop
# --------------------------------------------------------------------------------------------
def run_batch(
    tracer: Any,
    samples: Sequence[Any],
    output: str | Path,
    *,
    bases: Sequence[Path] = (Path("."),),
    signal: str | None = None,
    generation: GenerationConfig | None = None,
    sources: SourceConfig | None = None,
    curation: CurationConfig | None = None,
    shard: tuple[int, int] = (0, 1),
    limit: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    model: str | None = None,
    dtype: str | None = None,
    trace_answer: bool = False,
    heads: bool = False,
) -> RunSummary:
    """Trace ``samples`` (official format) and append one JSON line per sample to ``output``.

    Args:
        tracer: a :class:`~omnitrace_core.Tracer`, or a function returning one; it is called only
            when some sample is left to trace (a finished run loads no model).
        samples: the questions file's list (see :func:`load_questions`).
        output: the JSON Lines file this process writes (see :func:`shard_output_path`).
        bases: folders relative media paths resolve against (see :func:`media_bases`).
        signal, generation, sources, curation: passed to every ``tracer.stream`` call
            (None: the tracer's defaults).
        shard: (i, n): trace only the samples whose position in the file is i modulo n.
        limit: only the first ``limit`` samples of the file (before sharding).
        overwrite: start the output afresh instead of resuming it.
        progress: show a tqdm progress bar on stderr.
        model, dtype: the checkpoint and weights dtype as the user named them, for the run's
            fingerprint (default: the tracer's model when ``tracer`` is a Tracer; dtype unknown).
        trace_answer: trace each sample's ``answer`` field (teacher-forced, ``Tracer.trace(answer=...)``)
            instead of a generated answer; a sample without one gets an error record.
        heads: capture each layer's and head's mass per source unit (``Tracer.trace(heads=True)``).

    Keys come from :func:`~omnitrace_core.sample_keys` over the whole file. Samples whose key
    has a record with status "ok" in ``output`` are skipped; errored ones are traced again.
    Every record stores the run's fingerprint (:func:`~omnitrace_core.run_settings.run_settings`:
    model, dtype, method and every generation, source and curation setting that changes results) as
    ``"settings"``; resuming a file whose "ok" records were traced with other settings raises
    UsageError naming each setting that differs, before any model is loaded.
    Per-sample failures (of any exception type) become error records; KeyboardInterrupt stops
    the run and propagates as :class:`RunInterrupted` (a KeyboardInterrupt with the counts).
    """
    from tqdm import tqdm

    from .engine import Tracer
    from .inputs import sample_keys

    started = time.perf_counter()
    output = Path(output)
    index, count = shard
    keys = sample_keys(samples)
    positions = range(len(samples) if limit is None else min(limit, len(samples)))
    mine = [p for p in positions if p % count == index]
    summary = RunSummary(output=output, total=len(mine), shard=(index, count))

    if output.is_dir():
        raise UsageError(f"--output '{output}' is a directory; pass a file path like out.jsonl")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        if overwrite:
            output.write_bytes(b"")
    except OSError as exc:
        raise UsageError(f"output file '{output}' cannot be written ({exc.strerror or exc})") from exc
    existing = read_output(output)
    done = {r.get("key") for r in existing if r.get("status") == "ok"}
    loaded = tracer if isinstance(tracer, Tracer) else None
    settings = run_settings(
        model=model if model is not None or loaded is None else loaded.backend.model_id, dtype=dtype,
        signal=signal if signal is not None or loaded is None else loaded.signal.name,
        generation=generation or (loaded.generation if loaded else None),
        sources=sources or (loaded.sources if loaded else None),
        curation=curation or (loaded.curation if loaded else None), trace_answer=trace_answer, heads=heads)
    _check_same_settings(output, [r for r in existing if r.get("status") == "ok"], settings)
    pending = [p for p in mine if keys[p] not in done]
    summary.skipped = len(mine) - len(pending)
    if not pending:
        summary.elapsed_s = time.perf_counter() - started
        return summary
    if not isinstance(tracer, Tracer) and callable(tracer):
        tracer = tracer()

    overrides = dict(signal=signal, generation=generation, sources=sources, curation=curation, heads=heads)
    bar = tqdm(total=len(mine), initial=summary.skipped, unit="sample", desc="trace", file=sys.stderr,
               disable=not progress, dynamic_ncols=True)
    postfix: dict[str, Any] = {"ok": 0, "err": 0, "tok/s": "-"}
    bar.set_postfix(postfix, refresh=False)
    last_refresh = [time.monotonic()]

    def on_token(step: Any) -> None:  # a long sample shows its tokens as they come
        now = time.monotonic()
        if progress and now - last_refresh[0] >= 1.0:
            last_refresh[0] = now
            bar.set_postfix({**postfix, "tokens": step.index + 1})

    try:
        with _redirect_logging(progress), open(output, "a", encoding="utf-8") as handle:
            for position in pending:
                key, raw = keys[position], samples[position]
                sample_start = time.perf_counter()
                try:
                    record, result = _trace_sample(tracer, raw, key, bases, overrides, settings, on_token,
                                                   trace_answer=trace_answer)
                    line = _dumps(record)
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as exc:  # one bad sample must not stop the run
                    record = _error_record(raw, key, exc, settings)
                    line = _dumps(record)
                    result = None
                handle.write(line + "\n")
                handle.flush()
                os.fsync(handle.fileno())
                if result is not None:
                    summary.ok += 1
                    summary.tokens += len(result.tokens)
                    summary.decode_s += float(result.timings.get("decode_s", 0.0))
                    logger.info("sample %s ok: %d tokens in %.2f s", key, len(result.tokens),
                                time.perf_counter() - sample_start)
                else:
                    summary.errors += 1
                    logger.warning("sample %s failed: %s: %s", key, record["error_type"], record["error"])
                postfix.update({"ok": summary.ok, "err": summary.errors,
                                "tok/s": f"{summary.tokens_per_s:.1f}" if summary.decode_s > 0 else "-"})
                bar.set_postfix(postfix, refresh=False)
                bar.update(1)
    except KeyboardInterrupt as exc:
        summary.interrupted = True
        summary.elapsed_s = time.perf_counter() - started
        raise RunInterrupted(summary) from exc
    finally:
        bar.close()
    summary.elapsed_s = time.perf_counter() - started
    return summary


def _check_same_settings(output: Path, records: Sequence[Mapping[str, Any]], settings: Mapping[str, Any]) -> None:
    """Refuse to resume ``output`` when its records were traced with settings other than ``settings``."""
    changed: dict[str, tuple[Any, Any]] = {}
    for record in records:
        for name, values in differences(record_settings(record), settings).items():
            changed.setdefault(name, values)
    if not changed:
        return
    listed = "; ".join(f"{_SETTING_FLAGS.get(name, name)} was {_shown(old)}, now {_shown(new)}"
                       for name, (old, new) in sorted(changed.items()))
    raise UsageError(f"output file '{output}' holds results traced with other settings ({listed}). Resuming would "
                     "mix settings in one file: rerun with the settings it was traced with, or start afresh with "
                     "--overwrite (its results are discarded), or write to another --output")


#: Fingerprint settings (see omnitrace_core.run_settings) that a flag of this command sets; the others
#: are named as they are in Python (e.g. "curation.gamma").
_SETTING_FLAGS = {
    "model": "--model", "dtype": "--dtype", "method": "--method", "curation.token_rule": "--token-rule",
    "generation.max_new_tokens": "--max-new-tokens", "generation.do_sample": "--do-sample",
    "generation.temperature": "--temperature", "generation.top_p": "--top-p", "generation.top_k": "--top-k",
    "generation.seed": "--seed", "sources.audio_bin_seconds": "--audio-bin-seconds",
    "sources.video_bin_seconds": "--video-bin-seconds", "sources.video_fps": "--video-fps",
    "sources.video_max_frames": "--video-max-frames", "sources.audio_units": "--audio-units",
    "sources.asr_model": "--asr-model", "sources.segment_min_seconds": "--segment-min-seconds",
    "sources.segment_max_seconds": "--segment-max-seconds", "sources.segment_max_gap_seconds":
    "--segment-max-gap-seconds", "sources.include_prompt": "--include-prompt",
    "sources.use_audio_in_video": "tracing the audio of videos (--no-audio-in-video turns it off)",
    "trace_answer": "--trace-answer", "heads": "--heads",
}


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _redirect_logging(progress: bool):
    """Route console log handlers through tqdm so log lines do not break the progress bar."""
    import contextlib

    from tqdm.contrib.logging import logging_redirect_tqdm

    def on_console(logger_: logging.Logger) -> bool:
        return any(isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) in (sys.stdout, sys.stderr)
                   for h in logger_.handlers)

    targets = [lg for lg in (logging.root, logging.getLogger("omnitrace_core")) if on_console(lg)]
    if not progress or not targets:
        return contextlib.nullcontext()
    return logging_redirect_tqdm(targets)


def _trace_sample(tracer: Any, raw: Any, key: str, bases: Sequence[Path], overrides: Mapping[str, Any],
                  settings: Mapping[str, Any], on_token: Callable[[Any], None] | None = None, *,
                  trace_answer: bool = False) -> tuple[dict[str, Any], Any]:
    from .errors import InputError
    from .inputs import parse_sample

    sample = parse_sample(raw, key, bases)
    answer = None
    if trace_answer:
        answer = raw.get("answer")
        if not isinstance(answer, str) or not answer.strip():
            raise InputError(f"sample {key} has no 'answer' text to trace (--trace-answer traces each sample's "
                             f"\"answer\" field); got {answer!r}")
    _check_media(raw, key, bases)
    result = None
    for step in tracer.stream(sample.items, answer=answer, **overrides):
        if step.done:
            result = step.result
        elif on_token is not None:
            on_token(step)
    if result is None:
        raise RuntimeError("tracing ended without a result")
    record = {"key": key, "id": raw.get("id"), "status": "ok", **_metadata(raw), "settings": dict(settings),
              "result": result.to_dict()}
    return record, result


def _error_record(raw: Any, key: str, exc: BaseException, settings: Mapping[str, Any]) -> dict[str, Any]:
    message = str(exc).strip() or repr(exc)
    record = {"key": key, "id": raw.get("id") if isinstance(raw, Mapping) else None, "status": "error",
              **_metadata(raw), "settings": dict(settings), "error_type": type(exc).__name__, "error": message}
    if not isinstance(exc, OmniTraceError):
        # an unexpected failure (a bug, out of memory): keep where it happened
        record["traceback"] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-12:])
        logger.debug("sample %s raised", key, exc_info=exc)
        _free_accelerator_memory()
    return record


def _free_accelerator_memory() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # pragma: no cover - best effort
        pass


# --------------------------------------------------------------------------------------------
# Argument parsing
# --------------------------------------------------------------------------------------------
_DESCRIPTION = "Generation-time attribution (OmniTrace) for omni-modal LLMs."

_TRACE_EPILOG = """\
input:
  --questions takes the official OmniTrace format unchanged: a JSON list of samples, each with
  "prompt" (the instruction), "question" (a list of {"text": str | [str]}, {"image": path | [path]},
  {"audio": path}, {"video": path} in order) and any metadata ("id", "task", "answer", ...).
  An audio or video entry may add "transcript": a path to an .srt, .vtt or .json file (a list
  of {"start", "end", "text"}, seconds), such a list inline, or "asr" / "bins" to pick that
  item's units. With a transcript the item's source units are its speech segments; a path is
  looked up like a media path.

speech segments:
  --audio-units segments makes speech segments the units of every audio item and video audio
  track that brings no transcript, recognised locally with --asr-model (a transformers Whisper
  or CTC checkpoint; GPU when there is one). Adjacent segments are merged into sentence-sized
  units between --segment-min-seconds and --segment-max-seconds. Audio tokens in silence
  (outside every segment) are no source.

media paths:
  Absolute paths are used as they are. A relative path is looked up, in order, under
    1. --media-root DIR (when given),
    2. the folder of the questions file,
    3. the parent of that folder (the official files say "examples/media/x.jpg", relative to the
       folder that holds examples/),
  and the first existing file wins. A sample whose media cannot be found gets an error record
  naming the file and every place searched; the other samples still run.

output (JSON Lines, one line per sample, appended and fsynced as soon as it finishes):
  {"key", "id", "status": "ok", <sample metadata except question/prompt>, "settings", "result": TraceResult.to_dict()}
  {"key", "id", "status": "error", <sample metadata>, "settings", "error_type", "error"[, "traceback"]}
  "key" is unique within the questions file: the id, or "id:task" whenever the sample has a
  "task" (e.g. "0:summarization"); a key that repeats gets "#1", "#2", ... on its later
  occurrences. Truth files of the evaluation commands use the same keys. A metadata field
  named like a record field (e.g. "status") is stored as "sample_<name>". "settings" is the
  run's fingerprint: model, dtype, method and every generation, source and curation setting
  that changes results.
  A prompt too long for the model (its positions, less --max-new-tokens) or over
  --max-prompt-tokens gets an error record saying how long it is and which inputs to shorten.

resume:
  Rerunning the same command skips keys that already have an "ok" record and retries the
  errored ones (their new record is appended). A line cut short by a killed run is dropped.
  Resume with the same settings and the same shard count: a rerun whose settings differ from
  the file's "ok" records (another --model, --method, --max-new-tokens, bin width, ...) is
  refused with the settings that differ, so one file never mixes them. --overwrite starts the
  output afresh; or write to another --output.

sharding:
  --shard I/N traces the samples whose position in the file is I modulo N (0-based). Without it,
  the process index and count come from the launcher's environment (RANK/WORLD_SIZE as set by
  `accelerate launch` and torchrun; PMI_*, OMPI_COMM_WORLD_*, MV2_COMM_WORLD_* under MPI), so
  `accelerate launch -m omnitrace_core trace ...` splits the work across processes. With N > 1
  each shard writes OUT.shard-I-of-N.jsonl next to --output (for --output out.jsonl:
  out.shard-0-of-4.jsonl, ...); concatenate them afterwards. With several GPUs and neither
  --device nor --device-map, each process uses cuda:LOCAL_RANK.

exit status:
  0 the run completed (even when some samples have error records), 1 crash, 2 bad usage or an
  unreadable questions file, 130 interrupted (Ctrl-C).
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got '{text}'")
    return value


def _signal_name(text: str) -> str:
    """A signal name, possibly with a layer or head selection, as its canonical name."""
    from .errors import ConfigError, UnknownNameError
    from .signals import get_signal

    try:
        return get_signal(text).name
    except (UnknownNameError, ConfigError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_float(text: str) -> float:
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value:g}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from .signals import list_signals
    from .curation import list_token_rules

    parser = argparse.ArgumentParser(prog="python -m omnitrace_core", description=_DESCRIPTION)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    trace = commands.add_parser(
        "trace", help="trace every sample of a questions file into a JSON Lines file",
        description="Trace every sample of a questions file (official OmniTrace JSON format) and write "
                    "one JSON line per sample.",
        epilog=_TRACE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)

    io = trace.add_argument_group("input and output")
    io.add_argument("--questions", "--questions_path", required=True, metavar="FILE.json",
                    help="questions file: a JSON list of samples in the official format")
    io.add_argument("--media-root", metavar="DIR", help="folder searched first for relative media paths")
    io.add_argument("--output", "-o", required=True, metavar="OUT.jsonl",
                    help="JSON Lines output, appended to (resumed) unless --overwrite")
    io.add_argument("--overwrite", action="store_true", help="start the output afresh instead of resuming it")
    io.add_argument("--limit", type=_positive_int, metavar="N",
                    help="only the first N samples of the file (applied before sharding)")
    io.add_argument("--shard", metavar="I/N",
                    help="trace samples whose position %% N == I (0-based); default: from the launcher's environment")

    model = trace.add_argument_group("model")
    model.add_argument("--model", default=str(DEFAULT_MODEL_DIR), metavar="ID_OR_DIR",
                       help="Hugging Face model id or local checkpoint folder (e.g. Qwen/Qwen2.5-Omni-7B; "
                            "default: the bundled demo model, assets/demo_model)")
    model.add_argument("--dtype", default="auto", choices=("auto", "bfloat16", "float16", "float32"),
                       help="weights dtype (default: auto, the checkpoint's)")
    model.add_argument("--device", help="device to load the model on, e.g. cuda:0 or cpu (default: cuda if available)")
    model.add_argument("--device-map", metavar="MAP", help="accelerate device map, e.g. auto (overrides --device)")
    model.add_argument("--trust-remote-code", action="store_true", help="allow custom model code from the checkpoint")

    method = trace.add_argument_group("attribution")
    method.add_argument("--method", default="attmean", type=_signal_name, metavar="SIGNAL",
                        help=f"scoring signal: {', '.join(list_signals())}, or one restricted to layers or heads, "
                             "e.g. 'attmean[4:8]', 'attmean[heads=0:2]' (default: attmean)")
    method.add_argument("--trace-answer", action="store_true",
                        help="trace each sample's \"answer\" field (teacher-forced: each token's log-probability "
                             "is stored, with the model's own choice where it differs) instead of generating")
    method.add_argument("--heads", action="store_true",
                        help="also store each layer's and head's attention mass per source unit (layers x heads x "
                             "units numbers per token)")
    method.add_argument("--token-rule", default=CurationConfig.token_rule, choices=list_token_rules(),
                        help="how a token picks its source unit (default: %(default)s)")
    method.add_argument("--audio-bin-seconds", type=_float, default=SourceConfig.audio_bin_seconds, metavar="S",
                        help="width of audio source units in seconds (default: %(default)s)")
    method.add_argument("--video-bin-seconds", type=_float, default=SourceConfig.video_bin_seconds, metavar="S",
                        help="width of video source units in seconds (default: %(default)s)")
    method.add_argument("--video-fps", "--qwen-video-fps", type=_float, default=SourceConfig.video_fps, metavar="FPS",
                        help="frames per second sampled from videos (default: %(default)s)")
    method.add_argument("--video-max-frames", type=_positive_int, default=SourceConfig.video_max_frames, metavar="N",
                        help="most frames sampled per video (default: %(default)s)")
    method.add_argument("--audio-units", choices=AUDIO_UNITS, default=SourceConfig.audio_units,
                        help="units of audio and of video audio tracks without a transcript: fixed time bins, "
                             "or speech segments from --asr-model (default: %(default)s)")
    method.add_argument("--asr-model", default=SourceConfig.asr_model, metavar="ID_OR_DIR",
                        help="transformers speech-recognition checkpoint with timestamps (Whisper or CTC) for "
                             "--audio-units segments and \"transcript\": \"asr\" entries (default: %(default)s)")
    method.add_argument("--segment-min-seconds", type=_float, default=SourceConfig.segment_min_seconds, metavar="S",
                        help="speech segments shorter than this are merged with a neighbour (default: %(default)s)")
    method.add_argument("--segment-max-seconds", type=_float, default=SourceConfig.segment_max_seconds, metavar="S",
                        help="merged speech units last at most this long (default: %(default)s)")
    method.add_argument("--segment-max-gap-seconds", type=_float, default=SourceConfig.segment_max_gap_seconds,
                        metavar="S", help="segments are merged only across pauses up to this long "
                                          "(default: %(default)s)")
    method.add_argument("--include-prompt", action="store_true", help="make the instruction prompt's sentences sources too")
    method.add_argument("--no-audio-in-video", action="store_true", help="do not trace the audio track of videos")

    gen = trace.add_argument_group("generation")
    gen.add_argument("--max-new-tokens", type=_positive_int, default=GenerationConfig.max_new_tokens, metavar="N",
                     help="most tokens generated per sample (default: %(default)s)")
    gen.add_argument("--do-sample", action="store_true", help="sample instead of greedy decoding")
    gen.add_argument("--temperature", type=_float, default=GenerationConfig.temperature,
                     help="sampling temperature (with --do-sample; default: %(default)s)")
    gen.add_argument("--top-p", type=_float, default=GenerationConfig.top_p,
                     help="nucleus sampling mass (with --do-sample; default: %(default)s)")
    gen.add_argument("--top-k", type=int, default=GenerationConfig.top_k,
                     help="top-k sampling, 0 disables it (with --do-sample; default: %(default)s)")
    gen.add_argument("--seed", type=int, help="random seed of sampling (with --do-sample)")

    limits = trace.add_argument_group("limits (an input over a limit gets an error record naming it)")
    defaults = MediaLimits()
    limits.add_argument("--max-prompt-tokens", type=_positive_int, metavar="N",
                        help="longest prompt in tokens (default: the model's positions less --max-new-tokens)")
    limits.add_argument("--max-file-mb", type=_positive_float, default=defaults.max_file_bytes / 2**20, metavar="MB",
                        help="largest media file (default: %(default)g)")
    limits.add_argument("--max-image-pixels", type=_positive_int, default=defaults.max_image_pixels, metavar="N",
                        help="largest image, width x height (default: %(default)s)")
    limits.add_argument("--max-audio-seconds", type=_positive_float, default=defaults.max_audio_seconds,
                        metavar="S", help="longest audio (default: %(default)g)")
    limits.add_argument("--max-video-seconds", type=_positive_float, default=defaults.max_video_seconds,
                        metavar="S", help="longest video (default: %(default)g)")

    misc = trace.add_argument_group("reporting")
    misc.add_argument("--no-progress", action="store_true", help="no progress bar")
    misc.add_argument("-v", "--verbose", action="count", default=0, help="log more (-v: info, -vv: debug)")
    from .verify_cli import add_verify_parser

    add_verify_parser(commands)
    return parser


def configs_from_args(args: argparse.Namespace) -> tuple[GenerationConfig, SourceConfig, CurationConfig]:
    """The run's configs from parsed arguments (ConfigError on out-of-range values)."""
    generation = GenerationConfig(max_new_tokens=args.max_new_tokens, do_sample=args.do_sample,
                                  temperature=args.temperature, top_p=args.top_p, top_k=args.top_k, seed=args.seed,
                                  max_prompt_tokens=args.max_prompt_tokens)
    sources = SourceConfig(audio_bin_seconds=args.audio_bin_seconds, video_bin_seconds=args.video_bin_seconds,
                           include_prompt=args.include_prompt, use_audio_in_video=not args.no_audio_in_video,
                           video_fps=args.video_fps, video_max_frames=args.video_max_frames,
                           audio_units=args.audio_units, asr_model=args.asr_model,
                           segment_min_seconds=args.segment_min_seconds, segment_max_seconds=args.segment_max_seconds,
                           segment_max_gap_seconds=args.segment_max_gap_seconds)
    curation = CurationConfig(token_rule=args.token_rule)
    return generation, sources, curation


def _default_device(args: argparse.Namespace) -> str | None:
    """Under a multi-GPU launcher, each process takes the GPU of its local rank."""
    if args.device is not None or args.device_map is not None:
        return args.device
    local = _env_int(LOCAL_RANK_ENV, os.environ)
    if local is None:
        return None
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() > 1:
        return f"cuda:{local[1] % torch.cuda.device_count()}"
    return None


def load_tracer(args: argparse.Namespace, signal: str, generation: GenerationConfig, sources: SourceConfig,
                curation: CurationConfig):
    """Load the model named by ``--model``."""
    from .engine import Tracer

    model = str(args.model)
    local = Path(model).expanduser()
    looks_local = local.is_absolute() or model.startswith((".", "~")) or model.count("/") != 1
    if looks_local and not local.exists():
        raise UsageError(f"--model '{model}' is neither an existing checkpoint folder nor a Hugging Face model id "
                         "(owner/name, e.g. Qwen/Qwen2.5-Omni-7B)")
    logger.info("loading %s", model)
    from .speech import TransformersRecognizer

    device = _default_device(args)
    # loaded only if some sample needs speech recognition; on this process's GPU under a launcher
    recognizer = TransformersRecognizer(sources.asr_model, device=device)
    try:
        limits = MediaLimits(max_file_bytes=int(args.max_file_mb * 2**20), max_image_pixels=args.max_image_pixels,
                             max_audio_seconds=args.max_audio_seconds, max_video_seconds=args.max_video_seconds)
        return Tracer.from_pretrained(args.model, dtype=args.dtype, device=device, limits=limits,
                                      device_map=args.device_map, trust_remote_code=args.trust_remote_code,
                                      signal=signal, generation=generation, sources=sources, curation=curation,
                                      recognizer=recognizer)
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(f"could not load model '{args.model}': {exc}") from exc


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    package = logging.getLogger("omnitrace_core")
    package.setLevel(level)
    if not package.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        package.addHandler(handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m omnitrace_core``; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or bad usage (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    _setup_logging(args.verbose)
    if args.command == "verify":
        from .verify_cli import run_verify

        return run_verify(args)
    summary = None
    try:
        shard = parse_shard(args.shard) if args.shard is not None else shard_from_env()
        generation, sources, curation = configs_from_args(args)
        samples = load_questions(args.questions)
        output = shard_output_path(args.output, *shard)
        bases = media_bases(args.questions, args.media_root)
        if args.media_root is not None and not Path(args.media_root).expanduser().is_dir():
            raise UsageError(f"--media-root '{args.media_root}' is not a folder")

        def tracer():
            return load_tracer(args, args.method, generation, sources, curation)

        summary = run_batch(tracer, samples, output, bases=bases, signal=args.method, generation=generation,
                            sources=sources, curation=curation, shard=shard, limit=args.limit,
                            overwrite=args.overwrite, progress=not args.no_progress, model=args.model,
                            dtype=args.dtype, trace_answer=args.trace_answer, heads=args.heads)
    except (UsageError, OmniTraceError) as exc:  # ConfigError from out-of-range values too
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        done = getattr(exc, "summary", None)
        print(done.line() if done is not None else "omnitrace trace interrupted", file=sys.stderr)
        print("rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        logger.error("crashed: %s: %s", type(exc).__name__, exc, exc_info=True)
        print(f"error: the run crashed ({type(exc).__name__}: {exc}); rerun the same command to resume",
              file=sys.stderr)
        return EXIT_CRASH
    print(summary.line(), file=sys.stderr)
    return EXIT_OK
