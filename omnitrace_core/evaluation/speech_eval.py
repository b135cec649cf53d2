"""Time-F1 of time-bin units against speech-segment units, on the same samples.

Each sample is traced twice with the same model, signal and generation settings (so the same
output): once with every audio/video item in time bins, once with speech segments (the item's
own transcript, else the speech recogniser). The prediction of a run is the union of the time
ranges of the audio and video sources curated for any output sentence; it is scored against
the sample's true intervals with Time-F1 over 1 s bins (paper, section 4.1). This is a
sample-level protocol: the paper labels support per output sentence with an LLM judge.

    omnitrace speech-eval --questions q.json --truth truth.json \\
        --model Qwen/Qwen2.5-Omni-7B [--asr-model openai/whisper-small] [--output report.json]

The truth file maps sample keys (the ``key`` of the batch CLI's records, from
:func:`omnitrace_core.sample_keys`: the id, or ``"id:task"`` whenever the sample has a task, with
``#1``, ``#2`` ... on repeats) to intervals, ``[start, end]`` or ``{"start", "end", "item"}``, where
``item`` counts the sample's audio and video entries from 0 (default 0). A key that names no
sample of the questions file is an error (the message lists the keys that exist).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..config import CurationConfig, GenerationConfig, SourceConfig
from ..errors import InputError, OmniTraceError
from .metrics import PRF, mean_prf, time_f1

logger = logging.getLogger(__name__)

MODES = ("bins", "segments")
TRUTH_FORMAT = ('a JSON object {"<sample key>": [[start, end], {"start": s, "end": s, "item": 0}, ...]} '
                 '(or a list of {"key": ..., "intervals": [...]})')

Interval = tuple[int, float, float]  # (audio/video item ordinal, start, end)


def _interval(value: Any, where: str) -> Interval:
    if isinstance(value, Mapping) and "start" in value and "end" in value:
        item, start, end = value.get("item", 0), value["start"], value["end"]
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        item, (start, end) = 0, value
    else:
        raise InputError(f"{where}: an interval is [start, end] or {{\"start\", \"end\", \"item\"}}, got {value!r}")
    try:
        interval = (int(item), float(start), float(end))
    except (TypeError, ValueError):
        raise InputError(f"{where}: interval {value!r} needs numbers") from None
    if interval[1] < 0 or interval[2] < interval[1]:
        raise InputError(f"{where}: interval {value!r} needs 0 <= start <= end")
    return interval


def load_truth(source: str | Path | Mapping[str, Any] | Sequence[Any]) -> dict[str, list[Interval]]:
    """True intervals per sample key, from a file path or already-decoded JSON (see the module doc)."""
    data = source
    if isinstance(source, (str, Path)):
        try:
            data = json.loads(Path(source).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"truth file '{source}' cannot be read as JSON ({exc}); pass {TRUTH_FORMAT}") from None
    if isinstance(data, list):
        try:
            data = {str(entry["key"]): entry["intervals"] for entry in data}
        except (TypeError, KeyError):
            raise InputError(f"truth list entries need 'key' and 'intervals'; pass {TRUTH_FORMAT}") from None
    if not isinstance(data, Mapping):
        raise InputError(f"truth must be {TRUTH_FORMAT}")
    out = {}
    for key, intervals in data.items():
        if not isinstance(intervals, list):
            raise InputError(f"truth for sample {key}: expected a list of intervals, got {intervals!r}")
        out[str(key)] = [_interval(v, f"truth for sample {key}") for v in intervals]
    return out


def predicted_intervals(result: Any) -> list[Interval]:
    """Time ranges of the audio and video sources curated for any span of a TraceResult."""
    ordinal = {info.index: n for n, info in enumerate(i for i in result.items if i.modality in ("audio", "video"))}
    return [(ordinal[src.item], src.time_start, src.time_end) for span in result.spans for src in span.sources
            if src.modality in ("audio", "video") and src.time_start is not None]


@dataclass
class SpeechComparison:
    """Per-mode Time-F1 of the samples that have truth.

    Attributes:
        scores: mode -> sample key -> PRF.
        errors: sample key -> error message (samples that failed to trace in some mode).
        bin_seconds: the metric's bin width.
    """

    scores: dict[str, dict[str, PRF]] = field(default_factory=lambda: {m: {} for m in MODES})
    errors: dict[str, str] = field(default_factory=dict)
    bin_seconds: float = 1.0

    def mean(self, mode: str) -> PRF:
        return mean_prf(list(self.scores[mode].values()))

    def to_dict(self) -> dict[str, Any]:
        return {"bin_seconds": self.bin_seconds, "errors": dict(self.errors),
                "modes": {m: {"mean": self.mean(m).to_dict(), "samples": {k: v.to_dict() for k, v in s.items()}}
                          for m, s in self.scores.items()}}

    def table(self) -> str:
        lines = [f"{'units':<10} {'samples':>7} {'precision':>9} {'recall':>7} {'time-F1':>7}"]
        for mode in self.scores:
            m = self.mean(mode)
            lines.append(f"{mode:<10} {len(self.scores[mode]):>7} {m.precision:>9.4f} {m.recall:>7.4f} {m.f1:>7.4f}")
        if self.errors:
            lines.append(f"({len(self.errors)} samples failed: {', '.join(sorted(self.errors))})")
        return "\n".join(lines)


def _items_for(items: Sequence[Any], mode: str) -> list[Any]:
    if mode == "segments":
        return list(items)
    return [dataclasses.replace(item, transcript="bins") if item.modality in ("audio", "video") else item
            for item in items]


def compare_audio_units(tracer: Any, samples: Sequence[Mapping[str, Any]], truth: Mapping[str, Sequence[Interval]],
                        *, bases: Sequence[Path] = (Path("."),), generation: GenerationConfig | None = None,
                        sources: SourceConfig | None = None, curation: CurationConfig | None = None,
                        bin_seconds: float = 1.0) -> SpeechComparison:
    """Trace each sample with truth in both unit modes and score each with Time-F1.

    Args:
        tracer: a :class:`~omnitrace_core.Tracer` (its recogniser serves the segments mode).
        samples: official-format samples (see :func:`omnitrace_core.batch.load_questions`).
        truth: sample key -> true intervals (see :func:`load_truth`).
        bases: folders relative media and transcript paths resolve against.
        generation, curation: shared by both modes; sources: the rest of the source settings
            (``audio_units`` is set per mode).
        bin_seconds: the Time-F1 bin width.
    """
    from ..inputs import parse_sample, sample_keys

    keys = sample_keys(samples)
    check_truth_keys(truth, keys, samples)
    sources = sources or tracer.sources
    report = SpeechComparison(bin_seconds=bin_seconds)
    for key, raw in zip(keys, samples):
        if key not in truth:
            continue
        try:
            sample = parse_sample(raw, key, bases)
            results = {mode: tracer.trace(_items_for(sample.items, mode), generation=generation, curation=curation,
                                          sources=dataclasses.replace(sources, audio_units=mode))
                       for mode in MODES}
        except OmniTraceError as exc:
            report.errors[key] = f"{type(exc).__name__}: {exc}"
            logger.warning("sample %s failed: %s", key, exc)
            continue
        for mode, result in results.items():
            report.scores[mode][key] = time_f1(predicted_intervals(result), truth[key], bin_seconds)
    return report


def check_truth_keys(truth: Mapping[str, Any], keys: Sequence[str], samples: Sequence[Any] = ()) -> None:
    """Refuse truth that names no sample or samples the questions file does not have.

    Args:
        truth: sample key -> intervals.
        keys: the questions file's keys (:func:`omnitrace_core.sample_keys`).
        samples: the samples, to suggest the right key for a truth key that is a bare id.

    Raises:
        InputError: naming the unknown keys and the keys that exist.
    """
    if not truth:
        raise InputError(f"the truth names no sample; pass {TRUTH_FORMAT}")
    unknown = [key for key in truth if key not in set(keys)]
    if not unknown:
        return
    hints = []
    for key in unknown:
        same_id = [k for k, raw in zip(keys, samples) if isinstance(raw, Mapping) and str(raw.get("id")) == key]
        if same_id:
            hints.append(f"'{key}' is the id of {', '.join(repr(k) for k in same_id)}")
    shown = ", ".join(repr(k) for k in keys[:10]) + (f" ... ({len(keys)} in all)" if len(keys) > 10 else "")
    raise InputError(
        f"the truth names {len(unknown)} sample key(s) the questions file does not have: "
        f"{', '.join(repr(k) for k in unknown[:10])}{' ...' if len(unknown) > 10 else ''}. A key is the sample's "
        f"id, or 'id:task' when the sample has a task ({'; '.join(hints) + '; ' if hints else ''}"
        f"the file's keys: {shown or 'none'})")


if __name__ == "__main__":  # pragma: no cover - the same as ``omnitrace speech-eval``
    from ..cli import main

    sys.exit(main(["speech-eval", *sys.argv[1:]], prog="python -m omnitrace_core"))
