"""Attribution metrics of the OmniTrace paper (section 4.1): Time-F1 and span-level set F1.

Time-F1 discretises time into bins (1 s in the paper) and treats each bin as a binary label:
a bin is predicted (or true) when a predicted (or true) interval overlaps it by more than
nothing. Span-level F1 compares sets of discrete source units. Both use the same conventions
for empty inputs:

- nothing predicted and nothing true: precision = recall = F1 = 1 (perfect agreement);
- nothing predicted, something true: precision = recall = F1 = 0;
- something predicted, nothing true: precision = recall = F1 = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Hashable, Iterable, Mapping, Sequence

from ..errors import InputError


@dataclass(frozen=True)
class PRF:
    """Precision, recall and F1, with the counts they come from (counts are 0 for means)."""

    precision: float
    recall: float
    f1: float
    predicted: int = 0
    true: int = 0
    hits: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _prf(predicted: set, truth: set) -> PRF:
    hits = len(predicted & truth)
    if not predicted and not truth:
        return PRF(1.0, 1.0, 1.0)
    precision = hits / len(predicted) if predicted else 0.0
    recall = hits / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return PRF(precision, recall, f1, len(predicted), len(truth), hits)


def time_bins(intervals: Iterable[Sequence[Any]], bin_seconds: float = 1.0) -> set[tuple[Hashable, int]]:
    """The bins that a set of time intervals touches.

    Args:
        intervals: ``(start, end)`` pairs in seconds, or ``(key, start, end)`` triples where the
            key (e.g. an item index) keeps the timelines of several media apart.
        bin_seconds: bin width; bin k covers ``[k * bin_seconds, (k + 1) * bin_seconds)``.

    Returns:
        ``{(key, k)}`` (key None for pairs) for every bin that an interval overlaps by more than
        nothing; a zero-length interval marks the bin holding its instant.

    Raises:
        InputError: a malformed interval, a negative time or an end before its start.
    """
    if not bin_seconds > 0:
        raise InputError(f"bin_seconds must be > 0, got {bin_seconds}")
    bins: set[tuple[Hashable, int]] = set()
    for interval in intervals:
        if len(interval) == 2:
            key, (start, end) = None, interval
        elif len(interval) == 3:
            key, start, end = interval
        else:
            raise InputError(f"an interval is (start, end) or (key, start, end), got {interval!r}")
        start, end = float(start), float(end)
        if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end < start:
            raise InputError(f"interval {interval!r} needs finite times with 0 <= start <= end")
        first = math.floor(start / bin_seconds)
        last = first if end == start else math.ceil(end / bin_seconds) - 1
        bins.update((key, k) for k in range(first, max(first, last) + 1))
    return bins


def time_f1(predicted: Iterable[Sequence[Any]], truth: Iterable[Sequence[Any]], bin_seconds: float = 1.0) -> PRF:
    """Time-F1 of predicted against true time intervals over ``bin_seconds`` bins (see :func:`time_bins`).

    Example:
        >>> time_f1([(0.0, 2.0)], [(1.0, 3.0)]).f1   # bins {0, 1} vs {1, 2}
        0.5
    """
    return _prf(time_bins(predicted, bin_seconds), time_bins(truth, bin_seconds))


def set_f1(predicted: Iterable[Hashable], truth: Iterable[Hashable]) -> PRF:
    """Span-level F1 of a predicted set of source units against the true set."""
    return _prf(set(predicted), set(truth))


def mean_prf(scores: Sequence[PRF]) -> PRF:
    """Macro average (mean of each of precision, recall and F1); all zero for no scores."""
    if not scores:
        return PRF(0.0, 0.0, 0.0)
    n = len(scores)
    return PRF(sum(s.precision for s in scores) / n, sum(s.recall for s in scores) / n, sum(s.f1 for s in scores) / n)


def attributed_option(masses: Mapping[str, float]) -> str | None:
    """The option with the largest attribution mass (paper, appendix B.3), or None when all are 0.

    Ties go to the alphabetically first option, so the result is deterministic.
    """
    best, best_mass = None, 0.0
    for option in sorted(masses):
        mass = float(masses[option])
        if not math.isfinite(mass):
            raise InputError(f"option {option!r} has a non-finite mass {mass!r}")
        if mass > best_mass:
            best, best_mass = option, mass
    return best


def option_consistency(masses: Sequence[Mapping[str, float]], chosen: Sequence[str | None]) -> tuple[float, int]:
    """Top-1 option consistency (appendix B.3): how often the most attributed option is the chosen one.

    Args:
        masses: per sample, option letter -> attribution mass of that option's source chunk in
            the answer span (the confidence- and POS-weighted votes of its tokens).
        chosen: per sample, the option the model's output states (None: no option parsed).

    Returns:
        (consistency in [0, 1], number of samples scored). Samples without a parsed option are
        not scored; a sample whose options all have zero mass counts as inconsistent. No scored
        sample gives (0.0, 0).
    """
    if len(masses) != len(chosen):
        raise InputError(f"masses and chosen differ in length ({len(masses)} vs {len(chosen)})")
    scored = [(m, c) for m, c in zip(masses, chosen) if c is not None]
    if not scored:
        return 0.0, 0
    hits = sum(int(attributed_option(m) == c) for m, c in scored)
    return hits / len(scored), len(scored)
