"""MiniCPM-V 4.6 backend (text, images, video), the transformers-native MiniCPM-V.

Module tree touched (transformers ``MiniCPMV4_6ForConditionalGeneration``)::

    model                          MiniCPMV4_6Model
    ├── vision_tower               SigLIP NaViT encoder (14 px patches) + a 2x2 window merger
    ├── merger                     2x2 merge -> one token per 56x56 px ("16x") or 28x28 px ("4x")
    └── language_model             Qwen3.5 decoder: gated delta-net (linear attention) layers
                                   interleaved with softmax attention layers; the latter run the
                                   capture implementation
    lm_head

Token layout (checked against the model's placeholder scatter and its merger's window order): an
image is one source view (the whole image, resized) and, when large, ``rows x cols`` slices; each
view becomes ``<image>``/``<slice>`` + its tokens, row-major over the view's merged grid, +
``</image>``/``</slice>``, slice rows separated by a line break, optionally prefixed by an image
id. The tile grid of an image is its source view's token grid; a slice token is put in the source
tile under its centre. A video becomes one such block per sampled frame, frame f covering
[f, f + 1) / fps seconds. Positions are plain 1-D.

Signals read only the softmax-attention layers: ``attmean`` averages over those, ``attraw`` and
``attgrads`` use the last of them (the decoder's last layer is one).
"""

from __future__ import annotations

import numpy as np

from .. import layout as L
from .base import register_backend
from .hf_multimodal import HFMultimodalBackend, LayoutContext, LayoutDraft, Segment


def view_grid(placeholder: str, slice_start: str) -> tuple[int, int]:
    """(rows, cols) of the slices in one picture's placeholder (0, 0 without slices)."""
    if slice_start not in placeholder:
        return 0, 0
    rows = [row for row in placeholder.split("\n") if slice_start in row]
    return len(rows), rows[0].count(slice_start)


def slice_tiles(view: tuple[int, int], r: int, c: int, grid: tuple[int, int],
                source: tuple[int, int]) -> np.ndarray:
    """Source-view tile under the centre of each token of slice (r, c) with a ``view`` token grid."""
    i, j = np.divmod(np.arange(view[0] * view[1]), view[1])
    y = (r + (i + 0.5) / view[0]) / grid[0]
    x = (c + (j + 0.5) / view[1]) / grid[1]
    return (np.floor(y * source[0]) * source[1] + np.floor(x * source[1])).astype(np.int64)


@register_backend
class MiniCPMV46Backend(HFMultimodalBackend):
    """Backend for ``minicpmv4_6`` checkpoints."""

    name = "minicpmv4_6"
    model_types = ("minicpmv4_6",)
    model_class = "MiniCPMV4_6ForConditionalGeneration"
    modalities = frozenset({"text", "image", "video"})
    eos_strings = ("<|im_end|>", "<|endoftext|>")
    model_input_keys = ("pixel_values", "target_sizes", "pixel_values_videos", "target_sizes_videos")

    def _token_grid(self, target: np.ndarray, video: bool) -> tuple[int, int]:
        processor = self.processor.video_processor if video else self.processor.image_processor
        divisor = 2 if processor.downsample_mode == "4x" else 4
        return int(target[0]) // divisor, int(target[1]) // divisor

    def fill_segment(self, draft: LayoutDraft, segment: Segment, positions: np.ndarray, ctx: LayoutContext) -> None:
        video = segment.kind == "video"
        token = self.model.config.video_token_id if video else self.model.config.image_token_id
        media = self.placeholder_positions(ctx, positions, token)
        runs = np.split(media, np.flatnonzero(np.diff(media) > 1) + 1)  # one run per view
        # views of the earlier pictures of this kind come first in the processor's target sizes
        earlier = [r["replacement"] for r in ctx.batch["text_replacement_offsets"][0] if r["type"] == segment.kind]
        pictures = [picture for rep in earlier[:segment.index + 1] for picture in self._pictures(rep, video)]
        mine = self._pictures(earlier[segment.index], video)
        first_view = sum(1 + rows * cols for rows, cols in pictures[:len(pictures) - len(mine)])
        targets = np.asarray(ctx.batch["target_sizes_videos" if video else "target_sizes"])
        item = segment.item
        view, run = first_view, 0
        for frame, (rows, cols) in enumerate(mine):
            source = self._token_grid(targets[view], video)
            tiles = [np.arange(source[0] * source[1])]
            for k in range(rows * cols):
                r, c = divmod(k, cols)
                tiles.append(slice_tiles(self._token_grid(targets[view + 1 + k], video), r, c, (rows, cols), source))
            tokens = np.concatenate(runs[run:run + 1 + rows * cols])
            view, run = view + 1 + rows * cols, run + 1 + rows * cols
            kind = L.VIDEO_VISUAL if video else L.IMAGE
            draft.tiles(tokens, item, source, np.concatenate(tiles), kind=kind)
            if video:
                fps, duration = ctx.media.video_fps, ctx.media.media[item]["duration"]
                start, end = min(frame / fps, duration), min((frame + 1) / fps, duration)
                draft.times(tokens, item, kind, np.full(len(tokens), start), np.full(len(tokens), end))
                draft.durations[item] = duration
        if run != len(runs):
            raise RuntimeError(f"token layout mismatch: {segment.kind} {segment.index} has {len(runs)} views, "
                               f"its placeholder names {run}")

    def _pictures(self, replacement: str, video: bool) -> list[tuple[int, int]]:
        """(rows, cols) of slices of each picture in one expanded placeholder (frames of a video)."""
        p = self.processor
        pictures = replacement.split(p.image_start_token)[1:]
        return [view_grid(picture, p.slice_start_token) for picture in pictures]
