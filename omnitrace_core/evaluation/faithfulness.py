"""Faithfulness of attributions: each method's citations set against what removing units measurably does.

Per traced sample, one verification (:mod:`omnitrace_core.verification`) measures every source
unit's effect on every output sentence and, for every method (signal or baseline), the drops when
its citation is removed (comprehensiveness), when everything else is removed (sufficiency) and
when its k top-ranked units are removed (top-k drop). Nothing here needs labels. Per method and
scope (every unit, or one modality's units) the report gives:

- comprehensiveness (higher: the citation holds what the sentence needs), sufficiency (lower: the
  citation alone keeps the sentence likely), both read beside the citation's size (a method that
  cites more removes more); top-k drops (higher: the ranking finds what matters, at equal size);
- agreement with occlusion: precision and recall of the curated units against the *strong* units
  (removing them drops the sentence's log-probability by more than the threshold), and Spearman's
  rank correlation between the method's unit scores and the measured drops.

A sentence counts for a scope when some unit of the scope is strong for it (the sentence depends
on that modality), so every method is scored on the same sentences. A method whose tokens differ
from the reference trace's (sampling) is left out for that sample.

With labels (the known-truth benchmark), :func:`label_validity` checks the labels themselves: the
share of labelled units whose removal changes the sentence (its greedy output is no longer
produced) and of unlabelled units whose removal does; :func:`causal_truth` turns the changing
units into labels, so methods can be scored against constructed and causal labels side by side.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..batch.records import dumps, read_output
from ..inputs import MODALITIES
from ..result import TraceResult
from ..sources import SourceUnit
from ..verification import ALL, Verifier
from ..verification.ablation import Removal
from ..verification.metrics import check_sets, scopes, sentence_check, spearman
from .groundtruth import GoldSpan, GroundTruth, SampleTruth, SourceRef
from .metrics import mean_prf, set_f1
from .scoring import align, text_units_of

logger = logging.getLogger(__name__)

#: Target checks of the report: the labels are causal, and every signal's ranking beats random's at equal size.
LABELLED_CHANGE_TARGET = 0.9
UNLABELLED_CHANGE_TARGET = 0.1


@dataclass(frozen=True)
class MethodInput:
    """What one method says about one sample: per output sentence, its curated units and its unit scores.

    Either may be None (a baseline without tuned thresholds has scores only; self-attribution has
    citations only). ``tokens`` are the method's generated token ids, checked against the reference.
    """

    curated: Sequence[Sequence[int]] | None
    rankings: Sequence[Mapping[int, float]] | None
    tokens: Sequence[int] | None = None


def signal_input(result: TraceResult) -> MethodInput:
    """A signal's citations (its curated sources) and rankings (its summed mass over the sentence's tokens)."""
    from ..verification import sentence_rankings

    return MethodInput(curated=[tuple(s.unit for s in span.sources) for span in result.spans],
                       rankings=sentence_rankings(result), tokens=[t.token_id for t in result.tokens])


def measure_sample(verifier: Verifier, result: TraceResult, methods: Mapping[str, MethodInput],
                   ks: Sequence[int]) -> dict[str, Any]:
    """One sample's record: unit effects, changes, and every method's sentence checks (JSON-ready)."""
    units = result.units
    pools = scopes(units)
    generated = [t.token_id for t in result.tokens]
    singles = [Removal(frozenset([u.index])) for u in units]
    plans: dict[str, list[dict[tuple, frozenset[int]]]] = {}
    for name, method in methods.items():
        if method.tokens is not None and list(method.tokens) != generated:
            continue
        plans[name] = [check_sets(None if method.curated is None else method.curated[k], pools,
                                  None if method.rankings is None else method.rankings[k], ks)
                       for k in range(len(result.spans))]
    wanted = list(dict.fromkeys(singles + [Removal(s) for plan in plans.values() for sets in plan
                                           for s in sets.values() if s]))
    drops, changed = verifier.drops(wanted)
    drop_of = {w.units: drops[i] for i, w in enumerate(wanted)}
    record: dict[str, Any] = {
        "modalities": [u.modality for u in units], "logp": verifier.sentence_logp().round(6).tolist(),
        "effects": drops[:len(singles)].T.round(6).tolist(), "changed": changed[:len(singles)].T.tolist(),
        "methods": {}, "mismatched": sorted(set(methods) - set(plans))}
    for name, plan in plans.items():
        method = methods[name]
        record["methods"][name] = {
            **_inputs(method, len(units)),
            "checks": [sentence_check(k, None if method.curated is None else method.curated[k], sets,
                                      {s: d[k] for s, d in drop_of.items()}).to_dict()
                       for k, sets in enumerate(plan)]}
    return record


def _inputs(method: MethodInput, units: int) -> dict[str, Any]:
    """A method's citations and unit scores as a sample's record stores them."""
    return {"has_curated": method.curated is not None,
            "curated": None if method.curated is None else [sorted(set(c)) for c in method.curated],
            "rankings": None if method.rankings is None else [[float(r.get(u, 0.0)) for u in range(units)]
                                                              for r in method.rankings]}


def _still_valid(row: Mapping[str, Any], methods: Mapping[str, MethodInput]) -> bool:
    """Whether a cached record was measured for these very citations and scores of every method."""
    units = len(row["modalities"])
    for name, method in methods.items():
        if name in row["mismatched"]:
            continue
        stored = row["methods"].get(name)
        if stored is None or {k: stored[k] for k in ("has_curated", "curated", "rankings")} != _inputs(method, units):
            return False
    return True


def measure_split(backend_fn: Callable[[], Any], records: Sequence[Mapping[str, Any]], results: Sequence[TraceResult],
                  methods: Mapping[str, Sequence[MethodInput]], items_fn: Callable[[Mapping[str, Any]], list], *,
                  mode: str, ks: Sequence[int], cache: Path | None = None, progress: bool = True,
                  batch_size: int = 8) -> list[dict[str, Any]]:
    """Measure every sample (cached in ``cache``, a JSON Lines file: a rerun measures only what is missing).

    Args:
        backend_fn: returns the backend of the traced model (called only when something is measured).
        records, results: the reference traces (one per sample) and their batch-CLI records.
        methods: method name -> one :class:`MethodInput` per sample.
        items_fn: record -> its input items.
        mode: removal mode; ks: the k of the top-k drops.
    """
    from tqdm import tqdm

    done = {}
    if cache is not None:
        for row in read_output(cache):
            if row.get("mode") == mode and row.get("top_k") == list(ks):
                done[row.get("key")] = row
    out = []
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
    handle = open(cache, "a", encoding="utf-8") if cache is not None else None
    try:
        for i, (record, result) in enumerate(tqdm(list(zip(records, results)), desc="faithfulness", unit="sample",
                                                  file=sys.stderr, disable=not progress)):
            key = str(record.get("key"))
            row = done.get(key)
            if row is not None and _still_valid(row, {n: m[i] for n, m in methods.items()}):
                out.append(row)
                continue
            started = time.perf_counter()
            verifier = Verifier.for_result(backend_fn(), result, items_fn(record), mode=mode, batch_size=batch_size)
            row = {"key": key, "mode": mode, "top_k": list(ks),
                   **measure_sample(verifier, result, {n: m[i] for n, m in methods.items()}, ks),
                   "cost": {**verifier.cost.to_dict(), "seconds": round(time.perf_counter() - started, 3)}}
            out.append(row)
            if handle is not None:
                handle.write(dumps(row) + "\n")
                handle.flush()
    finally:
        if handle is not None:
            handle.close()
    return out


def _mean(values: Sequence[float]) -> float | None:
    return round(float(np.mean(values)), 4) if values else None


def summarise(measures: Sequence[Mapping[str, Any]], threshold: float, ks: Sequence[int]) -> dict[str, Any]:
    """Per method and scope: mean comprehensiveness, sufficiency, top-k drops, P/R against the strong
    units, Spearman; over the sentences for which some unit of the scope is strong."""
    acc: dict[str, dict[str, dict[str, list]]] = {}
    sentences: dict[str, int] = {}
    unscored = total = 0
    for m in measures:
        effects = np.asarray(m["effects"], dtype=np.float64)
        pools = {ALL: list(range(len(m["modalities"])))}
        for u, modality in enumerate(m["modalities"]):
            pools.setdefault(modality, []).append(u)
        for k in range(len(effects)):
            total += 1
            strong_any = False
            for scope, pool in pools.items():
                strong = {u for u in pool if effects[k, u] > threshold}
                if not strong:
                    continue
                strong_any = True
                sentences[scope] = sentences.get(scope, 0) + 1
                for name, method in m["methods"].items():
                    bucket = acc.setdefault(name, {}).setdefault(scope, {})
                    check = method["checks"][k]
                    if method["has_curated"]:
                        cited = set(method["curated"][k]) & set(pool)
                        bucket.setdefault("comprehensiveness", []).append(check["comprehensiveness"][scope])
                        bucket.setdefault("sufficiency", []).append(check["sufficiency"][scope])
                        bucket.setdefault("prf", []).append(set_f1(cited, strong))
                        bucket.setdefault("cited", []).append(len(cited))
                    for kk in ks:
                        if scope in check["top_k"]:
                            bucket.setdefault(f"top_{kk}", []).append(check["top_k"][scope][str(kk)])
                    if method["rankings"] is not None:
                        rho = spearman([method["rankings"][k][u] for u in pool], effects[k, pool])
                        if rho is not None:
                            bucket.setdefault("spearman", []).append(rho)
            unscored += not strong_any
    out: dict[str, Any] = {"sentences": sentences, "sentences_total": total, "sentences_without_strong_unit": unscored,
                           "methods": {}}
    for name, per_scope in acc.items():
        out["methods"][name] = {}
        for scope in [ALL, *MODALITIES]:
            values = per_scope.get(scope)
            if values is None:
                continue
            prf = mean_prf(values["prf"]) if values.get("prf") else None
            out["methods"][name][scope] = {
                "cited": _mean(values.get("cited", [])),
                "comprehensiveness": _mean(values.get("comprehensiveness", [])),
                "sufficiency": _mean(values.get("sufficiency", [])),
                "top_k": {str(kk): _mean(values.get(f"top_{kk}", [])) for kk in ks},
                "precision": None if prf is None else round(100 * prf.precision, 2),
                "recall": None if prf is None else round(100 * prf.recall, 2),
                "spearman": _mean(values.get("spearman", [])),
                "spearman_sentences": len(values.get("spearman", []))}
    return out


# --------------------------------------------------------------------------------------------
# With labels
# --------------------------------------------------------------------------------------------
def labelled_units(ref: SourceRef, units: Sequence[SourceUnit]) -> set[int]:
    """The units a ground-truth source stands for: text units it overlaps by half (of either), the image's
    unit, the time units it overlaps by half of the unit's or the label's length."""
    if ref.modality == "text":
        return text_units_of(ref, units)
    hits = set()
    for u in units:
        if u.item != ref.item or u.modality != ref.modality:
            continue
        if ref.modality == "image":
            hits.add(u.index)
            continue
        shared = max(0.0, min(u.time_end, ref.time_end) - max(u.time_start, ref.time_start))
        if shared > 0 and (2 * shared >= u.time_end - u.time_start or 2 * shared >= ref.time_end - ref.time_start):
            hits.add(u.index)
    return hits


def _aligned(result: TraceResult, truth: SampleTruth, alignment: str) -> list[tuple[GoldSpan, int]]:
    pairs = align([s.text for s in truth.spans], [s.text for s in result.spans], alignment)
    return [(truth.spans[k], j) for k, j in pairs]


def label_validity(results: Sequence[TraceResult], truths: Sequence[SampleTruth | None],
                   measures: Mapping[str, Mapping[str, Any]], keys: Sequence[str], alignment: str) -> dict[str, Any]:
    """Shares of labelled and unlabelled units whose removal changes the sentence, over aligned sentences,
    in all and per modality of the unit."""
    counts: dict[str, list[int]] = {}  # scope -> [labelled changed, labelled, unlabelled changed, unlabelled]

    def add(scope: str, labelled: bool, change: bool) -> None:
        row = counts.setdefault(scope, [0, 0, 0, 0])
        base = 0 if labelled else 2
        row[base] += int(change)
        row[base + 1] += 1

    for result, truth, key in zip(results, truths, keys):
        measure = measures.get(key)
        if truth is None or measure is None:
            continue
        changed = np.asarray(measure["changed"], dtype=bool)
        for gold, j in _aligned(result, truth, alignment):
            labelled = set()
            for ref in gold.sources:
                labelled |= labelled_units(ref, result.units)
            for u in result.units:
                for scope in (ALL, u.modality):
                    add(scope, u.index in labelled, bool(changed[j, u.index]))

    def share(a: int, b: int) -> float | None:
        return round(a / b, 4) if b else None

    return {scope: {"labelled": row[1], "labelled_changed": share(row[0], row[1]),
                    "unlabelled": row[3], "unlabelled_changed": share(row[2], row[3])}
            for scope, row in sorted(counts.items(), key=lambda kv: (kv[0] != ALL, kv[0]))}


def _describe(ref: SourceRef) -> str:
    if ref.modality == "text":
        return f"text of item {ref.item} [{ref.char_start}:{ref.char_end}]"
    if ref.modality == "image":
        return f"image item {ref.item}"
    return f"{ref.modality} item {ref.item} {ref.time_start:g}-{ref.time_end:g} s"


def sample_label_checks(results: Sequence[TraceResult], truths: Sequence[SampleTruth | None],
                        measures: Mapping[str, Mapping[str, Any]], records: Sequence[Mapping[str, Any]],
                        alignment: str) -> list[dict[str, Any]]:
    """Each labelled sample's labels checked against what removing units does to its output sentences.

    A sample's labels are *valid* when, for every output sentence aligned with an expected one, every
    labelled source is needed (removing its units changes the sentence) and no unlabelled unit is
    (removing it leaves the sentence as it was); *invalid* otherwise, with each problem in words;
    *unchecked* when no sentence aligned (the model wrote something else) or it was not measured.
    """
    out = []
    for result, truth, record in zip(results, truths, records):
        if truth is None:
            continue
        key = str(record.get("key"))
        row: dict[str, Any] = {"key": key, "id": str(record.get("id", key)), "task": truth.task, "problems": []}
        measure = measures.get(key)
        pairs = _aligned(result, truth, alignment) if measure is not None else []
        if not pairs:
            row.update(status="unchecked", sentences=0,
                       reason="not measured" if measure is None else "no output sentence matches an expected one")
            out.append(row)
            continue
        changed = np.asarray(measure["changed"], dtype=bool)
        for gold, j in pairs:
            labelled: set[int] = set()
            for ref in gold.sources:
                units = labelled_units(ref, result.units)
                labelled |= units
                if not units:
                    row["problems"].append(f"{gold.text!r}: the label {_describe(ref)} matches no source unit")
                elif not changed[j, sorted(units)].any():
                    row["problems"].append(f"{gold.text!r}: removing the labelled {_describe(ref)} changes nothing")
            for u in result.units:
                if u.index not in labelled and changed[j, u.index]:
                    row["problems"].append(f"{gold.text!r}: removing the unlabelled {u.label} changes it")
        row.update(status="invalid" if row["problems"] else "valid", sentences=len(pairs))
        out.append(row)
    return out


def validity_summary(checks: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts of valid, invalid and unchecked samples, in all and per task; ``valid_share`` over the checked."""
    def counts(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        n = {status: sum(r["status"] == status for r in rows) for status in ("valid", "invalid", "unchecked")}
        checked = n["valid"] + n["invalid"]
        return {**n, "valid_share": round(n["valid"] / checked, 4) if checked else None}

    tasks = sorted({str(r["task"]) for r in checks})
    return {"all": counts(checks), "tasks": {t: counts([r for r in checks if str(r["task"]) == t]) for t in tasks}}


def _ref(unit: SourceUnit) -> SourceRef:
    if unit.modality == "text":
        return SourceRef("text", unit.item, char_start=unit.char_start, char_end=unit.char_end)
    if unit.modality == "image":
        return SourceRef("image", unit.item)
    return SourceRef(unit.modality, unit.item, time_start=unit.time_start, time_end=unit.time_end)


def causal_truth(results: Sequence[TraceResult], truths: Sequence[SampleTruth | None],
                 measures: Mapping[str, Mapping[str, Any]], records: Sequence[Mapping[str, Any]],
                 alignment: str) -> GroundTruth:
    """Labels made of the units whose removal changes each output sentence aligned with the constructed labels."""
    samples = []
    for result, truth, record in zip(results, truths, records):
        key = str(record.get("key"))
        measure = measures.get(key)
        if truth is None or measure is None:
            continue
        changed = np.asarray(measure["changed"], dtype=bool)
        spans = tuple(GoldSpan(result.spans[j].text, tuple(_ref(u) for u in result.units if changed[j, u.index]))
                      for _, j in _aligned(result, truth, alignment))
        samples.append(SampleTruth(id=str(record.get("id")), spans=spans, task=truth.task, key=key))
    return GroundTruth(tuple(samples))


def check_targets(summary: Mapping[str, Any], validity: Mapping[str, Any] | None, signals: Sequence[str],
                  reference: str = "random") -> list[dict[str, Any]]:
    """Target lines: labels causal (labelled units change their sentence, unlabelled ones do not); every
    signal's top-k drops above the random baseline's, per scope and k.

    Comprehensiveness and sufficiency are not compared here: they grow and shrink with the size of a
    citation (a baseline whose threshold admits more units removes more), while a top-k drop compares
    rankings at equal size."""
    checks = []
    if validity and ALL in validity:
        v = validity[ALL]
        if v["labelled_changed"] is not None:
            checks.append({"check": f"labelled units change their sentence >= {LABELLED_CHANGE_TARGET:.0%}",
                           "value": v["labelled_changed"], "target": LABELLED_CHANGE_TARGET,
                           "met": v["labelled_changed"] >= LABELLED_CHANGE_TARGET,
                           "gap": round(v["labelled_changed"] - LABELLED_CHANGE_TARGET, 4)})
        if v["unlabelled_changed"] is not None:
            checks.append({"check": f"unlabelled units change their sentence <= {UNLABELLED_CHANGE_TARGET:.0%}",
                           "value": v["unlabelled_changed"], "target": UNLABELLED_CHANGE_TARGET,
                           "met": v["unlabelled_changed"] <= UNLABELLED_CHANGE_TARGET,
                           "gap": round(UNLABELLED_CHANGE_TARGET - v["unlabelled_changed"], 4)})
    methods = summary.get("methods", {})
    base = methods.get(reference)
    for signal in signals:
        for scope, ours in methods.get(signal, {}).items():
            theirs = (base or {}).get(scope, {})
            for k, a in ours.get("top_k", {}).items():
                b = theirs.get("top_k", {}).get(k)
                if a is None or b is None:
                    continue
                margin = round(a - b, 4)
                checks.append({"check": f"{signal} top-{k} drop ({scope}) above {reference}'s", "value": margin,
                               "target": 0.0, "met": margin > 0, "gap": margin})
    return checks
