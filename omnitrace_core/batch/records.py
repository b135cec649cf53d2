"""The JSON Lines output of a batch run: one record per sample, appended and fsynced, read back for resuming."""

from __future__ import annotations

import json
import logging
import os
import traceback
from pathlib import Path
from typing import Any, Mapping

from ..errors import OmniTraceError, UsageError

logger = logging.getLogger(__name__)

#: Fields of a sample that are inputs, not metadata: they are not copied to output records.
INPUT_FIELDS = ("question", "prompt")

#: Fields every output record has; a sample's metadata field of the same name is stored as
#: ``sample_<name>`` instead.
RECORD_FIELDS = ("key", "id", "status", "settings", "result", "error_type", "error", "traceback")


def prepare_output(output: Path, overwrite: bool) -> None:
    """Make ``output``'s folder (and, with ``overwrite``, empty the file); UsageError when it cannot be written."""
    if output.is_dir():
        raise UsageError(f"--output '{output}' is a directory; pass a file path like out.jsonl")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        if overwrite:
            output.write_bytes(b"")
    except OSError as exc:
        raise UsageError(f"output file '{output}' cannot be written ({exc.strerror or exc})") from exc


def append_line(handle: Any, line: str) -> None:
    """Append one serialised record to the open output and fsync it: a killed run loses no finished record."""
    handle.write(line + "\n")
    handle.flush()
    os.fsync(handle.fileno())


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


def record_metadata(raw: Any) -> dict[str, Any]:
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


def dumps(record: Mapping[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, default=_json_default)


def error_record(raw: Any, key: str, exc: BaseException, settings: Mapping[str, Any]) -> dict[str, Any]:
    message = str(exc).strip() or repr(exc)
    record = {"key": key, "id": raw.get("id") if isinstance(raw, Mapping) else None, "status": "error",
              **record_metadata(raw), "settings": dict(settings), "error_type": type(exc).__name__, "error": message}
    if not isinstance(exc, OmniTraceError):
        # an unexpected failure (a bug, out of memory): keep where it happened
        record["traceback"] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-12:])
        logger.debug("sample %s raised", key, exc_info=exc)
        free_accelerator_memory()
    return record


def free_accelerator_memory() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # pragma: no cover - best effort
        pass
