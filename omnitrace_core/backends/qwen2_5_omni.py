"""Qwen2.5-Omni thinker backend (text, images, audio, video with its audio track).

Module tree touched (transformers ``Qwen2_5OmniThinkerForConditionalGeneration``)::

    thinker
    ├── model                      Qwen2_5OmniThinkerModel
    │   ├── audio_tower            Whisper-like encoder: 1 token per 40 ms of audio
    │   ├── visual                 ViT: 14 px patches merged 2x2 -> one token per 28x28 px tile
    │   └── language_model         Qwen2 decoder; its attention runs the capture implementation
    └── lm_head

Token layout facts (verified against the model's own ``get_rope_index``):

- image: ``<|vision_bos|> <|IMAGE|> x (h/2 * w/2) <|vision_eos|>``, row-major over merged tiles;
- audio: ``<|audio_bos|> <|AUDIO|> x n <|audio_eos|>``, token k covers [k, k+1) x 40 ms;
- video: ``<|vision_bos|> <|VIDEO|> x (t/2 * h/2 * w/2) <|vision_eos|>``; one temporal group is two
  frames (2 / fps seconds); with the audio track (``use_audio_in_video``) the block becomes
  ``<|vision_bos|><|audio_bos|>`` + 2-second chunks (that chunk's video tokens, then its audio
  tokens) + ``<|audio_eos|><|vision_eos|>``. Video and audio tokens keep their own order
  inside the block, so counting each kind gives its time.

The talker (speech output) is never loaded.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import layout as L
from ..config import SourceConfig
from ..media import MediaLimits
from .base import PreparedInput, register_backend
from .hf_multimodal import HFMultimodalBackend, LayoutContext, LayoutDraft, MediaBatch, Segment

logger = logging.getLogger(__name__)

DEFAULT_SYSTEM_PROMPT = (
    "You are Qwen, a virtual human developed by the Qwen Team, Alibaba Group, capable of perceiving "
    "auditory and visual inputs, as well as generating text and speech."
)
AUDIO_FRAMES_PER_TOKEN = 4  # mel frames -> tokens: conv stride 2, then 2x average pooling
SAMPLING_RATE = 16000


def has_own_video_settings(model_id: str) -> bool:
    """Whether a checkpoint (Hub id or folder) saves settings of its own for its video processor.

    Real Qwen2.5-Omni folders do not (no ``video_preprocessor_config.json``, no ``video_processor``
    in a ``processor_config.json``): transformers then builds the video processor from the image
    settings, whose pixel bounds are the image bounds.
    """
    from transformers.utils import cached_file

    def find(name: str) -> str | None:
        return cached_file(model_id, name, _raise_exceptions_for_missing_entries=False,
                           _raise_exceptions_for_connection_errors=False)

    if find("video_preprocessor_config.json"):
        return True
    nested = find("processor_config.json")
    return bool(nested) and "video_processor" in json.loads(Path(nested).read_text(encoding="utf-8"))


def qwen_audio_seconds_per_token(feature_extractor: Any) -> float:
    """Seconds one audio token covers in Qwen audio encoders (Whisper mel hop, stride 2, pool 2)."""
    return feature_extractor.hop_length * AUDIO_FRAMES_PER_TOKEN / feature_extractor.sampling_rate


@register_backend
class Qwen25OmniBackend(HFMultimodalBackend):
    """Backend for ``qwen2_5_omni`` (full checkpoints) and ``qwen2_5_omni_thinker`` checkpoints."""

    name = "qwen2_5_omni"
    model_types = ("qwen2_5_omni", "qwen2_5_omni_thinker")
    model_class = "Qwen2_5OmniThinkerForConditionalGeneration"
    modalities = frozenset({"text", "image", "audio", "video"})
    default_system_prompt = DEFAULT_SYSTEM_PROMPT
    eos_strings = ("<|im_end|>", "<|endoftext|>")
    model_input_keys = ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw",
                        "input_features", "feature_attention_mask")
    sampling_rate = SAMPLING_RATE
    video_frame_multiple = 2  # temporal patch size
    uses_mrope = True

    def __init__(self, model: torch.nn.Module, processor: Any, model_id: str,
                 limits: MediaLimits = MediaLimits()) -> None:
        super().__init__(model, processor, model_id, limits=limits)
        #: per-frame pixel bounds of video frames (``size`` of the video processor); None: the
        #: processor's own video defaults. A processor built by the caller carries the bounds it was
        #: given; :meth:`from_pretrained` keeps a checkpoint's bounds only where it saves its own.
        self.video_size: dict[str, Any] | None = dict(processor.video_processor.size)
        self.tokens = {
            name: self.token_id(getattr(processor, f"{name}_token"))
            for name in ("image", "audio", "video", "vision_bos", "vision_eos", "audio_bos", "audio_eos")
        }

    @classmethod
    def from_pretrained(cls, model_id: str, **kwargs: Any) -> "Qwen25OmniBackend":
        backend = super().from_pretrained(model_id, **kwargs)
        if not has_own_video_settings(model_id):
            # the loaded video processor holds the image bounds (3136 to 12,845,056 px): passing them
            # would replace the processor's video default (128 to 768 x 28 x 28 px per frame) and
            # give a 720p frame 1.66x the tokens the model is used to
            backend.video_size = None
        return backend

    @classmethod
    def load_model(cls, model_id: str, config: Any, kwargs: dict[str, Any]) -> torch.nn.Module:
        from transformers import Qwen2_5OmniForConditionalGeneration

        if config.model_type == "qwen2_5_omni":
            # full checkpoint: build without the talker / token2wav, keep only the thinker
            return Qwen2_5OmniForConditionalGeneration.from_pretrained(
                model_id, enable_audio_output=False, **kwargs).thinker
        return super().load_model(model_id, config, kwargs)

    def wants_audio_in_video(self, sources: SourceConfig) -> bool:
        return sources.use_audio_in_video

    def videos_kwargs(self, mb: MediaBatch) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"fps": mb.video_fps}
        if self.video_size is not None:  # the processor class would otherwise override saved bounds
            kwargs["size"] = self.video_size
        return kwargs

    def processor_kwargs(self, mb: MediaBatch) -> dict[str, Any]:
        kwargs = super().processor_kwargs(mb)
        if mb.audio_in_video:
            kwargs["load_audio_from_video"] = True
            kwargs["audio_from_video_indices"] = mb.audio_video
        return kwargs

    # -- layout ----------------------------------------------------------------------------
    @property
    def audio_seconds_per_token(self) -> float:
        return qwen_audio_seconds_per_token(self.processor.feature_extractor)

    def audio_spans(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Start and end (s) of ``count`` consecutive audio tokens from the start of their window."""
        step = self.audio_seconds_per_token
        start = np.arange(count) * step
        return start, start + step

    def fill_segment(self, draft: LayoutDraft, segment: Segment, positions: np.ndarray, ctx: LayoutContext) -> None:
        t = self.tokens
        item = segment.item
        merge = self.processor.image_processor.merge_size
        if segment.kind == "image":
            _, h, w = (int(x) for x in ctx.batch["image_grid_thw"][segment.index])
            draft.tiles(self.placeholder_positions(ctx, positions, t["image"]), item, (h // merge, w // merge))
        elif segment.kind == "audio":
            audio = self.placeholder_positions(ctx, positions, t["audio"])
            duration = ctx.media.media[item]["duration"]
            draft.durations[item] = duration
            start, end = self.audio_spans(len(audio))
            draft.times(audio, item, L.AUDIO, segment.offset + start, np.minimum(segment.offset + end, duration))
        else:  # video, possibly interleaved with its audio track
            _, h, w = (int(x) for x in ctx.batch["video_grid_thw"][segment.index])
            rows, cols = h // merge, w // merge
            duration = ctx.media.media[item]["duration"]
            draft.durations[item] = duration
            sec_per_group = self.processor.video_processor.temporal_patch_size / ctx.media.video_fps
            visual = self.placeholder_positions(ctx, positions, t["video"])
            n = np.arange(len(visual))
            draft.tiles(visual, item, (rows, cols), n % (rows * cols), kind=L.VIDEO_VISUAL)
            # the last group may be padded past the end of the video
            start = (n // (rows * cols)) * sec_per_group
            draft.times(visual, item, L.VIDEO_VISUAL, np.minimum(start, duration),
                        np.minimum(start + sec_per_group, duration))
            track = self.placeholder_positions(ctx, positions, t["audio"])
            draft.times(track, item, L.VIDEO_AUDIO, *self.audio_spans(len(track)))

    # -- positions -------------------------------------------------------------------------
    def position_ids(self, input_ids: torch.Tensor, batch: Any, mb: MediaBatch) -> tuple[torch.Tensor, int]:
        audio_lengths = batch["feature_attention_mask"].sum(-1) if "feature_attention_mask" in batch else None
        position_ids, rope_deltas = self.model.get_rope_index(
            input_ids, batch.get("image_grid_thw"), batch.get("video_grid_thw"),
            torch.ones_like(input_ids), mb.audio_in_video, audio_lengths, self._second_per_grid(batch),
        )
        return position_ids, int(rope_deltas.reshape(-1)[0])

    @staticmethod
    def _second_per_grid(batch: Any) -> torch.Tensor | None:
        return torch.as_tensor(batch["video_second_per_grid"]) if "video_second_per_grid" in batch else None

    def extra_inputs(self, batch: Any, mb: MediaBatch) -> dict[str, Any]:
        return {"use_audio_in_video": mb.audio_in_video, "video_second_per_grid": self._second_per_grid(batch)}

    def generate_kwargs(self, prepared: PreparedInput) -> dict[str, Any]:
        kwargs = super().generate_kwargs(prepared)
        kwargs["use_audio_in_video"] = prepared.extras["use_audio_in_video"]
        if prepared.extras["video_second_per_grid"] is not None:
            kwargs["video_second_per_grid"] = prepared.extras["video_second_per_grid"].to(self.input_device)
        return kwargs
