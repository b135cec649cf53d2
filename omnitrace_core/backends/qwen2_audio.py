"""Qwen2-Audio backend (text, audio).

Module tree touched (transformers ``Qwen2AudioForConditionalGeneration``)::

    model                          Qwen2AudioModel
    ├── audio_tower                Whisper-like encoder over a 30 s window: 1 token per 40 ms
    ├── multi_modal_projector
    └── language_model             Qwen2 decoder; its attention runs the capture implementation
    lm_head

Token layout (checked against the model's own placeholder scatter): each audio window becomes
``<|audio_bos|> <|AUDIO|> x n <|audio_eos|>``, token k covering [k, k+1) x 40 ms of the window;
audio longer than the encoder's window is cut into consecutive windows. Positions are plain 1-D.
The processor takes no images or video: those modalities are impossible for this family.
"""

from __future__ import annotations

import numpy as np

from .. import layout as L
from .base import register_backend
from .hf_multimodal import HFMultimodalBackend, LayoutContext, LayoutDraft, Segment
from .qwen2_5_omni import qwen_audio_seconds_per_token


@register_backend
class Qwen2AudioBackend(HFMultimodalBackend):
    """Backend for ``qwen2_audio`` checkpoints."""

    name = "qwen2_audio"
    model_types = ("qwen2_audio",)
    model_class = "Qwen2AudioForConditionalGeneration"
    modalities = frozenset({"text", "audio"})
    eos_strings = ("<|im_end|>", "<|endoftext|>")
    model_input_keys = ("input_features", "feature_attention_mask")

    def fill_segment(self, draft: LayoutDraft, segment: Segment, positions: np.ndarray, ctx: LayoutContext) -> None:
        audio = self.placeholder_positions(ctx, positions, self.token_id(self.processor.audio_token))
        fill_audio_run(draft, segment, audio, ctx, qwen_audio_seconds_per_token(self.processor.feature_extractor))


def fill_audio_run(draft: LayoutDraft, segment: Segment, audio: np.ndarray, ctx: LayoutContext,
                   seconds_per_token: float) -> None:
    """Token k of an audio window covers [offset + k s, offset + (k + 1) s), clipped to the item's end."""
    item = segment.item
    duration = ctx.media.media[item]["duration"]
    draft.durations[item] = duration
    start = np.minimum(segment.offset + np.arange(len(audio)) * seconds_per_token, duration)
    draft.times(audio, item, L.AUDIO, start, np.minimum(start + seconds_per_token, duration))
