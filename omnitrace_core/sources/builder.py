"""Build the source units and the position -> atom map from a token layout."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from .. import layout as L
from ..config import SourceConfig
from ..inputs import Item, TextItem
from ..nlp import sentence_spans

if TYPE_CHECKING:
    from ..speech import SpeechSegment

# Atom kinds
ATOM_TEXT, ATOM_TILE, ATOM_AUDIO, ATOM_VISUAL = "text", "tile", "audio", "visual"


@dataclass(frozen=True)
class SourceUnit:
    """One source unit.

    Attributes:
        index: position in the unit list.
        modality: "text", "image", "audio" or "video".
        item: index of the input item.
        label: short human-readable description.
        char_start, char_end: the sentence's range in its text item (text units).
        time_start, time_end: seconds (audio and video units).
        text: what is said in a speech-segment unit (None for every other unit).
    """

    index: int
    modality: str
    item: int
    label: str
    char_start: int | None = None
    char_end: int | None = None
    time_start: float | None = None
    time_end: float | None = None
    text: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SourceUnit":
        return cls(**data)


@dataclass(frozen=True)
class SourceSet:
    """Units, their atoms, and which atom each prompt position feeds.

    Attributes:
        units: the source units.
        atom_unit: (A,) unit index of each atom.
        atom_kind: (A,) atom kinds (text, tile, audio, visual).
        atom_tile: (A,) tile index for tile atoms, -1 otherwise.
        position_atom: (L,) atom of each prompt position, -1 for positions that are no source.
    """

    units: tuple[SourceUnit, ...]
    atom_unit: np.ndarray
    atom_kind: tuple[str, ...]
    atom_tile: np.ndarray
    position_atom: np.ndarray

    def __post_init__(self) -> None:
        if not (len(self.atom_unit) == len(self.atom_kind) == len(self.atom_tile)):
            raise ValueError("SourceSet atom arrays differ in length")
        if len(self.atom_unit) and (self.atom_unit.min() < 0 or self.atom_unit.max() >= len(self.units)):
            raise ValueError("SourceSet.atom_unit points outside the unit list")
        if self.position_atom.size and self.position_atom.max() >= len(self.atom_unit):
            raise ValueError("SourceSet.position_atom points outside the atom list")

    @property
    def num_atoms(self) -> int:
        return len(self.atom_unit)

    def unit_totals(self, atom_values: np.ndarray) -> np.ndarray:
        """Sum atom values (..., A) into unit values (..., U)."""
        out = np.zeros(atom_values.shape[:-1] + (len(self.units),), dtype=np.float64)
        np.add.at(out.T, self.atom_unit, np.moveaxis(atom_values, -1, 0))
        return out

    def unit_maxima(self, atom_values: np.ndarray) -> np.ndarray:
        """Max of atom values (..., A) within each unit (..., U)."""
        out = np.zeros(atom_values.shape[:-1] + (len(self.units),), dtype=np.float64)
        np.maximum.at(out.T, self.atom_unit, np.moveaxis(atom_values, -1, 0))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "units": [u.to_dict() for u in self.units],
            "atom_unit": self.atom_unit.tolist(),
            "atom_kind": list(self.atom_kind),
            "atom_tile": self.atom_tile.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SourceSet":
        return cls(
            units=tuple(SourceUnit.from_dict(u) for u in data["units"]),
            atom_unit=np.asarray(data["atom_unit"], dtype=np.int64),
            atom_kind=tuple(data["atom_kind"]),
            atom_tile=np.asarray(data["atom_tile"], dtype=np.int64),
            position_atom=np.zeros(0, dtype=np.int64),  # not needed after tracing
        )


def _first_visible(text: str, start: int, end: int) -> int:
    """Index of the first non-whitespace character in text[start:end] (start if none)."""
    for i in range(start, end):
        if not text[i].isspace():
            return i
    return start


def _time_bins(duration: float, width: float) -> list[tuple[float, float]]:
    count = max(1, math.ceil(duration / width - 1e-9))
    return [(k * width, min((k + 1) * width, duration)) for k in range(count)]


class _Assembler:
    """Accumulates units and atoms while walking items."""

    def __init__(self, length: int) -> None:
        self.units: list[SourceUnit] = []
        self.atom_unit: list[int] = []
        self.atom_kind: list[str] = []
        self.atom_tile: list[int] = []
        self.position_atom = np.full(length, -1, dtype=np.int64)

    def unit(self, **fields: Any) -> int:
        self.units.append(SourceUnit(index=len(self.units), **fields))
        return len(self.units) - 1

    def atom(self, unit: int, kind: str, tile: int = -1) -> int:
        self.atom_unit.append(unit)
        self.atom_kind.append(kind)
        self.atom_tile.append(tile)
        return len(self.atom_unit) - 1

    def finish(self) -> SourceSet:
        return SourceSet(
            units=tuple(self.units),
            atom_unit=np.asarray(self.atom_unit, dtype=np.int64),
            atom_kind=tuple(self.atom_kind),
            atom_tile=np.asarray(self.atom_tile, dtype=np.int64),
            position_atom=self.position_atom,
        )


def _add_text(asm: _Assembler, layout: L.TokenLayout, index: int, item: TextItem, config: SourceConfig) -> None:
    positions = layout.positions(L.TEXT, index)
    for start, end in sentence_spans(item.text, split_lines=config.split_lines):
        excerpt = " ".join(item.text[start:end].split())
        unit = asm.unit(modality="text", item=index, label=excerpt if len(excerpt) <= 60 else excerpt[:57] + "...",
                        char_start=start, char_end=end)
        atom = asm.atom(unit, ATOM_TEXT)
        for pos in positions:
            anchor = _first_visible(item.text, layout.char_start[pos], layout.char_end[pos])
            if start <= anchor < end:
                asm.position_atom[pos] = atom


def _add_image(asm: _Assembler, layout: L.TokenLayout, index: int, label: str) -> None:
    unit = asm.unit(modality="image", item=index, label=label)
    rows, cols = layout.grids[index]
    atoms = [asm.atom(unit, ATOM_TILE, tile) for tile in range(rows * cols)]
    for pos in layout.positions(L.IMAGE, index):
        asm.position_atom[pos] = atoms[layout.tile[pos]]


def _add_timeline(asm: _Assembler, layout: L.TokenLayout, index: int, modality: str, label: str,
                  width: float, tracks: Sequence[tuple[int, str]]) -> None:
    bins = _time_bins(layout.durations[index], width)
    bin_atoms: dict[str, list[int]] = {kind: [] for _, kind in tracks}
    for k, (t0, t1) in enumerate(bins):
        unit = asm.unit(modality=modality, item=index, label=f"{label} {t0:.1f}-{t1:.1f}s",
                        time_start=t0, time_end=t1)
        for _, atom_kind in tracks:
            bin_atoms[atom_kind].append(asm.atom(unit, atom_kind))
    for token_kind, atom_kind in tracks:
        for pos in layout.positions(token_kind, index):
            # a token belongs to the bin holding its midpoint (tokens never straddle more than two bins)
            mid = 0.5 * (layout.time_start[pos] + layout.time_end[pos])
            k = min(int(mid // width), len(bins) - 1)
            asm.position_atom[pos] = bin_atoms[atom_kind][k]


def _excerpt(text: str, limit: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _add_segments(asm: _Assembler, layout: L.TokenLayout, index: int, modality: str, label: str,
                  segments: Sequence["SpeechSegment"], tracks: Sequence[tuple[int, str]],
                  gap_width: float | None) -> None:
    """Speech-segment units of an audio or video item.

    A token belongs to the segment holding its midpoint. Audio tokens outside every segment are
    silence and feed no unit. For a video, the visual track between segments is cut into
    visual-only bins of ``gap_width`` (pauses shorter than half a bin go to the nearest unit),
    so what is *seen* while nobody speaks stays attributable.
    """
    duration = layout.durations[index]
    pieces: list[tuple[float, float, str | None]] = []  # (start, end, text or None for a gap bin)
    cursor = 0.0

    def gap(t0: float, t1: float) -> None:
        if gap_width is None or t1 - t0 < 0.5 * gap_width:
            return
        count = max(1, round((t1 - t0) / gap_width))  # equal bins: no sliver at the end of a pause
        pieces.extend((t0 + k * (t1 - t0) / count, t0 + (k + 1) * (t1 - t0) / count, None) for k in range(count))

    for seg in sorted(segments, key=lambda s: s.start):
        gap(cursor, seg.start)
        pieces.append((seg.start, seg.end, seg.text))
        cursor = max(cursor, seg.end)
    gap(cursor, duration)

    atoms: dict[str, list[int]] = {kind: [] for _, kind in tracks}
    for t0, t1, text in pieces:
        if text is None:
            unit = asm.unit(modality=modality, item=index, label=f"{label} {t0:.1f}-{t1:.1f}s (no speech)",
                            time_start=t0, time_end=t1)
        else:
            quoted = f' "{_excerpt(text)}"' if text.strip() else ""
            unit = asm.unit(modality=modality, item=index, label=f"{label} {t0:.1f}-{t1:.1f}s{quoted}",
                            time_start=t0, time_end=t1, text=text)
        for _, kind in tracks:
            atoms[kind].append(asm.atom(unit, kind) if text is not None or kind == ATOM_VISUAL else -1)
    starts = np.array([p[0] for p in pieces])
    ends = np.array([p[1] for p in pieces])
    for token_kind, atom_kind in tracks:
        kind_atoms = np.array(atoms[atom_kind], dtype=np.int64)
        positions = layout.positions(token_kind, index)
        mids = 0.5 * (layout.time_start[positions] + layout.time_end[positions])
        k = np.clip(np.searchsorted(starts, mids, side="right") - 1, 0, None)  # last piece starting <= mid
        inside = (starts[k] <= mids) & (mids < ends[k]) & (kind_atoms[k] >= 0)
        asm.position_atom[positions[inside]] = kind_atoms[k[inside]]
        if atom_kind == ATOM_VISUAL:
            for pos, mid in zip(positions[~inside], mids[~inside]):  # in a short pause: the nearest unit
                asm.position_atom[pos] = kind_atoms[int(np.argmin(np.maximum(starts - mid, mid - ends)))]


def build_sources(
    layout: L.TokenLayout, items: Sequence[Item], config: SourceConfig, labels: Sequence[str] | None = None,
    segments: Mapping[int, Sequence["SpeechSegment"]] | None = None,
) -> SourceSet:
    """Cut the inputs into source units and map every prompt position to an atom.

    Args:
        layout: the backend's token layout of the prompt.
        items: the input items, in the order the layout's ``item`` indices refer to.
        config: source settings (bin widths, prompt inclusion, line splitting).
        labels: display names of the items (defaults to the modality and ordinal).
        segments: item index -> speech segments (in time order, not overlapping, within the
            item's duration) for audio and video items whose units are speech segments
            instead of time bins (see :mod:`omnitrace_core.speech`).
    """
    from ..inputs import item_label

    asm = _Assembler(len(layout))
    segments = segments or {}
    for index, item in enumerate(items):
        label = labels[index] if labels else item_label(item)
        if item.modality == "text":
            if item.is_prompt and not config.include_prompt:
                continue
            _add_text(asm, layout, index, item, config)
        elif item.modality == "image":
            _add_image(asm, layout, index, label)
        elif item.modality == "audio" and segments.get(index):
            _add_segments(asm, layout, index, "audio", label, segments[index], [(L.AUDIO, ATOM_AUDIO)], None)
        elif item.modality == "video" and segments.get(index):
            _add_segments(asm, layout, index, "video", label, segments[index],
                          [(L.VIDEO_VISUAL, ATOM_VISUAL), (L.VIDEO_AUDIO, ATOM_AUDIO)], config.video_bin_seconds)
        elif item.modality == "audio":
            _add_timeline(asm, layout, index, "audio", label, config.audio_bin_seconds, [(L.AUDIO, ATOM_AUDIO)])
        elif item.modality == "video":
            _add_timeline(asm, layout, index, "video", label, config.video_bin_seconds,
                          [(L.VIDEO_VISUAL, ATOM_VISUAL), (L.VIDEO_AUDIO, ATOM_AUDIO)])
    return asm.finish()
