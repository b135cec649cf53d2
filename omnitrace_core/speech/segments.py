"""Speech segments: the timed pieces of a transcript, and the rules that make them source units.

A :class:`SpeechSegment` is one stretch of speech with its text. Segments come from a user's
transcript (validated strictly: :func:`validate_segments`) or from a speech recogniser (cleaned
leniently: :func:`clean_segments`, since a model's timestamps may overrun or overlap), and are
then merged into sentence-sized units (:func:`merge_segments`) so that a unit is something a
person would cite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from ..errors import InputError

#: Seconds a user's transcript may overrun the media, or overlap its previous segment, before it
#: is an error (subtitle tools round, and container durations differ by a frame). Within the
#: tolerance the segment is clipped to the media / cut at the next segment's start.
TOLERANCE_SECONDS = 0.5

#: What a transcript segment looks like, for error messages.
ACCEPTED_SEGMENT = "{start, end, text} with times in seconds, 0 <= start < end <= the media's duration, in time order"

_SENTENCE_END = (".", "!", "?", "…", "。", "！", "？")
_CLOSERS = "\"')]}»”’"


@dataclass(frozen=True)
class SpeechSegment:
    """One stretch of speech.

    Attributes:
        start, end: seconds from the start of the media (``start <= end`` is checked by
            :func:`validate_segments`, not here, so that parsers can report where a bad
            segment came from).
        text: what is said (may be empty).
    """

    start: float
    end: float
    text: str = ""

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InputError(f"speech segment {name} must be a finite number of seconds, got {value!r}")
            object.__setattr__(self, name, float(value))
        if not isinstance(self.text, str):
            raise InputError(f"speech segment text must be a string, got {type(self.text).__name__}")

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "text": self.text}

    @classmethod
    def from_any(cls, value: Any) -> "SpeechSegment":
        """A segment from a SpeechSegment, a ``{start, end, text}`` mapping or a ``(start, end[, text])`` tuple."""
        if isinstance(value, SpeechSegment):
            return value
        if isinstance(value, Mapping):
            missing = [k for k in ("start", "end") if k not in value]
            if missing:
                raise InputError(f"speech segment {dict(value)!r} lacks {missing}; "
                                 f"each segment needs {ACCEPTED_SEGMENT}")
            return cls(value["start"], value["end"], value.get("text", "") or "")
        if isinstance(value, (tuple, list)) and len(value) in (2, 3):
            return cls(*value)
        raise InputError(f"cannot read a speech segment from {value!r}; give {ACCEPTED_SEGMENT}")


def _describe(index: int, count: int, seg: SpeechSegment) -> str:
    text = " ".join(seg.text.split())
    excerpt = text if len(text) <= 30 else text[:27] + "..."
    return f"segment {index + 1} of {count} ({seg.start:.3f}-{seg.end:.3f} s, {excerpt!r})"


def validate_segments(segments: Iterable[Any], duration: float | None = None,
                      tolerance: float = TOLERANCE_SECONDS) -> tuple[SpeechSegment, ...]:
    """Check a user's segments and return them as SpeechSegments, clipped to the media.

    Args:
        segments: SpeechSegments, ``{start, end, text}`` mappings or ``(start, end, text)`` tuples.
        duration: the media's length in seconds (None: not checked).
        tolerance: seconds a segment may overrun ``duration`` or overlap the previous segment;
            within it the segment is clipped (end to ``duration``, the previous end to this start).

    Returns:
        The segments in order, each with ``0 <= start < end <= duration``, none overlapping.

    Raises:
        InputError: no segments; a negative or reversed time; a segment out of order, overlapping
            its predecessor by more than ``tolerance``, starting at or after the end of the media
            or ending more than ``tolerance`` after it. The message numbers segments from 1.
    """
    raw = list(segments)
    count = len(raw)
    items = []
    for index, value in enumerate(raw):
        try:
            items.append(SpeechSegment.from_any(value))
        except InputError as exc:
            raise InputError(f"segment {index + 1} of {count}: {exc}") from None
    if not count:
        raise InputError(f"the transcript has no segments; give at least one {ACCEPTED_SEGMENT}")
    out: list[SpeechSegment] = []
    for index, seg in enumerate(items):
        where = _describe(index, count, seg)
        if seg.start < 0 or seg.end < 0:
            raise InputError(f"{where} has a negative time; times are seconds from the start, >= 0")
        if seg.end <= seg.start:
            raise InputError(f"{where} ends before it starts (or has no length); each segment needs start < end")
        if duration is not None:
            if seg.start >= duration:
                raise InputError(f"{where} starts at or after the end of the media ({duration:.3f} s); "
                                 "is this the transcript of another file?")
            if seg.end > duration + tolerance:
                raise InputError(f"{where} ends {seg.end - duration:.3f} s after the end of the media "
                                 f"({duration:.3f} s); at most {tolerance} s of overrun is clipped")
            seg = SpeechSegment(seg.start, min(seg.end, duration), seg.text)
        if out:
            prev = out[-1]
            if seg.start < prev.start:
                raise InputError(f"{where} starts before segment {index} ({prev.start:.3f} s); "
                                 "segments must be in time order")
            if seg.start < prev.end:
                if prev.end - seg.start > tolerance or seg.start <= prev.start:
                    raise InputError(f"{where} overlaps segment {index} (which ends at {prev.end:.3f} s) by "
                                     f"{prev.end - seg.start:.3f} s; segments must not overlap (up to "
                                     f"{tolerance} s is trimmed)")
                out[-1] = SpeechSegment(prev.start, seg.start, prev.text)
        out.append(seg)
    return tuple(out)


def clean_segments(segments: Iterable[SpeechSegment], duration: float) -> tuple[SpeechSegment, ...]:
    """Make a recogniser's segments usable: sorted, inside ``[0, duration]``, non-empty, disjoint.

    Recognisers may return timestamps past the end (the last chunk is padded), overlapping
    segments at chunk seams, zero-length segments and empty text; none of that is the user's
    fault, so nothing raises: such segments are clipped, trimmed or dropped.
    """
    kept = []
    for seg in sorted(segments, key=lambda s: (s.start, s.end)):
        text = " ".join(seg.text.split())
        start, end = max(0.0, seg.start), min(duration, seg.end)
        if text and end > start:
            kept.append(SpeechSegment(start, end, text))
    out: list[SpeechSegment] = []
    for seg in kept:
        if out and seg.start < out[-1].end:
            prev = out[-1]
            if seg.start <= prev.start:  # same start: keep the longer of the two texts' spans
                out[-1] = SpeechSegment(prev.start, max(prev.end, seg.end), f"{prev.text} {seg.text}")
                continue
            out[-1] = SpeechSegment(prev.start, seg.start, prev.text)
        out.append(seg)
    return tuple(out)


def ends_sentence(text: str) -> bool:
    """Whether ``text`` ends with sentence-final punctuation (closing quotes/brackets ignored)."""
    return text.rstrip().rstrip(_CLOSERS).endswith(_SENTENCE_END)


def merge_segments(segments: Sequence[SpeechSegment], min_seconds: float = 2.0, max_seconds: float = 30.0,
                   max_gap_seconds: float = 1.0) -> tuple[SpeechSegment, ...]:
    """Merge adjacent segments into sentence-sized units.

    Walking in time order, a segment joins the unit before it when the pause between them is at
    most ``max_gap_seconds``, the joined unit would last at most ``max_seconds``, and one of:

    - the unit so far is shorter than ``min_seconds``;
    - the transcript is punctuated and the unit so far does not end a sentence (a sentence
      split over several subtitle cues or recogniser chunks becomes one unit);
    - the segment is shorter than ``min_seconds`` and ends a sentence itself, or the transcript
      has no punctuation at all (a short segment that *starts* a sentence starts a new unit).

    A unit still shorter than ``min_seconds`` at the end joins its predecessor under the same
    gap and length limits. No segment is ever split, so one longer than ``max_seconds`` stays a
    unit of its own; ``min_seconds=0`` with an unpunctuated transcript keeps the segments as
    they are. Merged texts are joined with a space.

    Args:
        segments: segments in time order, not overlapping (see :func:`validate_segments`).
        min_seconds, max_seconds, max_gap_seconds: the limits above (seconds).
    """
    if max_seconds <= 0 or min_seconds < 0 or max_gap_seconds < 0:
        raise InputError("merge limits must satisfy max_seconds > 0, min_seconds >= 0, max_gap_seconds >= 0")
    punctuated = any(ends_sentence(s.text) for s in segments)
    groups: list[list[SpeechSegment]] = []

    def fits(group: list[SpeechSegment], seg: SpeechSegment) -> bool:
        return seg.start - group[-1].end <= max_gap_seconds and seg.end - group[0].start <= max_seconds

    def text(group: list[SpeechSegment]) -> str:
        return " ".join(s.text.strip() for s in group if s.text.strip())

    for seg in segments:
        if groups and fits(groups[-1], seg):
            group = groups[-1]
            short_unit = group[-1].end - group[0].start < min_seconds
            unfinished = punctuated and not ends_sentence(text(group))
            short_tail = seg.duration < min_seconds and (not punctuated or ends_sentence(seg.text))
            if short_unit or unfinished or short_tail:
                group.append(seg)
                continue
        groups.append([seg])
    if len(groups) > 1 and groups[-1][-1].end - groups[-1][0].start < min_seconds:
        last = groups[-1]
        if last[0].start - groups[-2][-1].end <= max_gap_seconds and last[-1].end - groups[-2][0].start <= max_seconds:
            groups[-2].extend(groups.pop())
    return tuple(SpeechSegment(g[0].start, g[-1].end, text(g)) for g in groups)
