"""``python -m omnitrace_core verify``: add a verification to every trace of a batch-CLI output file.

    python -m omnitrace_core verify --traces out.jsonl --output verified.jsonl [--mode knockout]

Each ``ok`` trace record is verified (:meth:`omnitrace_core.Tracer.verify`) and written to the
output as the same record with the verified result; a sample that cannot be verified gets an error
record. Lines are appended and fsynced as they finish, so rerunning the same command resumes: keys
already ``ok`` in the output are skipped, errored ones are retried. :func:`verify_batch` is the
same loop for Python callers.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .errors import OmniTraceError

logger = logging.getLogger(__name__)

#: What a verification run's records record of its settings; a resumed output must match them.
VERIFY_FIELD = "verify"


@dataclass
class VerifySummary:
    """Counts of one :func:`verify_batch` run."""

    output: Path
    total: int = 0  # ok trace records considered
    ok: int = 0
    errors: int = 0
    skipped: int = 0  # already verified in the output
    forwards: int = 0
    elapsed_s: float = 0.0
    interrupted: bool = False

    def line(self) -> str:
        state = "interrupted" if self.interrupted else "done"
        return (f"omnitrace verify {state}: {self.ok} ok, {self.errors} errors, {self.skipped} skipped (already "
                f"verified) of {self.total} traces, {self.forwards} forwards in {self.elapsed_s:.1f} s "
                f"-> {self.output}")


def read_traces(path: str | Path) -> list[dict[str, Any]]:
    """The ``ok`` records of a trace file (UsageError naming the file when there is none to read)."""
    from .cli import UsageError, read_output

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--traces '{path}' is not a file; pass the JSON Lines output of "
                         "`python -m omnitrace_core trace`")
    records = [r for r in read_output(path, repair=False) if r.get("status") == "ok" and "result" in r]
    if not records:
        raise UsageError(f"--traces '{path}' holds no successful trace records (status \"ok\" with a result)")
    return records


def _same_model(a: str, b: str) -> bool:
    pa, pb = Path(a).expanduser(), Path(b).expanduser()
    if pa.exists() and pb.exists():
        return pa.resolve() == pb.resolve()
    return a == b


def verify_batch(tracer: Any, records: Sequence[Mapping[str, Any]], output: str | Path, *, mode: str = "input",
                 top_k: Sequence[int] = (1, 3), threshold: float | None = None,
                 items_for: Callable[[Mapping[str, Any]], Any] | None = None, media_root: str | Path | None = None,
                 limit: int | None = None, overwrite: bool = False, progress: bool = True,
                 batch_size: int = 8) -> VerifySummary:
    """Verify trace records and append one JSON line per record to ``output`` (resumable).

    Args:
        tracer: the :class:`~omnitrace_core.Tracer` of the model that traced the records, or a
            function returning one (called only when some record is left to verify).
        records: ``ok`` records of a trace file (:func:`read_traces`).
        output: JSON Lines output; records already ``ok`` there are skipped.
        mode, top_k, threshold, batch_size: passed to ``Tracer.verify``.
        items_for: record -> its input items (default: rebuilt from the result's item records).
        media_root: where relative media paths of rebuilt items are looked up.
        limit: only the first ``limit`` records.
        overwrite: start the output afresh.
        progress: show a progress bar on stderr.
    """
    from tqdm import tqdm

    from .cli import UsageError, _dumps, _free_accelerator_memory, read_output
    from .engine import Tracer
    from .result import TraceResult
    from .verification import DEFAULT_THRESHOLD

    started = time.perf_counter()
    output = Path(output)
    records = list(records)[:limit] if limit is not None else list(records)
    settings = {"mode": mode, "top_k": sorted({int(k) for k in top_k}),
                "threshold": round(DEFAULT_THRESHOLD if threshold is None else float(threshold), 6)}
    summary = VerifySummary(output=output, total=len(records))
    if output.is_dir():
        raise UsageError(f"--output '{output}' is a directory; pass a file path like verified.jsonl")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        if overwrite:
            output.write_bytes(b"")
    except OSError as exc:
        raise UsageError(f"output file '{output}' cannot be written ({exc.strerror or exc})") from exc
    existing = [r for r in read_output(output) if r.get("status") == "ok"]
    other = [r.get(VERIFY_FIELD) for r in existing if r.get(VERIFY_FIELD) != settings]
    if other:
        raise UsageError(f"output file '{output}' already holds verifications made with other settings "
                         f"({other[0]}, now {settings}); pass --overwrite or another --output")
    done = {r.get("key") for r in existing}
    pending = [r for r in records if r.get("key") not in done]
    summary.skipped = len(records) - len(pending)
    if not pending:
        summary.elapsed_s = time.perf_counter() - started
        return summary
    if not isinstance(tracer, Tracer) and callable(tracer):
        tracer = tracer()
    bar = tqdm(total=len(records), initial=summary.skipped, unit="trace", desc="verify", file=sys.stderr,
               disable=not progress, dynamic_ncols=True)
    options = {"top_k": settings["top_k"], "threshold": settings["threshold"], "batch_size": batch_size,
               "media_root": media_root}
    try:
        with open(output, "a", encoding="utf-8") as handle:
            for record in pending:
                try:
                    result = TraceResult.from_dict(record["result"])
                    if not _same_model(result.model_id, tracer.backend.model_id):
                        raise UsageError(f"traced with model '{result.model_id}', not with the loaded "
                                         f"'{tracer.backend.model_id}': pass --model {result.model_id}")
                    items = items_for(record) if items_for is not None else None
                    verification = tracer.verify(result, mode, items=items, **options)
                    line = {**record, "result": result.with_verification(verification).to_dict(),
                            VERIFY_FIELD: settings}
                    summary.ok += 1
                    summary.forwards += int(verification.cost.get("forwards", 0))
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as exc:  # one bad record must not stop the run
                    line = {k: v for k, v in record.items() if k != "result"}
                    line.update({"status": "error", VERIFY_FIELD: settings, "error_type": type(exc).__name__,
                                 "error": str(exc).strip() or repr(exc)})
                    if not isinstance(exc, OmniTraceError):
                        line["traceback"] = "".join(traceback.format_exception(type(exc), exc,
                                                                               exc.__traceback__)[-12:])
                        _free_accelerator_memory()
                    summary.errors += 1
                    logger.warning("trace %s not verified: %s: %s", record.get("key"), line["error_type"],
                                   line["error"])
                handle.write(_dumps(line) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
                bar.set_postfix({"ok": summary.ok, "err": summary.errors, "forwards": summary.forwards}, refresh=False)
                bar.update(1)
    except KeyboardInterrupt:
        summary.interrupted = True
        raise
    finally:
        bar.close()
        summary.elapsed_s = time.perf_counter() - started
    return summary


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
_EPILOG = """\
modes:
  input     change the input and re-encode (drop a text sentence, flatten an image to its mean
            colour, silence an audio second, grey out a video second and silence its track):
            does the unit's content matter?
  knockout  keep the input, block attention to the unit's positions in every decoder layer:
            does the language model read the unit? (cheap: no encoder runs)

output (JSON Lines, appended and fsynced per record):
  the trace record with "result" holding the verification (TraceResult "verification" field)
  and "verify" holding the settings; or {"key", ..., "status": "error", "error_type", "error"}.
  Rerunning the same command resumes (verified keys are skipped, errored ones retried).

media:
  The inputs are rebuilt from the result's item records (media paths as recorded at tracing,
  relative ones also looked up under --media-root), or taken from --questions, the samples file
  the traces were made from (needed for transcripts given as files).

exit status: 0 done (even with per-record errors), 1 crash, 2 bad usage, 130 interrupted.
"""


def add_verify_parser(commands: Any) -> argparse.ArgumentParser:
    """Register the ``verify`` subcommand on the CLI's subparsers."""
    from .cli import _positive_int

    verify = commands.add_parser(
        "verify", help="verify batch traces: measure each source unit's effect on each output sentence",
        description="Add a verification (what removing each source unit does to each output sentence) to every "
                    "trace of a JSON Lines file written by `trace`.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    verify.add_argument("--traces", required=True, metavar="TRACES.jsonl",
                        help="output of `python -m omnitrace_core trace`")
    verify.add_argument("--output", "-o", required=True, metavar="OUT.jsonl",
                        help="JSON Lines output, appended to (resumed) unless --overwrite")
    verify.add_argument("--questions", metavar="FILE.json", help="the samples file the traces were made from "
                        "(default: rebuild the inputs from the traces)")
    verify.add_argument("--media-root", metavar="DIR", help="folder searched for relative media paths")
    verify.add_argument("--mode", default="input", choices=("input", "knockout"), help="removal mode (default: input)")
    verify.add_argument("--top-k", default="1,3", metavar="K,K", help="k of the top-k removal drops (default: 1,3)")
    verify.add_argument("--threshold", type=float, default=None, metavar="NATS",
                        help="log-probability drop of a strong effect (default: ln 2: the sentence's probability "
                             "halves)")
    verify.add_argument("--batch-size", type=_positive_int, default=8, metavar="N", help="removals per forward")
    verify.add_argument("--model", metavar="ID_OR_DIR", help="the checkpoint that traced them (default: as recorded)")
    verify.add_argument("--dtype", default="auto", choices=("auto", "bfloat16", "float16", "float32"))
    verify.add_argument("--device", help="e.g. cuda:0 or cpu (default: cuda if available)")
    verify.add_argument("--trust-remote-code", action="store_true", help="allow custom model code from the checkpoint")
    verify.add_argument("--limit", type=_positive_int, metavar="N", help="only the first N traces")
    verify.add_argument("--overwrite", action="store_true", help="start the output afresh instead of resuming it")
    verify.add_argument("--no-progress", action="store_true", help="no progress bar")
    verify.add_argument("-v", "--verbose", action="count", default=0, help="log more (-v: info, -vv: debug)")
    return verify


def _items_from_questions(questions: str, media_root: str | None) -> Callable[[Mapping[str, Any]], Any]:
    from .cli import UsageError, load_questions, media_bases
    from .inputs import parse_sample, sample_keys

    samples = load_questions(questions)
    by_key = dict(zip(sample_keys(samples), samples))
    bases = media_bases(questions, media_root)

    def items(record: Mapping[str, Any]) -> Any:
        key = str(record.get("key"))
        if key not in by_key:
            raise UsageError(f"trace {key} is not a sample of --questions '{questions}'")
        return list(parse_sample(by_key[key], key, bases).items)

    return items


def run_verify(args: argparse.Namespace) -> int:
    """Run the ``verify`` subcommand; returns the exit status."""
    from .cli import EXIT_CRASH, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, UsageError

    try:
        top_k = [int(k) for k in str(args.top_k).split(",") if k.strip()]
        if not top_k or min(top_k) < 1:
            raise ValueError
    except ValueError:
        print(f"error: --top-k takes k >= 1 separated by commas (e.g. 1,3), got '{args.top_k}'", file=sys.stderr)
        return EXIT_USAGE
    try:
        records = read_traces(args.traces)
        model = args.model or records[0]["result"].get("model_id")
        if args.media_root is not None and not Path(args.media_root).expanduser().is_dir():
            raise UsageError(f"--media-root '{args.media_root}' is not a folder")
        items_for = _items_from_questions(args.questions, args.media_root) if args.questions else None

        def tracer():
            from .engine import Tracer

            try:
                return Tracer.from_pretrained(model, dtype=args.dtype, device=args.device,
                                              trust_remote_code=args.trust_remote_code)
            except (OSError, ValueError, KeyError) as exc:
                raise UsageError(f"could not load model '{model}': {exc}") from exc

        summary = verify_batch(tracer, records, args.output, mode=args.mode, top_k=top_k, threshold=args.threshold,
                               items_for=items_for, media_root=args.media_root, limit=args.limit,
                               overwrite=args.overwrite, progress=not args.no_progress, batch_size=args.batch_size)
    except (UsageError, OmniTraceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("omnitrace verify interrupted; rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        logger.error("crashed: %s: %s", type(exc).__name__, exc, exc_info=True)
        print(f"error: the run crashed ({type(exc).__name__}: {exc}); rerun the same command to resume",
              file=sys.stderr)
        return EXIT_CRASH
    print(summary.line(), file=sys.stderr)
    return EXIT_OK
