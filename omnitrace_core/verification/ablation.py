"""What removing a source unit means in each verification mode, and the ablated input it gives.

``input`` answers *does the unit's content matter?* The input itself is changed and re-encoded,
keeping every token count and position, so that no other unit shifts:

- a text sentence is dropped: its tokens are deleted and every other token keeps its position id.
  That is computed as a mask that no query may cross, which is the same forward as one without
  those tokens (a test checks it against the real deletion);
- an image is replaced by a flat image of its mean colour (same size: same tokens); a set of its
  tiles by that colour inside their cells (the processor's resize blurs a cell's border by a pixel
  or two into its neighbours);
- an audio unit (a time bin or a speech segment) is silenced: its samples are set to zero;
- a video unit's frames (those starting inside its time range) are replaced by the video's mean
  colour and the same time range of its audio track is silenced.

The encoders see the edited media, so an edit also reaches other tokens of the same item where an
encoder mixes them (an audio encoder attends over windows of seconds): that is part of what the
content does.

``knockout`` answers *does the language model read the unit?* The input stays as it is; every
decoder layer is forbidden to attend to the unit's positions (a boolean attention mask). It is
cheap (no encoder runs) and the same for every modality, but a unit whose content reached other
positions through an encoder still acts through them.

Blocking needs a decoder whose every layer is softmax attention: hybrid decoders (linear-attention
layers carry a state over every position) are refused for knockout and for dropping text.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .. import layout as L
from ..config import SourceConfig
from ..errors import InputError
from ..sources import SourceSet
from .records import MODES


@dataclass(frozen=True)
class Removal:
    """What one ablated input lacks: source units, and tiles of images as ``(image unit, tile)``."""

    units: frozenset[int] = frozenset()
    tiles: frozenset[tuple[int, int]] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.units or self.tiles)


def removal(units: Sequence[int] = (), tiles: Sequence[tuple[int, int]] = ()) -> Removal:
    return Removal(frozenset(int(u) for u in units), frozenset((int(u), int(t)) for u, t in tiles))


def mean_colour(pixels: np.ndarray) -> np.ndarray:
    """(3,) uint8 mean RGB colour of (..., 3) pixels."""
    return np.asarray(pixels, dtype=np.float64).reshape(-1, 3).mean(axis=0).round().astype(np.uint8)


def grey_image(image: Any, grid: tuple[int, int] | None = None, tiles: Sequence[int] | None = None) -> Any:
    """The image with every pixel (or the cells of ``tiles`` in a (rows, cols) ``grid``) set to its mean colour."""
    from PIL import Image

    pixels = np.array(image.convert("RGB"))
    colour = mean_colour(pixels)
    if tiles is None:
        pixels[:] = colour
    else:
        rows, cols = grid
        height, width = pixels.shape[:2]
        for tile in tiles:
            r, c = divmod(int(tile), cols)
            pixels[r * height // rows:(r + 1) * height // rows, c * width // cols:(c + 1) * width // cols] = colour
    return Image.fromarray(pixels)


def silence(waveform: np.ndarray, rate: int, offset: float, start: float, end: float) -> np.ndarray:
    """A copy of a waveform that starts ``offset`` seconds into its item, zero over [start, end) s of the item."""
    out = np.array(waveform, copy=True)
    lo = max(0, int(round((start - offset) * rate)))
    hi = min(len(out), int(round((end - offset) * rate)))
    if hi > lo:
        out[lo:hi] = 0
    return out


def grey_frames(frames: np.ndarray, fps: float, real_frames: int, start: float, end: float) -> np.ndarray:
    """A copy of (T, H, W, 3) frames where those starting in [start, end) s show the video's mean colour.

    Frames past ``real_frames`` repeat the last real frame (temporal padding) and go with it.
    """
    out = np.array(frames, copy=True)
    colour = mean_colour(frames[:real_frames])
    times = np.minimum(np.arange(len(frames)), max(real_frames - 1, 0)) / fps
    out[(times >= start) & (times < end)] = colour
    return out


class Ablator:
    """Turns a :class:`Removal` into what the decoder gets: edited embeddings and blocked positions.

    Args:
        mode: "input" or "knockout".
        backend: the loaded backend (``prepare(..., media=...)`` is needed for media in input mode).
        items: the input items the result was traced from.
        prepared: the backend's prepared (unablated) input.
        sources: the source units with their position map (``position_atom``) for ``prepared``.
        source_config, system_prompt: as used for tracing.
    """

    def __init__(self, mode: str, backend: Any, items: Sequence[Any], prepared: Any, sources: SourceSet,
                 source_config: SourceConfig, system_prompt: str | None = None) -> None:
        if mode not in MODES:
            raise InputError(f"unknown verification mode {mode!r}; modes: {', '.join(MODES)}")
        self.mode = mode
        self.backend = backend
        self.items = list(items)
        self.prepared = prepared
        self.sources = sources
        self.source_config = source_config
        self.system_prompt = system_prompt
        atom = sources.position_atom
        self.position_unit = np.where(atom >= 0, sources.atom_unit[np.maximum(atom, 0)], -1)
        self.encodes = 0
        self._media = None

    # -- what the decoder may not read ------------------------------------------------------
    def blocked(self, what: Removal) -> np.ndarray:
        """Prompt positions no query may attend to (knockout: every removed unit; input: text units)."""
        units = [u for u in what.units
                 if self.mode == "knockout" or self.sources.units[u].modality == "text"]
        mask = np.isin(self.position_unit, units)
        if self.mode == "knockout":
            layout = self.prepared.layout
            for unit, tile in what.tiles:
                item = self.sources.units[unit].item
                mask |= (layout.kind == L.IMAGE) & (layout.item == item) & (layout.tile == tile)
        positions = np.flatnonzero(mask)
        if len(positions) and len(self.backend.attention_layers) < self.backend.num_layers:
            raise InputError(f"{self.backend.name}: the decoder has linear-attention layers, which read every position "
                             "whatever the attention mask says, so a unit cannot be blocked: verify with mode='input' "
                             "(media units only)")
        return positions

    # -- what the encoders see --------------------------------------------------------------
    def needs_encoding(self, what: Removal) -> bool:
        return self.mode == "input" and (bool(what.tiles) or any(
            self.sources.units[u].modality != "text" for u in what.units))

    def edited_input(self, what: Removal) -> Any:
        """The prepared input with the removal's media edited and re-encoded (input mode)."""
        if not self.needs_encoding(what):
            return self.prepared
        media = self._edited_media(what)
        kwargs = {} if self.system_prompt is None else {"system_prompt": self.system_prompt}
        edited = self.backend.prepare(self.items, self.source_config, media=media, **kwargs)
        self.encodes += 1
        if edited.length != self.prepared.length:
            raise RuntimeError(f"editing the media changed the prompt from {self.prepared.length} to "
                               f"{edited.length} tokens; input-mode removal must keep every position")
        return edited

    def _loaded_media(self) -> Any:
        if self._media is None:
            if "media" not in inspect.signature(self.backend.prepare).parameters:
                raise InputError(f"input-mode removal of media needs a backend whose prepare() takes edited media; "
                                 f"{self.backend.name} does not: verify with mode='knockout'")
            self._media = self.backend.load_media(self.items, self.source_config)
        return self._media

    def _edited_media(self, what: Removal) -> Any:
        loaded = self._loaded_media()
        media = copy.copy(loaded)
        media.images, media.audio, media.videos = list(loaded.images), list(loaded.audio), list(loaded.videos)
        rate = self.backend.sampling_rate
        tiles_of: dict[int, list[int]] = {}
        for unit, tile in what.tiles:
            tiles_of.setdefault(self.sources.units[unit].item, []).append(tile)
        whole = {self.sources.units[u].item for u in what.units if self.sources.units[u].modality == "image"}
        timed = [self.sources.units[u] for u in what.units if self.sources.units[u].modality in ("audio", "video")]
        for segment in media.segments:
            k = segment.index
            if segment.kind == "image" and (segment.item in whole or segment.item in tiles_of):
                image = media.images[k]
                media.images[k] = grey_image(image) if segment.item in whole else grey_image(
                    image, self.prepared.layout.grids[segment.item], tiles_of[segment.item])
            for unit in (u for u in timed if u.item == segment.item):
                if segment.kind == "audio":
                    media.audio[k] = silence(media.audio[k], rate, segment.offset, unit.time_start, unit.time_end)
                elif segment.kind == "video":
                    real = int(media.media[segment.item].get("frames", len(media.videos[k])))
                    media.videos[k] = grey_frames(media.videos[k], media.video_fps, real, unit.time_start,
                                                  unit.time_end)
                    for slot, video in enumerate(media.audio_video):
                        if video == k:  # the video's own audio track, aligned with its first frame
                            media.audio[slot] = silence(media.audio[slot], rate, 0.0, unit.time_start, unit.time_end)
        return media
