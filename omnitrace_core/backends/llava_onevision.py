"""LLaVA-OneVision backend (text, images, video).

Module tree touched (transformers ``LlavaOnevisionForConditionalGeneration``)::

    model                          LlavaOnevisionModel
    ├── vision_tower               SigLIP ViT over square crops (p x p patches each)
    ├── multi_modal_projector
    ├── image_newline              learned vector closing each row of a high-resolution grid
    └── language_model             Qwen2 decoder; its attention runs the capture implementation
    lm_head

Token layout (computed with the model's own ``pack_image_features`` on coordinate-valued stand-in
features, so it is the model's scatter order by construction):

- one image in the prompt ("anyres"): the base view (the whole image squashed to one crop, p x p
  tokens, row-major), then the high-resolution crops stitched into one grid, unpadded to the image's
  aspect ratio, shrunk bilinearly when over ``anyres_max_N`` crops, row by row, each row closed by
  a newline token;
- several images: the base view of each, plus one newline token;
- video: every frame's p x p grid pooled to ceil(p/2) x ceil(p/2), row-major, frame by frame, then
  one newline token; frame f covers [f, f + 1) / fps seconds.

The tile grid of an image is its base view's p x p grid: a high-resolution token is put in the base
tile under its centre. Newline tokens carry no image content and are not sources. Positions are
plain 1-D. Several videos in one prompt need equal frame counts (the model stacks them).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .. import layout as L
from .base import register_backend
from .hf_multimodal import HFMultimodalBackend, LayoutContext, LayoutDraft, Segment


@register_backend
class LlavaOnevisionBackend(HFMultimodalBackend):
    """Backend for ``llava_onevision`` checkpoints."""

    name = "llava_onevision"
    model_types = ("llava_onevision",)
    model_class = "LlavaOnevisionForConditionalGeneration"
    modalities = frozenset({"text", "image", "video"})
    eos_strings = ("<|im_end|>", "<|endoftext|>")
    model_input_keys = ("pixel_values", "image_sizes", "pixel_values_videos", "batch_num_images")

    def processor_kwargs(self, mb):
        kwargs = super().processor_kwargs(mb)
        if mb.images:  # one sample with several images, as transformers' chat path passes them
            kwargs["images"] = [mb.images]
        return kwargs

    @property
    def _side(self) -> int:
        vision = self.model.config.vision_config
        return vision.image_size // vision.patch_size

    def fill_segment(self, draft: LayoutDraft, segment: Segment, positions: np.ndarray, ctx: LayoutContext) -> None:
        if segment.kind == "image":
            tokens = self.placeholder_positions(ctx, positions, self.model.config.image_token_id)
            tiles = self.image_tiles(ctx, segment.index)
            if len(tiles) != len(tokens):
                raise RuntimeError(f"token layout mismatch: image {segment.index} has {len(tokens)} placeholders, "
                                   f"the model packs {len(tiles)} features")
            content = tiles >= 0  # newline tokens carry no image content
            draft.tiles(tokens[content], segment.item, (self._side, self._side), tiles[content])
            return
        tokens = self.placeholder_positions(ctx, positions, self.model.config.video_token_id)[:-1]  # last: newline
        side = math.ceil(self._side / 2)
        item, duration = segment.item, ctx.media.media[segment.item]["duration"]
        n = np.arange(len(tokens))
        draft.tiles(tokens, item, (side, side), n % (side * side), kind=L.VIDEO_VISUAL)
        start = np.minimum((n // (side * side)) / ctx.media.video_fps, duration)
        draft.times(tokens, item, L.VIDEO_VISUAL, start, np.minimum(start + 1 / ctx.media.video_fps, duration))
        draft.durations[item] = duration

    def image_tiles(self, ctx: LayoutContext, index: int) -> np.ndarray:
        """Base-view tile of each packed feature of image ``index``, -1 for newline features."""
        from transformers.models.llava_onevision.modeling_llava_onevision import image_size_to_num_patches

        config = self.model.config
        side = self._side
        size = ctx.batch["image_sizes"][index]
        single = int(np.ravel(ctx.batch["batch_num_images"])[0]) == 1  # only a lone image is tiled
        crops = image_size_to_num_patches(size, config.image_grid_pinpoints, config.vision_config.image_size) \
            if single else 1
        i, j = (torch.arange(side * side, dtype=torch.float64).div(side, rounding_mode="floor"),
                torch.arange(side * side, dtype=torch.float64) % side)
        # stand-in features: (is base view, row, column); high-resolution crops in the stitched grid
        base = torch.stack([torch.ones_like(i), (i + 0.5) / side, (j + 0.5) / side], dim=-1)
        features = [base]
        if crops > 1:
            from transformers.models.llava_onevision.modeling_llava_onevision import get_anyres_image_grid_shape

            _, cols = get_anyres_image_grid_shape(size, config.image_grid_pinpoints, config.vision_config.image_size)
            for k in range(crops - 1):
                r, c = divmod(k, cols)
                features.append(torch.stack([torch.zeros_like(i), r * side + i + 0.5, c * side + j + 0.5], dim=-1))
        newline = torch.tensor([-1.0, -1.0, -1.0], dtype=torch.float64)
        (packed,), _ = self.model.model.pack_image_features(
            [torch.stack(features)], torch.as_tensor(size)[None], image_newline=newline,
            vision_aspect_ratio=config.vision_aspect_ratio)
        if config.vision_feature_select_strategy != "full":
            raise RuntimeError("LLaVA-OneVision layouts are derived for vision_feature_select_strategy='full'")
        kind, y, x = packed.numpy().T
        tiles = np.full(len(kind), -1, dtype=np.int64)
        is_base = kind == 1
        tiles[is_base] = (np.floor(y[is_base] * side) * side + np.floor(x[is_base] * side)).astype(np.int64)
        high = kind == 0
        if high.any():  # normalise the stitched, unpadded (maybe shrunk) grid to the image
            ys, xs = y[high], x[high]
            rows = (ys - ys.min()) / max(ys.max() - ys.min(), 1e-9)
            cols_ = (xs - xs.min()) / max(xs.max() - xs.min(), 1e-9)
            n_rows = len(np.unique(np.round(ys, 6)))
            n_cols = len(np.unique(np.round(xs, 6)))
            ty = np.clip(np.floor((rows * (n_rows - 1) + 0.5) / n_rows * side), 0, side - 1)
            tx = np.clip(np.floor((cols_ * (n_cols - 1) + 0.5) / n_cols * side), 0, side - 1)
            tiles[high] = (ty * side + tx).astype(np.int64)
        return tiles
