"""Score predicted sources of output sentences against ground truth, per task and per modality.

Every method (an OmniTrace signal under some curation, or a baseline) is reduced to the same
shape, a :class:`SamplePrediction`: the sample's source units and, per output sentence, the
units it predicts. Scoring then does, per sample:

1. align expected sentences with output sentences (``"text"``: equal after normalising case and
   whitespace, in order; ``"index"``: by position). Expected sentences the output does not
   contain are *unaligned*: attribution is defined relative to what the model said, so they are
   counted (see ``aligned``) but not scored;
2. per aligned sentence and modality, compare predicted with true sources: text units and
   images with span-level F1 (:func:`~.metrics.set_f1`), audio and video with Time-F1 over
   1-second bins (:func:`~.metrics.time_f1`). A (sentence, modality) pair is scored when the
   truth or the prediction has a source of that modality, so a source of the wrong modality
   costs the modality it was predicted in;
3. average per task and modality (macro over sentences), and over all tasks per modality.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from ..inputs import MODALITIES
from ..sources import SourceUnit
from .groundtruth import SampleTruth, SourceRef
from .metrics import PRF, mean_prf, set_f1, time_f1

TIMED = ("audio", "video")
ALIGNMENTS = ("text", "index")


@dataclass(frozen=True)
class SpanPrediction:
    """An output sentence and the source units predicted for it (indices into the sample's units)."""

    text: str
    units: tuple[int, ...]
    scores: Mapping[int, float] | None = None  # per-unit scores behind the choice, when there are any


@dataclass(frozen=True)
class SamplePrediction:
    """One method's predictions for one sample.

    Attributes:
        key: the trace record's key; ``id`` / ``task`` its metadata.
        units: the sample's source units (as in the trace).
        item_texts: text of every text item (for resolving option lines), by item index.
        spans: the output sentences, in order.
        output: the whole generated text.
        option_masses: option letter -> attribution mass of the answer sentence (QA, when known).
    """

    key: str
    id: str
    task: str | None
    units: tuple[SourceUnit, ...]
    item_texts: Mapping[int, str]
    spans: tuple[SpanPrediction, ...]
    output: str = ""
    option_masses: Mapping[str, float] | None = None


@dataclass
class Scores:
    """Per-sentence scores collected by task and modality, averaged on demand."""

    by_task: dict[tuple[str, str], list[PRF]] = field(default_factory=lambda: defaultdict(list))
    aligned: int = 0
    expected: int = 0
    samples: int = 0
    missing: list[str] = field(default_factory=list)

    def add(self, task: str, modality: str, score: PRF) -> None:
        self.by_task[(task, modality)].append(score)

    def modality(self, modality: str) -> tuple[PRF, int]:
        """Mean over every scored sentence of every task, and how many there were."""
        scores = [s for (_, m), v in self.by_task.items() if m == modality for s in v]
        return mean_prf(scores), len(scores)

    def task(self, task: str, modality: str) -> tuple[PRF, int]:
        scores = self.by_task.get((task, modality), [])
        return mean_prf(scores), len(scores)

    def tasks(self) -> list[str]:
        return sorted({t for t, _ in self.by_task})

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"aligned_sentences": self.aligned, "expected_sentences": self.expected,
                               "samples": self.samples, "missing_samples": list(self.missing), "modalities": {},
                               "tasks": {}}
        for m in MODALITIES:
            prf, n = self.modality(m)
            if n:
                out["modalities"][m] = {**_pct(prf), "sentences": n}
        for (task, m), scores in sorted(self.by_task.items()):
            out["tasks"].setdefault(task, {})[m] = {**_pct(mean_prf(scores)), "sentences": len(scores)}
        return out


def _pct(prf: PRF) -> dict[str, float]:
    return {"precision": round(100 * prf.precision, 2), "recall": round(100 * prf.recall, 2),
            "f1": round(100 * prf.f1, 2)}


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def align(expected: Sequence[str], produced: Sequence[str], mode: str = "text") -> list[tuple[int, int]]:
    """Pairs (expected index, produced index) of aligned sentences (see the module docstring)."""
    if mode == "index":
        return [(k, k) for k in range(min(len(expected), len(produced)))]
    if mode != "text":
        raise ValueError(f"unknown alignment {mode!r}; known: {', '.join(ALIGNMENTS)}")
    pairs, cursor = [], 0
    produced_norm = [normalise(p) for p in produced]
    for k, sentence in enumerate(expected):
        target = normalise(sentence)
        for j in range(cursor, len(produced_norm)):
            if produced_norm[j] == target:
                pairs.append((k, j))
                cursor = j + 1
                break
    return pairs


def _overlap(a0: int, a1: int, b0: int, b1: int) -> int:
    return max(0, min(a1, b1) - max(a0, b0))


def text_units_of(ref: SourceRef, units: Sequence[SourceUnit]) -> set[int]:
    """The text units a true text range stands for: those it overlaps by half of either's length."""
    hits = set()
    for u in units:
        if u.modality != "text" or u.item != ref.item or u.char_start is None:
            continue
        shared = _overlap(u.char_start, u.char_end, ref.char_start, ref.char_end)
        if shared and (2 * shared >= u.char_end - u.char_start or 2 * shared >= ref.char_end - ref.char_start):
            hits.add(u.index)
    return hits


def truth_sets(sources: Iterable[SourceRef], units: Sequence[SourceUnit]) -> dict[str, set]:
    """True sources by modality: text unit keys, image items, (item, start, end) intervals."""
    out: dict[str, set] = {m: set() for m in MODALITIES}
    for ref in sources:
        if ref.modality == "text":
            hits = text_units_of(ref, units)
            # a range no unit stands for (e.g. a prompt sentence when the prompt is no source) stays a miss
            out["text"].update(("unit", u) for u in hits) if hits else out["text"].add(
                ("range", ref.item, ref.char_start, ref.char_end))
        elif ref.modality == "image":
            out["image"].add(ref.item)
        else:
            out[ref.modality].add((ref.item, ref.time_start, ref.time_end))
    return out


def predicted_sets(unit_ids: Iterable[int], units: Sequence[SourceUnit]) -> dict[str, set]:
    """Predicted sources by modality, in the representation of :func:`truth_sets`."""
    out: dict[str, set] = {m: set() for m in MODALITIES}
    for index in unit_ids:
        u = units[index]
        if u.modality == "text":
            out["text"].add(("unit", u.index))
        elif u.modality == "image":
            out["image"].add(u.item)
        elif u.modality in TIMED:
            out[u.modality].add((u.item, u.time_start, u.time_end))
    return out


def score_sets(predicted: Mapping[str, set], truth: Mapping[str, set], bin_seconds: float = 1.0
               ) -> dict[str, PRF]:
    """Per modality with a prediction or a truth: set F1 (text, image) or Time-F1 (audio, video)."""
    out = {}
    for m in MODALITIES:
        p, t = predicted.get(m, set()), truth.get(m, set())
        if not p and not t:
            continue
        out[m] = time_f1(p, t, bin_seconds) if m in TIMED else set_f1(p, t)
    return out


def score(predictions: Iterable[SamplePrediction], truths: Mapping[str, SampleTruth], alignment: str = "text",
          bin_seconds: float = 1.0) -> Scores:
    """Score every prediction whose key has ground truth in ``truths`` (key -> labels)."""
    result = Scores()
    for pred in predictions:
        truth = truths.get(pred.key)
        if truth is None:
            result.missing.append(pred.key)
            continue
        result.samples += 1
        result.expected += len(truth.spans)
        task = truth.task or pred.task or "all"
        pairs = align([s.text for s in truth.spans], [s.text for s in pred.spans], alignment)
        result.aligned += len(pairs)
        for k, j in pairs:
            sets = score_sets(predicted_sets(pred.spans[j].units, pred.units),
                              truth_sets(truth.spans[k].sources, pred.units), bin_seconds)
            for modality, prf in sets.items():
                result.add(task, modality, prf)
    return result
