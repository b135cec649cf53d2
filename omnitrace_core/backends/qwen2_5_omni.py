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

import logging
import math
from typing import Any, Sequence

import numpy as np
import torch

from .. import layout as L
from ..config import SourceConfig
from ..errors import InputError
from ..inputs import AudioItem, ImageItem, Item, TextItem, VideoItem, item_label
from ..media import AudioClip, MediaLimits, load_audio, load_image, load_video, probe_duration
from .base import Backend, PreparedInput, register_backend

logger = logging.getLogger(__name__)

DEFAULT_SYSTEM_PROMPT = (
    "You are Qwen, a virtual human developed by the Qwen Team, Alibaba Group, capable of perceiving "
    "auditory and visual inputs, as well as generating text and speech."
)
AUDIO_FRAMES_PER_TOKEN = 4  # mel frames -> tokens: conv stride 2, then 2x average pooling
SAMPLING_RATE = 16000


@register_backend
class Qwen25OmniBackend(Backend):
    """Backend for ``qwen2_5_omni`` (full checkpoints) and ``qwen2_5_omni_thinker`` checkpoints."""

    name = "qwen2_5_omni"
    model_types = ("qwen2_5_omni", "qwen2_5_omni_thinker")

    def __init__(self, model: torch.nn.Module, processor: Any, model_id: str,
                 limits: MediaLimits = MediaLimits()) -> None:
        super().__init__(model, processor, model_id)
        self.limits = limits
        tok = self.tokenizer
        self.tokens = {
            name: tok.convert_tokens_to_ids(getattr(processor, f"{name}_token"))
            for name in ("image", "audio", "video", "vision_bos", "vision_eos", "audio_bos", "audio_eos")
        }
        self._special_strings = tuple(s for s in tok.all_special_tokens if s) + tuple(
            str(t) for t in getattr(tok, "added_tokens_decoder", {}).values() if getattr(t, "special", False)
        )

    @classmethod
    def from_pretrained(cls, model_id: str, *, dtype="auto", device=None, device_map=None,
                        trust_remote_code: bool = False, limits: MediaLimits = MediaLimits()) -> "Qwen25OmniBackend":
        from transformers import (AutoConfig, AutoProcessor, Qwen2_5OmniForConditionalGeneration,
                                  Qwen2_5OmniThinkerForConditionalGeneration)

        config = AutoConfig.from_pretrained(model_id)
        kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": "sdpa"}
        if device_map is not None:
            kwargs["device_map"] = device_map
        if config.model_type == "qwen2_5_omni":
            # full checkpoint: build without the talker / token2wav, keep only the thinker
            full = Qwen2_5OmniForConditionalGeneration.from_pretrained(model_id, enable_audio_output=False, **kwargs)
            model = full.thinker
        else:
            model = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(model_id, **kwargs)
        if device_map is None:
            model = model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        processor = AutoProcessor.from_pretrained(model_id)
        return cls(model, processor, model_id, limits=limits)

    def text_model_config(self) -> Any:
        return self.model.config.text_config

    @property
    def eos_token_ids(self) -> frozenset[int]:
        ids: set[int] = set()
        gen = getattr(self.model, "generation_config", None)
        eos = getattr(gen, "eos_token_id", None)
        if eos is not None:
            ids.update([eos] if isinstance(eos, int) else eos)
        for text in ("<|im_end|>", "<|endoftext|>"):
            tid = self.tokenizer.convert_tokens_to_ids(text)
            if isinstance(tid, int) and tid != self.tokenizer.unk_token_id:
                ids.add(tid)
        return frozenset(ids)

    # -- input preparation -----------------------------------------------------------------
    def _check_text(self, index: int, text: str) -> None:
        for special in self._special_strings:
            if special in text:
                raise InputError(
                    f"text item {index} contains the model's special token {special!r}; "
                    "special tokens cannot appear in input text"
                )

    @property
    def _audio_window_seconds(self) -> float:
        fe = self.processor.feature_extractor
        return fe.n_samples / fe.sampling_rate

    def _load_media(self, items: Sequence[Item], sources: SourceConfig):
        """Load every media item; return content parts, processor inputs and summaries."""
        images, audio_slots, slot_video, videos = [], [], [], []
        parts: list[dict[str, Any]] = []  # chat content parts, in order
        segments: list[tuple[int, str, float]] = []  # per media placeholder: (item, kind, time offset)
        media: dict[int, dict[str, Any]] = {}
        video_items = [i for i, it in enumerate(items) if isinstance(it, VideoItem)]
        # One sampling rate for all videos of a prompt: the processor takes a single fps.
        fps = sources.video_fps
        for i in video_items:
            duration = probe_duration(items[i].source)
            if duration > 0:
                fps = min(fps, sources.video_max_frames / duration)
        clips = {i: load_video(items[i].source, fps=fps, max_frames=sources.video_max_frames,
                               with_audio=sources.use_audio_in_video, sampling_rate=SAMPLING_RATE,
                               limits=self.limits) for i in video_items}
        audio_in_video = sources.use_audio_in_video and any(c.audio is not None for c in clips.values())
        window = self._audio_window_seconds
        previous_text = False
        for index, item in enumerate(items):
            if isinstance(item, TextItem):
                self._check_text(index, item.text)
                if previous_text and item.text and not parts[-1]["text"][-1:].isspace():
                    parts.append({"type": "text", "text": "\n"})  # keep adjacent text items apart
                parts.append({"type": "text", "text": item.text, "item": index})
                previous_text = bool(item.text)
                continue
            previous_text = False
            if isinstance(item, ImageItem):
                image = load_image(item.source, limits=self.limits)
                images.append(image)
                parts.append({"type": "image"})
                segments.append((index, "image", 0.0))
                media[index] = {"width": image.width, "height": image.height}
            elif isinstance(item, AudioItem):
                clip = load_audio(item.source, sampling_rate=SAMPLING_RATE, limits=self.limits)
                # the feature extractor truncates at its window: cut long audio into windows instead
                per = int(round(window * clip.sampling_rate))
                count = max(1, math.ceil(len(clip.waveform) / per))
                for k in range(count):
                    audio_slots.append(clip.waveform[k * per:(k + 1) * per])
                    slot_video.append(None)
                    parts.append({"type": "audio"})
                    segments.append((index, "audio", k * window))
                media[index] = {"duration": clip.duration, "windows": count}
            elif isinstance(item, VideoItem):
                clip = clips[index]
                frames = clip.frames
                if len(frames) % 2:  # the processor pads odd counts by repeating; make it explicit
                    frames = np.concatenate([frames, frames[-1:]], axis=0)
                videos.append(frames)
                info = {"duration": clip.duration, "fps": clip.fps, "frames": len(clip.frames),
                        "has_audio": clip.audio is not None}
                if audio_in_video:
                    track = clip.audio.waveform if clip.audio is not None else np.zeros(
                        max(1, int(clip.duration * SAMPLING_RATE)), np.float32)  # silent track keeps the layout uniform
                    limit = int(window * SAMPLING_RATE)
                    if len(track) > limit:
                        logger.warning("audio track of %s is traced over its first %.0f s only",
                                       item_label(item), window)
                    info["audio_traced_seconds"] = min(len(track), limit) / SAMPLING_RATE
                    audio_slots.append(track[:limit])
                    slot_video.append(len(videos) - 1)
                parts.append({"type": "video"})
                segments.append((index, "video", 0.0))
                media[index] = info
            else:
                raise InputError(f"item {index} has unsupported type {type(item).__name__}")
        return parts, segments, images, audio_slots, slot_video, videos, fps, audio_in_video, media

    def prepare(self, items: Sequence[Item], sources: SourceConfig,
                system_prompt: str | None = DEFAULT_SYSTEM_PROMPT) -> PreparedInput:
        parts, segments, images, audio, slot_video, videos, fps, audio_in_video, media = self._load_media(items, sources)
        conversation = []
        if system_prompt:
            conversation.append({"role": "system", "content": [{"type": "text", "text": system_prompt}]})
        conversation.append({"role": "user", "content": [{k: v for k, v in p.items() if k != "item"} for p in parts]})
        rendered = self.processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        if isinstance(rendered, list):
            rendered = rendered[0]
        text_ranges = self._locate_texts(rendered, parts, items)

        kwargs: dict[str, Any] = {"text": [rendered], "return_tensors": "pt"}
        if images:
            kwargs["images"] = images
        if audio:
            kwargs["audio"] = audio
        if videos:
            kwargs["videos"] = videos
            # the processor class otherwise overrides the checkpoint's saved frame-size bounds
            kwargs["videos_kwargs"] = {"fps": fps, "size": dict(self.processor.video_processor.size)}
            if audio_in_video:
                kwargs["load_audio_from_video"] = True
                kwargs["audio_from_video_indices"] = slot_video
        batch = self.processor(**kwargs)
        input_ids = batch["input_ids"]
        layout = self._layout(input_ids[0].tolist(), rendered, text_ranges, segments, batch, items, media, fps)

        audio_lengths = batch["feature_attention_mask"].sum(-1) if "feature_attention_mask" in batch else None
        second_per_grid = torch.as_tensor(batch["video_second_per_grid"]) if "video_second_per_grid" in batch else None
        position_ids, rope_deltas = self.model.get_rope_index(
            input_ids, batch.get("image_grid_thw"), batch.get("video_grid_thw"),
            torch.ones_like(input_ids), audio_in_video, audio_lengths, second_per_grid,
        )
        device = self.input_device
        dtype = self.model.dtype
        model_inputs = {}
        for key in ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw",
                    "input_features", "feature_attention_mask"):
            if key in batch:
                value = batch[key].to(device)
                model_inputs[key] = value.to(dtype) if value.is_floating_point() else value
        return PreparedInput(
            input_ids=input_ids.to(device),
            layout=layout,
            labels=[item_label(it) for it in items],
            model_inputs=model_inputs,
            extras={"position_ids": position_ids.to(device), "rope_delta": int(rope_deltas.reshape(-1)[0]),
                    "use_audio_in_video": audio_in_video, "video_second_per_grid": second_per_grid},
            media=media,
        )

    @staticmethod
    def _locate_texts(rendered: str, parts: list[dict[str, Any]], items: Sequence[Item]) -> dict[int, tuple[int, int]]:
        """Character range of each text item inside the rendered template."""
        ranges: dict[int, tuple[int, int]] = {}
        cursor = 0
        for part in parts:
            if "item" not in part:
                continue
            text = items[part["item"]].text
            start = rendered.find(text, cursor)
            if start < 0:
                raise RuntimeError("the chat template altered an input text; cannot locate it in the prompt")
            ranges[part["item"]] = (start, start + len(text))
            cursor = start + len(text)
        return ranges

    def _layout(self, ids: list[int], rendered: str, text_ranges: dict[int, tuple[int, int]],
                segments: list[tuple[int, str, float]], batch: Any, items: Sequence[Item],
                media: dict[int, dict[str, Any]], fps: float) -> L.TokenLayout:
        """Walk the expanded token ids beside a tokenisation of the unexpanded prompt."""
        enc = self.tokenizer(rendered, add_special_tokens=False, return_offsets_mapping=True)
        plain_ids, offsets = enc["input_ids"], enc["offset_mapping"]
        t = self.tokens
        placeholders = {t["image"], t["audio"], t["video"]}
        lay = L.TokenLayout.empty(len(ids))
        grids, durations = {}, {}
        merge = self.processor.image_processor.merge_size
        fe = self.processor.feature_extractor
        sec_per_audio_token = fe.hop_length * AUDIO_FRAMES_PER_TOKEN / fe.sampling_rate
        sec_per_group = self.processor.video_processor.temporal_patch_size / fps
        image_grids = batch.get("image_grid_thw")
        video_grids = batch.get("video_grid_thw")
        n_image = n_video = 0
        seg_iter = iter(segments)
        i = j = 0
        while i < len(ids):
            if j < len(plain_ids) and plain_ids[j] in placeholders:
                item, kind, offset = next(seg_iter)
                if kind == "image":
                    _, h, w = (int(x) for x in image_grids[n_image])
                    n_image += 1
                    grids[item] = (h // merge, w // merge)
                    tile = 0
                    while i < len(ids) and ids[i] == t["image"]:
                        lay.kind[i], lay.item[i], lay.tile[i] = L.IMAGE, item, tile
                        tile, i = tile + 1, i + 1
                elif kind == "audio":
                    k = 0
                    duration = media[item]["duration"]
                    durations[item] = duration
                    while i < len(ids) and ids[i] == t["audio"]:
                        start = offset + k * sec_per_audio_token
                        lay.kind[i], lay.item[i] = L.AUDIO, item
                        lay.time_start[i], lay.time_end[i] = start, min(start + sec_per_audio_token, duration)
                        k, i = k + 1, i + 1
                else:  # video, possibly interleaved with its audio track
                    _, h, w = (int(x) for x in video_grids[n_video])
                    n_video += 1
                    grids[item] = (h // merge, w // merge)
                    per_group = (h // merge) * (w // merge)
                    duration = media[item]["duration"]
                    durations[item] = duration
                    n_vis = n_aud = 0
                    inner = {t["video"], t["audio"], t["audio_bos"], t["audio_eos"]}
                    while i < len(ids) and ids[i] in inner:
                        if ids[i] == t["video"]:
                            group = n_vis // per_group
                            lay.kind[i], lay.item[i], lay.tile[i] = L.VIDEO_VISUAL, item, n_vis % per_group
                            start = group * sec_per_group
                            lay.time_start[i], lay.time_end[i] = start, start + sec_per_group
                            n_vis += 1
                        elif ids[i] == t["audio"]:
                            start = n_aud * sec_per_audio_token
                            lay.kind[i], lay.item[i] = L.VIDEO_AUDIO, item
                            lay.time_start[i], lay.time_end[i] = start, start + sec_per_audio_token
                            n_aud += 1
                        i += 1
                    # the last group may be padded past the end of the video
                    mask = (lay.item == item) & (lay.kind == L.VIDEO_VISUAL)
                    lay.time_start[mask] = np.minimum(lay.time_start[mask], duration)
                    lay.time_end[mask] = np.minimum(lay.time_end[mask], duration)
                j += 1
                continue
            if j >= len(plain_ids) or ids[i] != plain_ids[j]:
                raise RuntimeError(f"token layout mismatch at position {i}: the processor expanded the prompt "
                                   "in an unexpected way")
            start, end = offsets[j]
            anchor = start
            while anchor < end and rendered[anchor].isspace():
                anchor += 1
            for item, (lo, hi) in text_ranges.items():
                if lo <= anchor < hi or (start == end == lo and lo < hi):
                    lay.kind[i], lay.item[i] = L.TEXT, item
                    lay.char_start[i], lay.char_end[i] = max(start, lo) - lo, min(end, hi) - lo
                    break
            i, j = i + 1, j + 1
        return L.TokenLayout(
            kind=lay.kind, item=lay.item, char_start=lay.char_start, char_end=lay.char_end, tile=lay.tile,
            time_start=lay.time_start, time_end=lay.time_end, grids=grids, durations=durations,
        )

    def generate_kwargs(self, prepared: PreparedInput) -> dict[str, Any]:
        kwargs = super().generate_kwargs(prepared)
        kwargs["use_audio_in_video"] = prepared.extras["use_audio_in_video"]
        if prepared.extras["video_second_per_grid"] is not None:
            kwargs["video_second_per_grid"] = prepared.extras["video_second_per_grid"].to(self.input_device)
        return kwargs

    # -- model calls -----------------------------------------------------------------------
    def prefill(self, prepared: PreparedInput) -> Any:
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config.text_config)
        if prepared.length > 1:
            with torch.no_grad():
                # the inner model returns hidden states only: no (L x vocab) logits for the prompt
                self.model.model(
                    input_ids=prepared.input_ids[:, :-1],
                    position_ids=prepared.extras["position_ids"][..., :-1],
                    past_key_values=cache,
                    use_cache=True,
                    **prepared.model_inputs,
                )
        return cache

    def step(self, prepared: PreparedInput, token_id: int, position: int, cache: Any) -> torch.Tensor:
        device = self.input_device
        ids = torch.tensor([[token_id]], device=device)
        positions = torch.full((3, 1, 1), position + prepared.extras["rope_delta"], device=device, dtype=torch.long)
        out = self.model(input_ids=ids, position_ids=positions, past_key_values=cache, use_cache=True)
        return out.logits[0, -1]
