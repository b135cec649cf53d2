"""The batch verification loop: add a verification to every trace of a batch output file, resumably.

Each ``ok`` trace record is verified (:meth:`omnitrace_core.Tracer.verify`) and written to the
output as the same record with the verified result; a sample that cannot be verified gets an error
record. Lines are appended and fsynced as they finish, so a rerun resumes: keys already ``ok`` in
the output are skipped, errored ones are retried.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..engine import Tracer
from ..errors import OmniTraceError, UsageError
from ..inputs import parse_sample, sample_keys
from ..result import TraceResult
from ..verification import DEFAULT_THRESHOLD
from .questions import load_questions, media_bases
from .records import append_line, dumps, free_accelerator_memory, prepare_output, read_output

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
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--traces '{path}' is not a file; pass the JSON Lines output of "
                         "`omnitrace trace`")
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

    started = time.perf_counter()
    output = Path(output)
    records = list(records)[:limit] if limit is not None else list(records)
    settings = {"mode": mode, "top_k": sorted({int(k) for k in top_k}),
                "threshold": round(DEFAULT_THRESHOLD if threshold is None else float(threshold), 6)}
    summary = VerifySummary(output=output, total=len(records))
    prepare_output(output, overwrite)
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
                    held = result.verification_in(mode)  # reused by verify, its forwards counted in its cost
                    verification = tracer.verify(result, mode, items=items, **options)
                    line = {**record, "result": result.with_verification(verification).to_dict(),
                            VERIFY_FIELD: settings}
                    summary.ok += 1
                    summary.forwards += int(verification.cost.get("forwards", 0) -
                                            (held.cost.get("forwards", 0) if held is not None else 0))
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as exc:  # one bad record must not stop the run
                    line = {k: v for k, v in record.items() if k != "result"}
                    line.update({"status": "error", VERIFY_FIELD: settings, "error_type": type(exc).__name__,
                                 "error": str(exc).strip() or repr(exc)})
                    if not isinstance(exc, OmniTraceError):
                        line["traceback"] = "".join(traceback.format_exception(type(exc), exc,
                                                                               exc.__traceback__)[-12:])
                        free_accelerator_memory()
                    summary.errors += 1
                    logger.warning("trace %s not verified: %s: %s", record.get("key"), line["error_type"],
                                   line["error"])
                append_line(handle, dumps(line))
                bar.set_postfix({"ok": summary.ok, "err": summary.errors, "forwards": summary.forwards}, refresh=False)
                bar.update(1)
    except KeyboardInterrupt:
        summary.interrupted = True
        raise
    finally:
        bar.close()
        summary.elapsed_s = time.perf_counter() - started
    return summary


def items_from_questions(questions: str, media_root: str | None) -> Callable[[Mapping[str, Any]], Any]:
    """record -> its input items, rebuilt from the samples file the traces were made from (by key)."""
    samples = load_questions(questions)
    by_key = dict(zip(sample_keys(samples), samples))
    bases = media_bases(questions, media_root)

    def items(record: Mapping[str, Any]) -> Any:
        key = str(record.get("key"))
        if key not in by_key:
            raise UsageError(f"trace {key} is not a sample of --questions '{questions}'")
        return list(parse_sample(by_key[key], key, bases).items)

    return items
