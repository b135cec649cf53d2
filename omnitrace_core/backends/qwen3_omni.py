"""Qwen3-Omni (MoE) thinker backend (text, images, audio, video with its audio track).

Module tree touched (transformers ``Qwen3OmniMoeThinkerForConditionalGeneration``)::

    thinker
    ├── model                      Qwen3OmniMoeThinkerModel
    │   ├── audio_tower            encoder over 1 s mel chunks: 13 tokens per chunk, 80 ms each
    │   ├── visual                 ViT: 16 px patches merged 2x2 -> one token per 32x32 px tile
    │   └── language_model         Qwen3-MoE decoder; its attention runs the capture implementation
    └── lm_head

Token layout (checked against the model's own ``get_rope_index``): as Qwen2.5-Omni with the
Qwen3 token names (``<|vision_start|> <|image_pad|> ...``, ``<|audio_start|> <|audio_pad|> ...``);
audio token i of chunk c covers [c + 0.08 i, c + 0.08 (i + 1)) seconds (the encoder downsamples
mel frames 8x inside each 100-frame chunk); audio positions advance one id per token, 13 per
second. With the audio track, video and audio tokens are merged in the order of their temporal
ids (``position_id_per_seconds`` per second). Audio is not cut into windows: the encoder takes
any length. The talker (speech output) is never loaded.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .base import register_backend
from .hf_multimodal import MediaBatch
from .qwen2_5_omni import Qwen25OmniBackend


@register_backend
class Qwen3OmniBackend(Qwen25OmniBackend):
    """Backend for ``qwen3_omni_moe`` (full checkpoints) and ``qwen3_omni_moe_thinker`` checkpoints."""

    name = "qwen3_omni"
    model_types = ("qwen3_omni_moe", "qwen3_omni_moe_thinker")
    model_class = "Qwen3OmniMoeThinkerForConditionalGeneration"
    default_system_prompt = None

    @classmethod
    def load_model(cls, model_id: str, config: Any, kwargs: dict[str, Any]) -> torch.nn.Module:
        import transformers

        if config.model_type == "qwen3_omni_moe":  # full checkpoint: keep only the thinker
            full = transformers.Qwen3OmniMoeForConditionalGeneration.from_pretrained(
                model_id, enable_audio_output=False, **kwargs)
            return full.thinker
        return getattr(transformers, cls.model_class).from_pretrained(model_id, **kwargs)

    @property
    def audio_window_seconds(self) -> float | None:
        return None  # the processor does not truncate and the encoder chunks any length itself

    def audio_spans(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        fe = self.processor.feature_extractor
        chunk_frames = 2 * self.model.config.audio_config.n_window
        chunk_s = chunk_frames * fe.hop_length / fe.sampling_rate
        per_chunk = int(self._tokens_for_frames(chunk_frames))
        step = chunk_s * 8 / chunk_frames  # three stride-2 convolutions
        c, i = np.divmod(np.arange(count), per_chunk)
        start = c * chunk_s + i * step
        return start, np.minimum(start + step, (c + 1) * chunk_s)

    def _tokens_for_frames(self, frames: int) -> int:
        from transformers.models.qwen3_omni_moe.processing_qwen3_omni_moe import _get_feat_extract_output_lengths

        return int(_get_feat_extract_output_lengths(torch.tensor(frames), self.model.config.audio_config.n_window))

    def videos_kwargs(self, mb: MediaBatch) -> dict[str, Any]:
        return {**super().videos_kwargs(mb), "do_sample_frames": False}

    def processor_kwargs(self, mb: MediaBatch) -> dict[str, Any]:
        kwargs = super().processor_kwargs(mb)
        # the processor interleaves with its own rate; the model's positions use the config's
        kwargs["position_id_per_seconds"] = self.model.config.position_id_per_seconds
        return kwargs

    def position_ids(self, input_ids: torch.Tensor, batch: Any, mb: MediaBatch) -> tuple[torch.Tensor, int]:
        audio_lengths = batch["feature_attention_mask"].sum(-1) if "feature_attention_mask" in batch else None
        position_ids, rope_deltas = self.model.get_rope_index(
            input_ids, batch.get("image_grid_thw"), batch.get("video_grid_thw"), torch.ones_like(input_ids),
            mb.audio_in_video, audio_lengths, self._second_per_grid(batch))
        delta = float(rope_deltas.reshape(-1)[0])  # temporal ids are fractional at some frame rates
        return position_ids, int(delta) if delta.is_integer() and not position_ids.is_floating_point() else delta
