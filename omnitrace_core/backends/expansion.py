"""Where each prompt token comes from, read off the processor's own expansion of media placeholders.

A chat template writes one placeholder per media part; the family's processor expands each into the
model's run of tokens and (``return_text_replacement_offsets=True``) records where every expansion
lies in the expanded text. :func:`walk_expansion` turns that record into a :class:`TokenLayout`:
runs go to the family's rule for tiles and times, the remaining tokens to the text items they spell.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .. import layout as L
from ..inputs import Item
from .user_text import PromptTokens, char_spans, span_owner


@dataclass
class Segment:
    """One media placeholder of the prompt, in prompt order.

    Attributes:
        item: index of the input item.
        kind: ``"image"``, ``"audio"`` or ``"video"`` (the processor's modality of the placeholder).
        index: position among the processor's inputs of that kind (image k, audio slot k, video k).
        offset: seconds from the item's start (an audio item cut into encoder windows).
    """

    item: int
    kind: str
    index: int
    offset: float = 0.0


@dataclass
class MediaBatch:
    """The loaded media of one prompt, in the form the processor takes.

    Attributes:
        parts: chat content parts in item order; text parts carry their ``item`` index.
        segments: one per media placeholder, in prompt order.
        images: PIL images, in prompt order.
        audio: mono float32 waveforms at the family's sampling rate, one per audio slot.
        audio_video: per audio slot, the index of the video whose track it is (None: standalone).
        videos: (T, H, W, 3) uint8 frame arrays.
        video_metadata: per video, transformers' metadata of the sampled frames (frame k at k / fps).
        video_fps: the one sampling rate of every video of the prompt.
        audio_in_video: whether the videos' audio tracks are part of the prompt.
        media: per item, a summary of the loaded media (for results).
    """

    parts: list[dict[str, Any]] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    images: list[Any] = field(default_factory=list)
    audio: list[np.ndarray] = field(default_factory=list)
    audio_video: list[int | None] = field(default_factory=list)
    videos: list[np.ndarray] = field(default_factory=list)
    video_fps: float = 2.0
    video_metadata: list[dict[str, Any]] = field(default_factory=list)
    audio_in_video: bool = False
    media: dict[int, dict[str, Any]] = field(default_factory=dict)


class LayoutDraft:
    """A mutable :class:`~omnitrace_core.layout.TokenLayout` being filled by a backend."""

    def __init__(self, length: int) -> None:
        empty = L.TokenLayout.empty(length)
        self.kind, self.item, self.tile = empty.kind, empty.item, empty.tile
        self.char_start, self.char_end = empty.char_start, empty.char_end
        self.time_start, self.time_end = empty.time_start, empty.time_end
        self.grids: dict[int, tuple[int, int]] = {}
        self.durations: dict[int, float] = {}

    def tiles(self, positions: np.ndarray, item: int, grid: tuple[int, int], tiles: np.ndarray | None = None,
              kind: int = L.IMAGE) -> None:
        """Mark ``positions`` as tiles of ``item``: ``tiles`` (row-major in ``grid``), default 0, 1, 2 ..."""
        rows, cols = grid
        tiles = np.arange(len(positions)) if tiles is None else np.asarray(tiles)
        if len(tiles) != len(positions) or (len(tiles) and (tiles.min() < 0 or tiles.max() >= rows * cols)):
            raise RuntimeError(f"token layout: {len(positions)} tokens do not fit a {rows}x{cols} tile grid")
        self.kind[positions], self.item[positions], self.tile[positions] = kind, item, tiles
        self.grids[item] = (int(rows), int(cols))

    def times(self, positions: np.ndarray, item: int, kind: int, start: np.ndarray, end: np.ndarray) -> None:
        """Mark ``positions`` as ``kind`` tokens of ``item`` covering [start, end) seconds."""
        self.kind[positions], self.item[positions] = kind, item
        self.time_start[positions], self.time_end[positions] = start, end

    def freeze(self) -> L.TokenLayout:
        return L.TokenLayout(kind=self.kind, item=self.item, char_start=self.char_start, char_end=self.char_end,
                             tile=self.tile, time_start=self.time_start, time_end=self.time_end,
                             grids=dict(self.grids), durations=dict(self.durations))


@dataclass
class LayoutContext:
    """What :meth:`HFMultimodalBackend.fill_segment` may read.

    Attributes:
        ids: (L,) prompt token ids.
        batch: the processor's output.
        media: the loaded media.
        replacement: the processor's record of this placeholder's expansion (``replacement`` text ...).
    """

    ids: np.ndarray
    batch: Any
    media: MediaBatch
    replacement: dict[str, Any] | None = None


def search_texts(rendered: str, parts: list[dict[str, Any]],
                 items: Sequence[Item]) -> dict[int, tuple[int, int, int]]:
    """Where each text item lies in the rendered template, found by searching for it: item -> (start, end, lead).

    For a prompt built without a marker rendering (see :func:`user_text.locate_texts`, which the
    shared pipeline uses): a search from the start can land in the template's own words when a
    text is short. ``lead`` is the number of leading characters of the item the template dropped.
    """
    ranges: dict[int, tuple[int, int, int]] = {}
    cursor = 0
    for part in parts:
        if "item" not in part:
            continue
        text = items[part["item"]].text
        start, lead, shown = rendered.find(text, cursor), 0, text
        if start < 0:
            shown = text.strip()
            lead = len(text) - len(text.lstrip())
            start = rendered.find(shown, cursor) if shown else -1
            if start < 0:
                if shown:
                    raise RuntimeError("the chat template altered an input text; cannot locate it in the prompt")
                continue  # a whitespace-only text the template dropped
        ranges[part["item"]] = (start, start + len(shown), lead)
        cursor = start + len(shown)
    return ranges


def expand(rendered: str, replacements: Sequence[dict[str, Any]]) -> str:
    """The rendered template with each placeholder replaced by the processor's expansion of it."""
    pieces, last = [], 0
    for r in replacements:
        a, b = r["span"]
        pieces += [rendered[last:a], r["replacement"]]
        last = b
    pieces.append(rendered[last:])
    return "".join(pieces)


def expanded_ranges(text_ranges: dict[int, tuple[int, int, int]],
                    replacements: Sequence[dict[str, Any]]) -> dict[int, tuple[int, int, int]]:
    """Text item ranges of the rendered template moved to the expanded text (placeholders lie between texts)."""
    ends = [r["span"][1] for r in replacements]
    # shift[k]: characters the first k replacements added to the rendered text
    shift = np.concatenate([[0], np.cumsum([len(r["replacement"]) - (r["span"][1] - r["span"][0])
                                            for r in replacements])]).astype(int)
    moved = {}
    for item, (lo, hi, lead) in text_ranges.items():
        k = bisect.bisect_right(ends, lo)  # replacements wholly before the text
        moved[item] = (lo + int(shift[k]), hi + int(shift[k]), lead)
    return moved


def walk_expansion(tokens: PromptTokens, batch: Any, mb: MediaBatch, text_ranges: dict[int, tuple[int, int, int]],
                   fill: Callable[[LayoutDraft, Segment, np.ndarray, LayoutContext], None]) -> L.TokenLayout:
    """Lay out a prompt from the processor's own record of how it expanded each media placeholder.

    A token that overlaps a text item is that item's, with the characters :func:`user_text.char_spans`
    gives it (an item's tokens rebuild it exactly); a token that touches a placeholder's expansion
    and no text item belongs to that media segment, and ``fill`` lays the run out; any other token
    is template. Plain text at the edge of an expansion (a tag such as ``(<image>./</image>)``) may
    merge with the neighbouring text into one token: that token is the text item's.

    Args:
        tokens: the prompt ids with their spans in the expanded text (:func:`user_text.tokenize_prompt`).
        batch: the processor's output, with ``text_replacement_offsets``.
        mb: the loaded media (its segments in item order).
        text_ranges: text item ranges in the expanded text (:func:`expanded_ranges`).
        fill: lays out one segment's run of positions (the family's rule).
    """
    replacements = list(batch["text_replacement_offsets"][0])
    # the k-th placeholder of a kind stands for the processor's k-th input of that kind, wherever
    # the chat template put it (some templates move all media before the text)
    queues = {kind: [s for s in mb.segments if s.kind == kind] for kind in ("image", "audio", "video")}
    kinds = sorted(r["type"] for r in replacements)
    if kinds != sorted(s.kind for s in mb.segments):
        raise RuntimeError(f"token layout mismatch: the processor expanded placeholders {kinds}, "
                           f"the prompt has {sorted(s.kind for s in mb.segments)}")
    segments = [queues[r["type"]].pop(0) for r in replacements]
    ids = np.asarray(tokens.ids, dtype=np.int64)
    offsets = tokens.offsets
    items = sorted(text_ranges.items(), key=lambda kv: kv[1])
    text_owner = span_owner(offsets, [(lo, hi) for _, (lo, hi, _lead) in items])
    run_owner = span_owner(offsets, [tuple(r["new_span"]) for r in replacements])
    if (text_owner == -2).any():
        raise RuntimeError("token layout: a token joins two text items")
    draft = LayoutDraft(len(ids))
    for t, (item, (lo, hi, lead)) in enumerate(items):
        positions = np.flatnonzero(text_owner == t)
        if not len(positions):
            continue
        start, end = char_spans(offsets[positions, 0], lo, hi)
        draft.kind[positions], draft.item[positions] = L.TEXT, item
        draft.char_start[positions], draft.char_end[positions] = start - lo + lead, end - lo + lead
    for k, (segment, replacement) in enumerate(zip(segments, replacements)):
        positions = np.flatnonzero((run_owner == k) & (text_owner == -1))
        ctx = LayoutContext(ids=ids, batch=batch, media=mb, replacement=replacement)
        fill(draft, segment, positions, ctx)
    return draft.freeze()

