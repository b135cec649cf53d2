"""Qwen2.5-VL and Qwen2-VL backend (text, images, video).

Module tree touched (transformers ``Qwen2_5_VLForConditionalGeneration``)::

    model                          Qwen2_5_VLModel
    ├── visual                     ViT: 14 px patches merged 2x2 -> one token per 28x28 px tile
    └── language_model             Qwen2 decoder; its attention runs the capture implementation
    lm_head

Token layout (checked against the model's own ``get_rope_index``):

- image: ``<|vision_start|> <|image_pad|> x (h/2 * w/2) <|vision_end|>``, row-major over merged tiles;
- video: ``<|vision_start|> <|video_pad|> x (t/2 * h/2 * w/2) <|vision_end|>``; one temporal group is
  ``temporal_patch_size`` frames, ``second_per_grid_ts`` seconds (the processor's own figure).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import layout as L
from .base import PreparedInput, register_backend
from .hf_multimodal import HFMultimodalBackend, LayoutContext, LayoutDraft, MediaBatch, Segment


class QwenVisionLayout:
    """Image and video runs of the Qwen vision tower: row-major merged tiles, temporal groups."""

    def fill_vision(self, draft: LayoutDraft, segment: Segment, positions: np.ndarray, ctx: LayoutContext,
                    image_token: int, video_token: int, seconds_per_group: float) -> None:
        item = segment.item
        if segment.kind == "image":
            merge = self.processor.image_processor.merge_size
            _, h, w = (int(x) for x in ctx.batch["image_grid_thw"][segment.index])
            draft.tiles(HFMultimodalBackend.placeholder_positions(ctx, positions, image_token), item,
                        (h // merge, w // merge))
            return
        merge = self.processor.video_processor.merge_size
        _, h, w = (int(x) for x in ctx.batch["video_grid_thw"][segment.index])
        rows, cols = h // merge, w // merge
        duration = ctx.media.media[item]["duration"]
        draft.durations[item] = duration
        visual = HFMultimodalBackend.placeholder_positions(ctx, positions, video_token)
        n = np.arange(len(visual))
        draft.tiles(visual, item, (rows, cols), n % (rows * cols), kind=L.VIDEO_VISUAL)
        start = (n // (rows * cols)) * seconds_per_group
        # the last group may be padded past the end of the video
        draft.times(visual, item, L.VIDEO_VISUAL, np.minimum(start, duration),
                    np.minimum(start + seconds_per_group, duration))


@register_backend
class Qwen25VLBackend(QwenVisionLayout, HFMultimodalBackend):
    """Backend for ``qwen2_5_vl`` and ``qwen2_vl`` checkpoints."""

    name = "qwen2_5_vl"
    model_types = ("qwen2_5_vl", "qwen2_vl")
    model_class = "AutoModelForImageTextToText"
    modalities = frozenset({"text", "image", "video"})
    eos_strings = ("<|im_end|>", "<|endoftext|>")
    model_input_keys = ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw")
    video_frame_multiple = 2  # temporal patch size
    uses_mrope = True

    def fill_segment(self, draft: LayoutDraft, segment: Segment, positions: np.ndarray, ctx: LayoutContext) -> None:
        seconds = 0.0
        if segment.kind == "video":  # Qwen2-VL's processor does not state it: two frames at the sampled fps
            seconds = (float(ctx.batch["second_per_grid_ts"][segment.index]) if "second_per_grid_ts" in ctx.batch
                       else self.processor.video_processor.temporal_patch_size / ctx.media.video_fps)
        self.fill_vision(draft, segment, positions, ctx, self.token_id(self.processor.image_token),
                         self.token_id(self.processor.video_token), seconds)

    def position_ids(self, input_ids: torch.Tensor, batch: Any, mb: MediaBatch) -> tuple[torch.Tensor, int]:
        kwargs = {"image_grid_thw": batch.get("image_grid_thw"), "video_grid_thw": batch.get("video_grid_thw")}
        if "second_per_grid_ts" in batch:
            kwargs["second_per_grid_ts"] = torch.as_tensor(batch["second_per_grid_ts"])
        position_ids, deltas = self.model.model.get_rope_index(
            input_ids, mm_token_type_ids=torch.as_tensor(batch["mm_token_type_ids"]), **kwargs)
        return position_ids, int(deltas.reshape(-1)[0])

    def extra_inputs(self, batch: Any, mb: MediaBatch) -> dict[str, Any]:
        extras = {"mm_token_type_ids": torch.as_tensor(batch["mm_token_type_ids"])}
        if "second_per_grid_ts" in batch:
            extras["second_per_grid_ts"] = torch.as_tensor(batch["second_per_grid_ts"])
        return extras

    def generate_kwargs(self, prepared: PreparedInput) -> dict[str, Any]:
        kwargs = super().generate_kwargs(prepared)
        for key in ("mm_token_type_ids", "second_per_grid_ts"):
            if key in prepared.extras:
                kwargs[key] = prepared.extras[key].to(self.input_device)
        return kwargs
