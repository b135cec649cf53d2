"""Where each input token sits: its kind, item, text offsets, image tile and time.

A backend builds a :class:`TokenLayout` for the prompt it tokenised; everything after the
backend (source units, curation, results) reads only this table, never model internals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

# Token kinds. NONE marks template and special tokens, which are never sources.
NONE, TEXT, IMAGE, AUDIO, VIDEO_VISUAL, VIDEO_AUDIO = -1, 0, 1, 2, 3, 4
KIND_NAMES = {NONE: "none", TEXT: "text", IMAGE: "image", AUDIO: "audio",
              VIDEO_VISUAL: "video_visual", VIDEO_AUDIO: "video_audio"}


@dataclass(frozen=True)
class TokenLayout:
    """Per-position facts about a tokenised prompt of length L.

    Attributes:
        kind: (L,) int8, one of NONE, TEXT, IMAGE, AUDIO, VIDEO_VISUAL, VIDEO_AUDIO.
        item: (L,) int32, index of the input item the token comes from (-1 for NONE).
        char_start, char_end: (L,) int32, the token's character range inside its text item
            (-1 for other kinds).
        tile: (L,) int32, row-major index of the merged patch (image tokens, and the spatial
            position of video tokens); -1 otherwise.
        time_start, time_end: (L,) float64 seconds covered (audio and video tokens); NaN otherwise.
        grids: item -> (rows, cols) of merged patches, for images and videos.
        durations: item -> seconds, for audio and video items.
    """

    kind: np.ndarray
    item: np.ndarray
    char_start: np.ndarray
    char_end: np.ndarray
    tile: np.ndarray
    time_start: np.ndarray
    time_end: np.ndarray
    grids: Mapping[int, tuple[int, int]] = field(default_factory=dict)
    durations: Mapping[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        length = len(self.kind)
        for name in ("item", "char_start", "char_end", "tile", "time_start", "time_end"):
            if len(getattr(self, name)) != length:
                raise ValueError(f"TokenLayout.{name} has {len(getattr(self, name))} entries, expected {length}")
        unknown = set(np.unique(self.kind).tolist()) - set(KIND_NAMES)
        if unknown:
            raise ValueError(f"TokenLayout.kind has unknown codes {sorted(unknown)}")
        if np.any((self.kind == NONE) != (self.item < 0)):
            raise ValueError("TokenLayout: exactly the NONE tokens must have item -1")

    def __len__(self) -> int:
        return len(self.kind)

    @classmethod
    def empty(cls, length: int) -> "TokenLayout":
        """A layout of ``length`` NONE tokens, to be filled by a backend (see :class:`LayoutBuilder`)."""
        return cls(
            kind=np.full(length, NONE, np.int8),
            item=np.full(length, -1, np.int32),
            char_start=np.full(length, -1, np.int32),
            char_end=np.full(length, -1, np.int32),
            tile=np.full(length, -1, np.int32),
            time_start=np.full(length, np.nan),
            time_end=np.full(length, np.nan),
        )

    def positions(self, kind: int, item: int | None = None) -> np.ndarray:
        """Indices of the tokens of one kind (optionally of one item)."""
        mask = self.kind == kind
        if item is not None:
            mask &= self.item == item
        return np.flatnonzero(mask)
