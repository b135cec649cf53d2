"""Run the whole evaluation: trace (or read traces), build every method's predictions, score them.

The pieces: :mod:`.predictions` (traces -> predictions), :mod:`.baselines`, :mod:`.scoring`,
:mod:`.outputs` (answer correctness). Traces are written by the batch CLI's own loop
(:func:`omnitrace_core.batch.run_batch`) into ``work_dir``, so a rerun with the same ``work_dir``
resumes, and ``python -m omnitrace_core trace`` output can be scored directly.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..batch import run_batch
from ..config import CurationConfig, GenerationConfig, SourceConfig
from ..curation import ablation_configs, list_token_rules
from ..errors import InputError
from ..inputs import MODALITIES
from ..result import TraceResult
from . import baselines as B
from .groundtruth import GroundTruth, SampleTruth
from .metrics import option_consistency
from .outputs import output_accuracy, parse_option
from .predictions import from_trace, read_records
from .scoring import SamplePrediction, score

logger = logging.getLogger(__name__)

#: The known-truth benchmark's bars on the demo model, checked and printed (with their gaps) by the report:
#: answers, label validity, the best signal's F1 per modality, every signal's margin over each baseline.
QA_BAR, QA_STRETCH = 85.0, 95.0
DESCRIPTION_BAR = 95.0
VALIDITY_BAR = 95.0
TARGETS = {"text": 85.0, "image": 85.0, "audio": 70.0, "video": 70.0}
BASELINE_MARGINS = {"random": 30.0, "embedding": 10.0}
ABLATION_LABELS = {"full": "Full model (default)", "no_pos_weights": "w/o POS weighting",
                   "no_confidence": "w/o confidence", "no_run_coherence": "w/o run coherence",
                   "no_p_min": "w/o p_min filtering", "no_coverage": "w/o coverage cut"}


@dataclass
class Split:
    """Samples (official format) and their labels; ``bases`` resolve relative media paths."""

    name: str
    samples: list[dict[str, Any]]
    truth: GroundTruth
    bases: list[Path]
    traces: dict[str, Path] = field(default_factory=dict)  # signal -> JSON Lines of traces


@dataclass
class Traced:
    """The traces of one split under one signal, with the labels of each record."""

    records: list[dict[str, Any]]
    results: list[TraceResult]
    truths: list[SampleTruth | None]

    def truth_map(self) -> dict[str, SampleTruth]:
        return {str(r["key"]): t for r, t in zip(self.records, self.truths) if t is not None}

    def without_labels(self, keys: set[str]) -> "Traced":
        """The same traces with the labels of ``keys`` dropped (those samples are no longer scored)."""
        return Traced(self.records, self.results,
                      [None if str(r["key"]) in keys else t for r, t in zip(self.records, self.truths)])


def load_traced(path: Path, truth: GroundTruth, keys: set[str] | None = None) -> Traced:
    """The ``ok`` traces of a file (only those of ``keys``, the split's samples, when given)."""
    records, results, truths = [], [], []
    for record, result in read_records(path):
        if keys is not None and str(record.get("key")) not in keys:
            continue  # a trace file written for more samples (an earlier run without --limit)
        records.append(record)
        results.append(result)
        truths.append(truth.lookup(record))
    return Traced(records, results, truths)


def trace_split(tracer: Callable[[], Any], split: Split, signal: str, out: Path, limit: int | None,
                generation: GenerationConfig, sources: SourceConfig, progress: bool, *,
                curation: CurationConfig, model: str, dtype: str | None) -> Path:
    """Trace a split into ``out`` with :func:`~omnitrace_core.batch.run_batch`, resuming what it holds.

    ``tracer`` is loaded only if some sample is left, so the run's fingerprint cannot be read from it:
    ``model`` (as the user named it), ``dtype`` and the tracer's ``curation`` are passed in, and an
    ``out`` traced with another model, signal or setting is refused (UsageError) rather than mixed.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = run_batch(tracer, split.samples, out, bases=split.bases, signal=signal, generation=generation,
                        sources=sources, curation=curation, limit=limit, progress=progress, model=model,
                        dtype=dtype, resume_advice=f"rerun with the model and settings it was traced with, "
                                                   f"or give another --work-dir (or delete '{out}')")
    logger.info("%s", summary.line())
    return out


def predictions(traced: Traced, curation: CurationConfig | None = None) -> list[SamplePrediction]:
    return [from_trace(r, res, curation, t) for r, res, t in zip(traced.records, traced.results, traced.truths)]


def consistency(preds: Sequence[SamplePrediction]) -> dict[str, Any]:
    masses, chosen = [], []
    for p in preds:
        if p.option_masses is not None:
            masses.append(p.option_masses)
            chosen.append(parse_option(p.output))
    value, n = option_consistency(masses, chosen)
    return {"consistency": round(100 * value, 2), "samples": n}


def summarise(preds: Sequence[SamplePrediction], traced: Traced, alignment: str) -> dict[str, Any]:
    scores = score(preds, traced.truth_map(), alignment)
    return {**scores.to_dict(), "option_consistency": consistency(preds)}


@dataclass(frozen=True)
class Expected:
    """What :func:`~.outputs.output_accuracy` reads of a sample: its task, correct letter, expected output."""

    task: str
    option: str | None
    answer: str
    question_type: str | None = None


def accuracy(traced: Traced) -> dict[str, Any]:
    """Answer correctness of the traced outputs against the labels' expected sentences."""
    samples, texts = [], []
    for record, result, truth in zip(traced.records, traced.results, traced.truths):
        if truth is None:
            continue
        samples.append(Expected(truth.task or str(record.get("task")), truth.option,
                                " ".join(s.text for s in truth.spans), truth.question_type))
        texts.append(result.text)
    return output_accuracy(samples, texts)


def mean_f1(per_modality: Mapping[str, float | None]) -> float:
    """Mean F1 over the modalities that have one (which signal is best)."""
    values = [v for v in per_modality.values() if v is not None]
    return sum(values) / len(values) if values else 0.0


@dataclass
class BaselineRun:
    """One baseline on the scored split: its predictions and per-sentence unit scores.

    ``preds``: thresholded predictions (None when there are no labels to tune thresholds on);
    ``tables``: per record, per output sentence, unit -> score (None for self-attribution).
    """

    preds: list[SamplePrediction] | None
    tables: list[B.ScoreTable] | None
    settings: dict[str, Any]
    seconds: float


def run_baselines(names: Sequence[str], test: Traced, dev: Traced | None, backend_fn: Callable[[], Any],
                  items_fn: Callable[[Split, dict[str, Any]], list], splits: tuple[Split, Split | None],
                  sources: SourceConfig, alignment: str, seed: int = 0, labelled: bool = True
                  ) -> dict[str, BaselineRun]:
    """The requested baselines on ``test`` (thresholds tuned on ``dev``, or on ``test`` without a dev split;
    without labels only their scores)."""
    runs: dict[str, BaselineRun] = {}
    test_base = predictions(test)
    dev_base = predictions(dev) if dev is not None else None
    tune_on = (dev_base, dev) if dev_base is not None else (test_base, test)
    if dev is None and labelled:
        logger.warning("no tuning split: baseline thresholds are tuned on the scored split itself")

    def tables_for(name: str, traced: Traced, split: Split) -> list[B.ScoreTable]:
        if name == "random":
            return [B.random_scores(str(r["key"]), res, seed) for r, res in zip(traced.records, traced.results)]
        backend = backend_fn()
        return [B.embedding_scores(backend, items_fn(split, r), res, sources)
                for r, res in zip(traced.records, traced.results)]

    for name in names:
        started = time.perf_counter()
        if name in ("random", "embedding"):
            if not labelled:
                runs[name] = BaselineRun(None, tables_for(name, test, splits[0]),
                                         {"description": B.describe(name)}, 0.0)
            else:
                tune_tables = tables_for(name, tune_on[1], splits[1] if dev is not None else splits[0])
                thresholds = B.tune_thresholds(tune_on[0], tune_tables,
                                               lambda p: score(p, tune_on[1].truth_map(), alignment))
                test_tables = tune_tables if dev is None else tables_for(name, test, splits[0])
                runs[name] = BaselineRun(B.predictions_at(test_base, test_tables, thresholds), test_tables,
                                         {"description": B.describe(name), "thresholds": thresholds}, 0.0)
        elif name == "self":
            backend = backend_fn()
            chosen, parsed, total = [], 0, 0
            for record, result in zip(test.records, test.results):
                units, ok = B.self_attribution(backend, items_fn(splits[0], record), result, sources)
                chosen.append(units)
                parsed += ok
                total += len(result.spans)
            runs[name] = BaselineRun([B.as_prediction(p, c) for p, c in zip(test_base, chosen)], None,
                                     {"description": B.describe(name), "parsed": parsed, "asked": total,
                                      "follows_prompt": parsed > 0}, 0.0)
        else:
            raise InputError(f"unknown baseline {name!r}; known: random, embedding, self")
        runs[name].seconds = round(time.perf_counter() - started, 1)
    return runs


def baseline_methods(names: Sequence[str], test: Traced, dev: Traced | None, backend_fn: Callable[[], Any],
                     items_fn: Callable[[Split, dict[str, Any]], list], splits: tuple[Split, Split | None],
                     sources: SourceConfig, alignment: str, seed: int = 0,
                     runs: Mapping[str, BaselineRun] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Scores of the requested baselines on ``test`` (thresholds tuned on ``dev``) and their settings
    (``runs``: baselines already run by :func:`run_baselines`)."""
    if runs is None:
        runs = run_baselines(names, test, dev, backend_fn, items_fn, splits, sources, alignment, seed)
    results = {name: {**summarise(run.preds, test, alignment), "seconds": run.seconds}
               for name, run in runs.items() if run.preds is not None}
    return results, {name: run.settings for name, run in runs.items()}


def curation_variants(traced: Traced, signal_curation: CurationConfig, alignment: str) -> dict[str, Any]:
    """The paper's Table 3 ablations of the curation the traces were made with."""
    return {name: summarise(predictions(traced, config), traced, alignment)
            for name, config in ablation_configs(signal_curation).items()}


def token_rule_variants(traced: Traced, signal_curation: CurationConfig, alignment: str) -> dict[str, Any]:
    return {rule: summarise(predictions(traced, replace(signal_curation, token_rule=rule)), traced, alignment)
            for rule in list_token_rules()}


def _bar(check: str, value: float | None, target: float, stretch: bool = False) -> dict[str, Any]:
    """One bar: met when ``value >= target``; ``value`` None when it was not measured."""
    row: dict[str, Any] = {"check": check, "value": None if value is None else round(value, 2), "target": target,
                           "met": None if value is None else value >= target,
                           "gap": None if value is None else round(value - target, 2)}
    if stretch:
        row["stretch"] = True
    return row


def _pct(value: float | None) -> float | None:
    return None if value is None else 100 * value


def check_targets(outputs: Mapping[str, Any], f1: Mapping[str, Mapping[str, float | None]], signals: Sequence[str],
                  labels: str, validity: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The benchmark's bars: answers right, labels valid, the best signal's F1 and every signal's margins.

    Args:
        outputs: :func:`accuracy` of the traced outputs.
        f1: method -> modality -> F1 (0-100) against ``labels`` ("constructed" or "causal"), signals and baselines.
        validity: :func:`~.faithfulness.validity_summary` of the per-sample label checks (None: not measured,
            the bar is printed as such).
    """
    summary = outputs["summary"]
    checks = []
    if summary["qa_accuracy"] is not None:
        checks += [_bar(f"QA answers correct >= {QA_BAR:g}%", _pct(summary["qa_accuracy"]), QA_BAR),
                   _bar(f"QA answers correct >= {QA_STRETCH:g}%", _pct(summary["qa_accuracy"]), QA_STRETCH,
                        stretch=True)]
    if summary["description_sentence_accuracy"] is not None:
        checks.append(_bar(f"description sentences exactly right >= {DESCRIPTION_BAR:g}%",
                           _pct(summary["description_sentence_accuracy"]), DESCRIPTION_BAR))
    checks.append(_bar(f"samples whose labels pass the removal check >= {VALIDITY_BAR:g}%"
                       + ("" if validity else " (not measured: run with --faithfulness)"),
                       _pct(validity["all"]["valid_share"]) if validity else None, VALIDITY_BAR))
    ours = [s for s in signals if s in f1]
    if not ours:
        return checks
    best = max(ours, key=lambda s: mean_f1(f1[s]))
    for m, target in TARGETS.items():
        got = f1[best].get(m)
        if got is not None:
            checks.append(_bar(f"{best} {m} F1 against {labels} labels >= {target:g}", got, target))
    for signal in ours:
        for base, margin_target in BASELINE_MARGINS.items():
            if base not in f1:
                continue
            for m in MODALITIES:
                got = f1[signal].get(m)
                if got is None:
                    continue
                margin = got - (f1[base].get(m) or 0.0)
                checks.append(_bar(f"{signal} ahead of {base} on {m} ({labels} labels) by >= {margin_target:g}",
                                   margin, margin_target))
    return checks


def f1_table(methods: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float | None]]:
    """method -> modality -> F1 from scored summaries (``{"modalities": {m: {"f1": ...}}}``)."""
    return {name: {m: v.get("f1") for m, v in summary["modalities"].items()} for name, summary in methods.items()}
