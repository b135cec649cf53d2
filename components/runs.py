"""Batch runs in the explorer: index the batch CLI's JSON Lines outputs and summarise each sample (pure).

A run is one or more output files of ``python -m omnitrace_core trace`` or ``verify`` (e.g. one per
signal), optionally a ground-truth file (:mod:`omnitrace_core.evaluation.groundtruth`) and the
samples file the traces were made from (to find their media). Loading reads every line once and
keeps, per sample, only what the table shows and where the line lies in its file (byte offset and
length); a trace is parsed in full only when its row is opened.

Reading a line for the table skips its score arrays: ``atom_sum``, ``atom_max`` and ``outside``
(numbers only, the bulk of a trace) and ``heads`` are cut out by position before the rest is
parsed as JSON, and ``atom_sum`` is read as plain numbers for the modality split of the mass. The
cuts rely only on JSON itself: inside a JSON string every quote is escaped, so ``, "atom_sum": [``
can only be a key, and a 2-D array of numbers closes at its first ``]]``. Anything unexpected falls
back to parsing the whole line.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field, replace
from itertools import combinations
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from omnitrace_core import MODALITIES, InputError, TraceResult
from omnitrace_core.evaluation.groundtruth import GroundTruth, SampleTruth
from omnitrace_core.evaluation.metrics import mean_prf
from omnitrace_core.evaluation.outputs import parse_option
from omnitrace_core.evaluation.scoring import (SamplePrediction, SpanPrediction, align, normalise, score,
                                               text_units_of)
from omnitrace_core.sources import SourceSet, SourceUnit

from .compare import jaccard

logger = logging.getLogger(__name__)

PAGE_SIZE = 50
#: Row filters of the table: name -> what it keeps.
STATUS_FILTERS = ("all", "ok", "error", "unsupported sentences", "answer differs")
#: Sortable columns: name -> the row attribute sorted on.
COLUMNS = {"key": "key", "task": "task", "status": "status", "answer": "answer", "expected": "expected",
           "sentences": "sentences", "unsupported": "unsupported", "confidence": "confidence", "f1": "f1",
           "comprehensiveness": "comprehensiveness", "sufficiency": "sufficiency", "agreement": "agreement"}


# --------------------------------------------------------------------------------------------
# Reading one line cheaply
# --------------------------------------------------------------------------------------------
def _array_span(line: bytes, key: bytes, depth: int) -> tuple[int, int] | None:
    """[start, end) of the numeric array value of ``key`` (its last occurrence: the result's), or None."""
    at = line.rfind(b', "' + key + b'": [')
    if at < 0:
        return None
    start = at + len(key) + 6
    if line.startswith(b"[]", start):
        return start, start + 2
    end = line.find(b"]" * depth, start)
    return None if end < 0 else (start, end + depth)


def skim(line: bytes) -> tuple[dict[str, Any], np.ndarray | None]:
    """A record without its result's score arrays, and the per-atom mass summed over tokens.

    Returns:
        (record, atom mass (A,) or None when the record has no result). The record's result has
        ``atom_sum``, ``atom_max``, ``outside`` emptied and ``heads`` replaced by ``true`` when it had them.
    """
    cuts = [(b"atom_sum", 2), (b"atom_max", 2), (b"outside", 1)]
    spans = [_array_span(line, key, depth) for key, depth in cuts]
    heads = None
    at = line.rfind(b', "heads": {')
    if at >= 0:
        end = line.find(b"}", at)
        heads = (at + 11, end + 1) if end >= 0 else None
    if any(s is None for s in spans):
        return _full(line)
    pieces, cursor = [], 0
    replaced = sorted([(s, e, b"[]") for s, e in spans] + ([(heads[0], heads[1], b"true")] if heads else []))
    for s, e, value in replaced:
        if s < cursor:
            return _full(line)
        pieces += [line[cursor:s], value]
        cursor = e
    pieces.append(line[cursor:])
    try:
        record = json.loads(b"".join(pieces))
        result = record["result"]
        tokens, atoms = len(result["tokens"]), len(result["sources"]["atom_unit"])
        s, e = spans[0]
        text = line[s + 1:e - 1].replace(b"[", b" ").replace(b"]", b" ").decode("ascii")
        values = np.fromstring(text, sep=",") if text.strip() else np.zeros(0)
        if values.size != tokens * atoms or result["atom_sum"] or result["outside"]:
            return _full(line)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return _full(line)
    return record, values.reshape(tokens, atoms).sum(axis=0) if tokens else np.zeros(atoms)


def _full(line: bytes) -> tuple[dict[str, Any], np.ndarray | None]:
    record = json.loads(line)
    result = record.get("result") if isinstance(record, dict) else None
    if not isinstance(result, dict) or "atom_sum" not in result:
        return record, None
    mass = np.asarray(result["atom_sum"], dtype=np.float64)
    return record, mass.sum(axis=0) if mass.size else np.zeros(len(result["sources"]["atom_unit"]))


# --------------------------------------------------------------------------------------------
# One sample's summary
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Trace:
    """Where one record lies and what the table needs of it."""

    file: int
    offset: int
    length: int
    status: str
    signal: str | None = None
    token_ids: tuple[int, ...] = ()
    curated: tuple[frozenset[int], ...] = ()


@dataclass
class Row:
    """One sample of a run, as the table shows it.

    Attributes:
        key, id, task: the sample.
        status: "ok" or "error" (of the first file that holds it).
        error: the error message of an errored sample.
        answer: the model's answer (the traced text); expected: the sample's ``answer`` field.
        answer_ok: the answer equals the expected one (normalised), or states its ``option``; None without one.
        sentences, unsupported: output sentences, and those without a curated source.
        confidence: mean sentence confidence; confidences: every sentence's.
        f1: mean F1 against the ground truth over scored (sentence, modality) pairs; None without labels.
        f1_pairs: (modality, F1) of every scored pair.
        comprehensiveness, sufficiency: mean over verified sentences (scope "all") of the first file that verified
            the sample; None unverified.
        agreement: mean per-sentence Jaccard of curated units between signals of the same generation.
        mass: modality -> share of the attention mass on sources.
        forced: the traced answer was given (``--trace-answer``); heads: layer and head masses stored.
        traces: file index -> where the sample's record lies.
    """

    key: str
    id: str
    task: str
    status: str
    error: str = ""
    answer: str = ""
    expected: str = ""
    answer_ok: bool | None = None
    sentences: int | None = None
    unsupported: int | None = None
    confidence: float | None = None
    confidences: tuple[float, ...] = ()
    f1: float | None = None
    f1_pairs: tuple[tuple[str, float], ...] = ()
    comprehensiveness: float | None = None
    sufficiency: float | None = None
    agreement: float | None = None
    mass: Mapping[str, float] = field(default_factory=dict)
    forced: bool = False
    heads: bool = False
    traces: dict[int, Trace] = field(default_factory=dict)

    @property
    def ok_files(self) -> tuple[int, ...]:
        """The files holding a successful trace of the sample, in file order."""
        return tuple(sorted(f for f, t in self.traces.items() if t.status == "ok"))


def _mean(values: Iterable[float]) -> float | None:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return sum(values) / len(values) if values else None


def _answer_ok(answer: str, record: Mapping[str, Any]) -> bool | None:
    expected = record.get("answer")
    option = record.get("option")
    if isinstance(option, str) and option:
        return parse_option(answer) == option
    if isinstance(expected, str) and expected.strip():
        return normalise(answer) == normalise(expected)
    return None


def _mass_split(sources: Mapping[str, Any], mass: np.ndarray | None) -> dict[str, float]:
    """modality -> share of the attention mass on source atoms (``mass``: per atom)."""
    units = sources["units"]
    if mass is None or not mass.size or not units:
        return {}
    per_unit = np.bincount(np.asarray(sources["atom_unit"], dtype=np.int64), weights=mass, minlength=len(units))
    total = float(per_unit.sum())
    if total <= 0:
        return {}
    split: dict[str, float] = {}
    for unit, value in zip(units, per_unit.tolist()):
        split[unit["modality"]] = split.get(unit["modality"], 0.0) + value
    return {m: round(split[m] / total, 4) for m in MODALITIES if m in split}


def _f1(record: Mapping[str, Any], units: Sequence[SourceUnit], spans: Sequence[Mapping[str, Any]],
        truth: SampleTruth) -> tuple[float | None, tuple[tuple[str, float], ...]]:
    """The sample's mean F1 against its labels, scored as the evaluation scores it, and its scored pairs."""
    key = str(record.get("key"))
    prediction = SamplePrediction(key=key, id=str(record.get("id")), task=record.get("task"), units=tuple(units),
                                  item_texts={}, spans=tuple(SpanPrediction(s["text"], tuple(src["unit"] for src in
                                                                                             s["sources"]))
                                                             for s in spans))
    scores = score([prediction], {key: truth})
    pairs = tuple((modality, prf.f1) for (_, modality), prfs in scores.by_task.items() for prf in prfs)
    return (mean_prf([p for prfs in scores.by_task.values() for p in prfs]).f1 if pairs else None), pairs


def summarise(record: Mapping[str, Any], mass: np.ndarray | None, truth: GroundTruth | None,
              file: int, offset: int, length: int) -> Row:
    """The table row of one record (a skimmed record: see :func:`skim`)."""
    key = str(record.get("key", record.get("id")))
    status = str(record.get("status", "error"))
    expected = record.get("answer")
    row = Row(key=key, id=str(record.get("id")), task=str(record.get("task") or record.get("sample_task") or ""),
              status=status, expected=expected if isinstance(expected, str) else "")
    result = record.get("result")
    if status != "ok" or not isinstance(result, Mapping):
        row.error = str(record.get("error") or "no result")
        row.traces[file] = Trace(file, offset, length, "error")
        return row
    spans = result.get("spans", [])
    row.answer = str(result.get("text", ""))
    row.answer_ok = _answer_ok(row.answer, record)
    row.sentences = len(spans)
    row.unsupported = sum(1 for s in spans if not s["sources"])
    row.confidences = tuple(float(s.get("confidence", 0.0)) for s in spans)
    row.confidence = _mean(row.confidences)
    row.mass = _mass_split(result["sources"], mass)
    labels = truth.lookup(record) if truth is not None else None
    if labels is not None:
        row.f1, row.f1_pairs = _f1(record, SourceSet.from_dict(result["sources"]).units, spans, labels)
    checks = (result.get("verification") or {}).get("sentences", [])
    row.comprehensiveness = _mean(c.get("comprehensiveness", {}).get("all") for c in checks)
    row.sufficiency = _mean(c.get("sufficiency", {}).get("all") for c in checks)
    row.forced = bool(result.get("forced", False))
    row.heads = bool(result.get("heads"))
    row.traces[file] = Trace(file, offset, length, "ok", signal=result.get("signal"),
                             token_ids=tuple(t["token_id"] for t in result["tokens"]),
                             curated=tuple(frozenset(src["unit"] for src in s["sources"]) for s in spans))
    return row


def agreement(traces: Sequence[Trace]) -> float | None:
    """Mean per-sentence Jaccard of curated units over every pair of signals' traces of the same generation."""
    ok = [t for t in traces if t.status == "ok"]
    pairs = [(a, b) for a, b in combinations(ok, 2) if a.token_ids == b.token_ids and a.signal != b.signal]
    values = [jaccard(a.curated[k], b.curated[k]) for a, b in pairs for k in range(len(a.curated))]
    return _mean(values)


# --------------------------------------------------------------------------------------------
# A run: its files, rows, and on-demand traces
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunFile:
    """One loaded output file: its path, name and the signal of its traces."""

    path: str
    name: str
    signal: str
    records: int
    errors: int


@dataclass(frozen=True)
class Page:
    """One page of the table after filtering and sorting."""

    rows: tuple[Row, ...]
    index: int
    pages: int
    matching: int
    total: int
    sort: str
    descending: bool


@dataclass
class Run:
    """A loaded run (see the module docstring)."""

    files: tuple[RunFile, ...]
    rows: list[Row]
    truth: GroundTruth | None = None
    samples: Any = None  # components.samples.SampleFile: where the samples' media are
    by_key: dict[str, Row] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_key = {row.key: row for row in self.rows}

    def tasks(self) -> list[str]:
        return sorted({row.task for row in self.rows if row.task})

    def query(self, text: str = "", status: str = "all", task: str = "all", sort: str = "key",
              descending: bool = False, page: int = 0, page_size: int = PAGE_SIZE) -> Page:
        """Filter (free text over key, task, answers and errors; status; task), sort and cut one page.

        Rows without a value in the sorted column come last in either direction.
        """
        if sort not in COLUMNS:
            raise InputError(f"cannot sort by '{sort}'; columns: {', '.join(COLUMNS)}")
        if status not in STATUS_FILTERS:
            raise InputError(f"unknown filter '{status}'; filters: {', '.join(STATUS_FILTERS)}")
        needle = " ".join(text.lower().split())
        keep = [r for r in self.rows if _status_match(r, status) and (task in ("all", "") or r.task == task)
                and (not needle or needle in f"{r.key} {r.task} {r.answer} {r.expected} {r.error}".lower())]
        attr = COLUMNS[sort]
        present = [r for r in keep if getattr(r, attr) is not None]
        missing = [r for r in keep if getattr(r, attr) is None]
        present.sort(key=lambda r: (getattr(r, attr), r.key), reverse=descending)
        ordered = present + missing
        pages = max(1, math.ceil(len(ordered) / page_size))
        index = min(max(0, int(page)), pages - 1)
        return Page(rows=tuple(ordered[index * page_size:(index + 1) * page_size]), index=index, pages=pages,
                    matching=len(ordered), total=len(self.rows), sort=sort, descending=descending)

    def results(self, key: str) -> dict[str, TraceResult]:
        """The sample's traces, by signal (file order), parsed from their lines now."""
        row = self.by_key.get(key)
        if row is None:
            raise InputError(f"no sample '{key}' in this run")
        out: dict[str, TraceResult] = {}
        for index in row.ok_files:
            trace = row.traces[index]
            record = json.loads(_read_at(self.files[index].path, trace.offset, trace.length))
            result = TraceResult.from_dict(record["result"])
            name = result.signal if result.signal not in out else f"{result.signal} ({self.files[index].name})"
            out[name] = result
        return out

    def record(self, key: str) -> dict[str, Any]:
        """The sample's first record without its result (metadata, settings)."""
        row = self.by_key[key]
        trace = next(iter(row.traces.values()))
        record = json.loads(_read_at(self.files[trace.file].path, trace.offset, trace.length))
        return {k: v for k, v in record.items() if k != "result"}


def _status_match(row: Row, status: str) -> bool:
    if status == "all":
        return True
    if status in ("ok", "error"):
        return row.status == status
    if status == "unsupported sentences":
        return bool(row.unsupported)
    return row.answer_ok is False


def _read_at(path: str, offset: int, length: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.read(length)


def index_file(path: str | Path, file: int, truth: GroundTruth | None) -> tuple[RunFile, list[Row]]:
    """Read one JSON Lines output file line by line into rows (see :func:`skim`).

    Raises:
        InputError: the file holds no record of the batch CLI (a line with ``key`` and ``status``).
    """
    path = Path(path)
    rows: list[Row] = []
    offset, signal, errors = 0, "", 0
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            length = len(line)
            start, offset = offset, offset + length
            if not line.strip():
                continue
            if not line.endswith(b"\n"):  # a half-written last line of a killed run
                logger.warning("%s: ignoring a partially written last line", path.name)
                continue
            try:
                record, mass = skim(line)
            except (ValueError, UnicodeDecodeError):
                raise InputError(f"'{path.name}' line {number} is not JSON: a run file is the JSON Lines output of "
                                 "`python -m omnitrace_core trace` or `verify`") from None
            if not isinstance(record, dict) or "status" not in record or "key" not in record:
                raise InputError(f"'{path.name}' line {number} is not a batch record (it has no \"key\" and "
                                 "\"status\"): a run file is the JSON Lines output of `python -m omnitrace_core "
                                 "trace` or `verify`")
            row = summarise(record, mass, truth, file, start, length)
            errors += row.status != "ok"
            signal = signal or (row.traces[file].signal or "")
            rows.append(row)
    if not rows:
        raise InputError(f"'{path.name}' holds no records; a run file is the JSON Lines output of "
                         "`python -m omnitrace_core trace` or `verify`")
    return RunFile(str(path), path.name, signal or "?", len(rows), errors), rows


def load_run(paths: Sequence[str | Path], truth: GroundTruth | None = None, samples: Any = None) -> Run:
    """Index run files (one per signal, say) into one table, a row per sample key (first file's order).

    Args:
        paths: JSON Lines outputs of the batch CLI (``trace`` or ``verify``).
        truth: ground-truth labels for the F1 column and the overlay.
        samples: the samples file (:class:`components.samples.SampleFile`) the media are found through.
    """
    if not paths:
        raise InputError("add at least one run file: the .jsonl output of `python -m omnitrace_core trace`")
    files: list[RunFile] = []
    merged: dict[str, Row] = {}
    for index, path in enumerate(paths):
        run_file, rows = index_file(path, index, truth)
        files.append(run_file)
        for row in rows:
            first = merged.get(row.key)
            if first is None:
                merged[row.key] = row
            elif first.status != "ok" and row.status == "ok":  # the first file that traced it describes it
                row.traces = {**first.traces, **row.traces}
                merged[row.key] = row
            else:
                first.traces.setdefault(index, row.traces[index])
                if first.comprehensiveness is None and row.comprehensiveness is not None:  # a verify output
                    first.comprehensiveness, first.sufficiency = row.comprehensiveness, row.sufficiency
    for row in merged.values():
        row.agreement = agreement(list(row.traces.values()))
    return Run(files=tuple(files), rows=list(merged.values()), truth=truth, samples=samples)


# --------------------------------------------------------------------------------------------
# Ground truth in the explorer, and aggregates for the plots
# --------------------------------------------------------------------------------------------
def expected_units(result: TraceResult, truth: SampleTruth | None) -> dict[int, list[int]]:
    """Per output sentence (aligned with the labels by text, as scoring does), the units the labels name."""
    if truth is None:
        return {}
    out: dict[int, list[int]] = {}
    for k, j in align([s.text for s in truth.spans], [s.text for s in result.spans]):
        units: set[int] = set()
        for ref in truth.spans[k].sources:
            if ref.modality == "text":
                units |= text_units_of(ref, result.units)
            for u in result.units:
                if u.item != ref.item or u.modality != ref.modality or ref.modality == "text":
                    continue
                if ref.modality == "image" or (u.time_start < ref.time_end and ref.time_start < u.time_end):
                    units.add(u.index)
        out[j] = sorted(units)
    return out


def task_f1(rows: Iterable[Row]) -> dict[str, dict[str, float]]:
    """task -> modality -> mean F1 over its scored (sentence, modality) pairs (the evaluation's macro mean)."""
    pairs: dict[tuple[str, str], list[float]] = {}
    for row in rows:
        for modality, f1 in row.f1_pairs:
            pairs.setdefault((row.task or "all", modality), []).append(f1)
    out: dict[str, dict[str, float]] = {}
    for (task, modality), values in sorted(pairs.items()):
        out.setdefault(task, {})[modality] = sum(values) / len(values)
    return out


def mean_mass(rows: Iterable[Row]) -> dict[str, float]:
    """modality -> mean share of the attention mass over traced samples."""
    rows = [r for r in rows if r.mass]
    return {m: sum(r.mass.get(m, 0.0) for r in rows) / len(rows) for m in MODALITIES
            if any(m in r.mass for r in rows)} if rows else {}


def with_media(result: TraceResult, paths: Mapping[int, str]) -> TraceResult:
    """The result with its media items pointing at ``paths`` (item index -> local file)."""
    if not paths:
        return result
    items = tuple(replace(info, path=paths[info.index]) if info.index in paths else info for info in result.items)
    return replace(result, items=items)
