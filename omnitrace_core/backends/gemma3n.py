"""Gemma 3n backend (text, images, audio).

Module tree touched (transformers ``Gemma3nForConditionalGeneration``)::

    model                          Gemma3nModel
    ├── vision_tower               timm MobileNet-v5: a (C, s, s) feature map -> s*s tokens, row-major
    ├── audio_tower                USM conformer: mel frames (10 ms) subsampled 4x, reduced 4x -> 160 ms
    ├── embed_vision / embed_audio soft-token embedders (the soft tokens have their own id ranges)
    └── language_model             Gemma 3n decoder (AltUp, per-layer inputs, KV sharing, sliding
                                   window layers); its attention runs the capture implementation
    lm_head                        (final logit soft-capping)

Token layout (checked against the model's placeholder scatter): an image becomes
``\\n\\n<start_of_image> <image_soft_token> x s*s <end_of_image>\\n\\n`` over the image squashed to
the encoder's square input, row-major tiles; an audio clip (up to 30 s per encoder window) becomes
``\\n\\n<start_of_audio> <audio_soft_token> x 188 <end_of_audio>\\n\\n``, token k covering
[0.16 k, 0.16 (k + 1)) s; the slots past the clip's end hold the model's audio padding embedding
and are not sources. Positions are plain 1-D. The processor takes no video: that modality is
impossible for this family.

The KV cache keeps every position in every layer (sliding-window layers are limited by their
attention mask instead of by eviction), so each captured row spans the whole context.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import layout as L
from .base import register_backend
from .hf_multimodal import HFMultimodalBackend, LayoutContext, LayoutDraft, Segment


@register_backend
class Gemma3nBackend(HFMultimodalBackend):
    """Backend for ``gemma3n`` checkpoints."""

    name = "gemma3n"
    model_types = ("gemma3n",)
    model_class = "Gemma3nForConditionalGeneration"
    modalities = frozenset({"text", "image", "audio"})
    eos_strings = ("<end_of_turn>", "<eos>")
    model_input_keys = ("pixel_values", "input_features", "input_features_mask")

    @property
    def audio_seconds_per_token(self) -> float:
        audio = self.model.config.audio_config
        fe = self.processor.feature_extractor
        frames = int(np.prod([stride[0] for stride in audio.sscp_conv_stride_size])) * audio.conf_reduction_factor
        return frames * fe.hop_length / fe.sampling_rate

    @property
    def audio_window_seconds(self) -> float | None:
        # the prompt holds a fixed number of audio slots per clip; longer audio is cut into windows
        return self.model.config.audio_soft_tokens_per_image * self.audio_seconds_per_token

    def new_cache(self) -> Any:
        from transformers import DynamicCache

        return DynamicCache()  # full-length layers: sliding-window layers are masked, not evicted

    def fill_segment(self, draft: LayoutDraft, segment: Segment, positions: np.ndarray, ctx: LayoutContext) -> None:
        config = self.model.config
        if segment.kind == "image":
            side = int(round(config.vision_soft_tokens_per_image ** 0.5))
            draft.tiles(self.placeholder_positions(ctx, positions, config.image_token_id), segment.item, (side, side))
            return
        slots = self.placeholder_positions(ctx, positions, config.audio_token_id)
        step = self.audio_seconds_per_token
        frames = int(np.asarray(ctx.batch["input_features_mask"][segment.index]).sum())
        per_token = int(round(step * self.processor.feature_extractor.sampling_rate
                              / self.processor.feature_extractor.hop_length))
        real = slots[: -(-frames // per_token)]  # slot k holds audio iff mel frame k * per_token exists
        item, duration = segment.item, ctx.media.media[segment.item]["duration"]
        draft.durations[item] = duration
        start = np.minimum(segment.offset + np.arange(len(real)) * step, duration)
        draft.times(real, item, L.AUDIO, start, np.minimum(start + step, duration))
