"""The batch run loop: trace every sample of a file into a JSON Lines output, resumably.

:func:`run_batch` takes a :class:`~omnitrace_core.Tracer` (or a function that loads one, called only
when some sample is left), so it is driven from Python as well as by ``omnitrace trace``.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..config import CurationConfig, GenerationConfig, SourceConfig
from ..engine import Tracer
from ..errors import InputError, UsageError
from ..inputs import parse_sample, sample_keys
from .questions import check_media
from .records import append_line, dumps, error_record, prepare_output, read_output, record_metadata
from .settings import RESUME_ADVICE, check_same_settings, run_settings

logger = logging.getLogger(__name__)


class RunInterrupted(KeyboardInterrupt):
    """A KeyboardInterrupt that stopped :func:`run_batch`, carrying the counts so far as ``summary``."""

    def __init__(self, summary: "RunSummary") -> None:
        super().__init__("interrupted")
        self.summary = summary


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
    resume_advice: str = RESUME_ADVICE,
) -> RunSummary:
    """Trace ``samples`` (official format) and append one JSON line per sample to ``output``.

    Args:
        tracer: a :class:`~omnitrace_core.Tracer`, or a function returning one; it is called only
            when some sample is left to trace (a finished run loads no model).
        samples: the questions file's list (see :func:`~.questions.load_questions`).
        output: the JSON Lines file this process writes (see :func:`~.shards.shard_output_path`).
        bases: folders relative media paths resolve against (see :func:`~.questions.media_bases`).
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
        resume_advice: how to go on when resuming is refused, in the caller's terms (default: the
            ``omnitrace trace`` flags).

    Keys come from :func:`~omnitrace_core.sample_keys` over the whole file. Samples whose key
    has a record with status "ok" in ``output`` are skipped; errored ones are traced again.
    Every record stores the run's fingerprint (:func:`~.settings.run_settings`:
    model, dtype, signal and every generation, source and curation setting that changes results) as
    ``"settings"``; resuming a file whose "ok" records were traced with other settings raises
    UsageError naming each setting that differs, before any model is loaded.
    Per-sample failures (of any exception type) become error records; KeyboardInterrupt stops
    the run and propagates as :class:`RunInterrupted` (a KeyboardInterrupt with the counts).
    """
    from tqdm import tqdm

    started = time.perf_counter()
    output = Path(output)
    index, count = shard
    keys = sample_keys(samples)
    positions = range(len(samples) if limit is None else min(limit, len(samples)))
    mine = [p for p in positions if p % count == index]
    summary = RunSummary(output=output, total=len(mine), shard=(index, count))

    prepare_output(output, overwrite)
    existing = read_output(output)
    done = {r.get("key") for r in existing if r.get("status") == "ok"}
    loaded = tracer if isinstance(tracer, Tracer) else None
    settings = run_settings(
        model=model if model is not None or loaded is None else loaded.backend.model_id, dtype=dtype,
        signal=signal if signal is not None or loaded is None else loaded.signal.name,
        generation=generation or (loaded.generation if loaded else None),
        sources=sources or (loaded.sources if loaded else None),
        curation=curation or (loaded.curation if loaded else None), trace_answer=trace_answer, heads=heads)
    check_same_settings(output, [r for r in existing if r.get("status") == "ok"], settings, resume_advice)
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
                    line = dumps(record)
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as exc:  # one bad sample must not stop the run
                    record = error_record(raw, key, exc, settings)
                    line = dumps(record)
                    result = None
                append_line(handle, line)
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
    sample = parse_sample(raw, key, bases)
    answer = None
    if trace_answer:
        answer = raw.get("answer")
        if not isinstance(answer, str) or not answer.strip():
            raise InputError(f"sample {key} has no 'answer' text to trace (--trace-answer traces each sample's "
                             f"\"answer\" field); got {answer!r}")
    check_media(raw, key, bases)
    result = None
    for step in tracer.stream(sample.items, answer=answer, **overrides):
        if step.done:
            result = step.result
        elif on_token is not None:
            on_token(step)
    if result is None:
        raise RuntimeError("tracing ended without a result")
    record = {"key": key, "id": raw.get("id"), "status": "ok", **record_metadata(raw), "settings": dict(settings),
              "result": result.to_dict()}
    return record, result
