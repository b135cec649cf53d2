"""MiniCPM-o 4.5 backend (text, images, audio, video with its audio track): remote code, opt-in only.

MiniCPM-o is not part of transformers: its model and processor classes ship as Python files with
the checkpoint (``openbmb/MiniCPM-o-4_5``), and loading them runs that code. This backend is
therefore loaded only with ``trust_remote_code=True`` (:func:`~omnitrace_core.load_backend`
refuses otherwise, before any of the checkpoint's code is imported). It is written against the
published interface of that code; the checkpoint could not be downloaded where it was written, so
it has been exercised only against stand-ins that follow that interface (see the tests).

Module tree touched (remote ``MiniCPMO``)::

    model                          MiniCPMO
    ├── vpm, resampler             SigLIP (NaViT) + perceiver resampler: a fixed number of query
    │                              tokens per view (source image or slice), with no spatial order
    ├── apm, audio_avg_pooler,     Whisper encoder (50 Hz after its convolution), pooled by
    │   audio_projection_layer     ``audio_pool_step`` -> one token per 2 * pool_step * 10 ms
    └── llm                        Qwen3ForCausalLM: its attention runs the capture implementation

Prompt and layout (the processor's published contract): images are written as
``(<image>./</image>)`` and expand to ``<image><unk>...</image>`` plus, for large images,
``<slice><unk>...</slice>`` runs; audio as ``(<audio>./</audio>)`` expanding to
``<|audio_start|><unk>...<|audio_end|>``; the processor reports each run as ``image_bound`` /
``audio_bounds``. A video is given as the model's omni units, one per sampled frame:
``<unit>`` + the frame as an image + that frame's span of the audio track. Because the resampler's
queries have no spatial order, an image (or frame) is a single tile. Positions are plain 1-D.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Sequence

import numpy as np
import torch

from .. import layout as L
from ..capture import register_capture_attention
from ..config import SourceConfig
from ..inputs import Item, TextItem, item_label
from ..media import MediaLimits
from .base import PreparedInput, RemoteCodeRefused, register_backend
from .hf_multimodal import HFMultimodalBackend, LayoutDraft, MediaBatch

logger = logging.getLogger(__name__)

IMAGE_TAG = "(<image>./</image>)"
AUDIO_TAG = "(<audio>./</audio>)"
UNIT = "<unit>"
_TAGS = re.compile(f"({re.escape(IMAGE_TAG)}|{re.escape(AUDIO_TAG)})")


@register_backend
class MiniCPMOBackend(HFMultimodalBackend):
    """Backend for ``minicpmo`` checkpoints (MiniCPM-o 4.5, remote code)."""

    name = "minicpm_o"
    model_types = ("minicpmo",)
    requires_remote_code = True
    modalities = frozenset({"text", "image", "audio", "video"})
    eos_strings = ("<|im_end|>", "<|endoftext|>")
    max_slice_nums: int | None = None  # the processor's default slicing

    @classmethod
    def from_pretrained(cls, model_id: str, *, dtype="auto", device=None, device_map=None,
                        trust_remote_code: bool = False, limits: MediaLimits = MediaLimits()) -> "MiniCPMOBackend":
        if not trust_remote_code:
            raise RemoteCodeRefused(
                f"{model_id} is MiniCPM-o, whose model code ships with the checkpoint: loading it runs that code "
                "on this machine with your permissions. Pass trust_remote_code=True (CLI: --trust-remote-code) "
                "only for checkpoints whose code you trust.")
        from transformers import AutoModel, AutoProcessor

        kwargs: dict[str, Any] = {"trust_remote_code": True, "dtype": dtype, "attn_implementation": "sdpa",
                                  "init_vision": True, "init_audio": True, "init_tts": False}
        if device_map is not None:
            kwargs["device_map"] = device_map
        model = AutoModel.from_pretrained(model_id, **kwargs)
        if device_map is None:
            model = model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        processor = AutoProcessor.from_pretrained(model_id, trust_remote_code=True)
        return cls(model, processor, model_id, limits=limits)

    # -- the decoder is ``model.llm`` ------------------------------------------------------
    def text_model_config(self) -> Any:
        return self.model.llm.config

    def _use_capture_attention(self) -> None:
        name = register_capture_attention()
        self.model.llm.set_attn_implementation(name)
        if self.text_model_config()._attn_implementation != name:
            raise RuntimeError(f"could not switch the language model of {self.model_id} to capture attention")

    @property
    def input_device(self) -> torch.device:
        return self.model.llm.get_input_embeddings().weight.device

    @property
    def audio_seconds_per_token(self) -> float:
        fe = self.processor.feature_extractor
        return 2 * self.model.config.audio_pool_step * fe.hop_length / fe.sampling_rate

    @property
    def audio_window_seconds(self) -> float | None:
        return 30.0  # the processor cuts audio into 30 s pieces for the Whisper encoder

    def wants_audio_in_video(self, sources: SourceConfig) -> bool:
        return sources.use_audio_in_video

    # -- prompt ----------------------------------------------------------------------------
    def prompt(self, items: Sequence[Item], mb: MediaBatch) -> tuple[str, list[tuple[int, str, float]],
                                                                         list[Any], list[np.ndarray]]:
        """User content with the processor's tags; per tag (item, kind, start s); images; audio."""
        content, tags, images, audio = [], [], [], []
        images_of = iter(mb.images)
        slots = iter(zip(mb.audio, mb.audio_video))
        video_index = 0
        previous = -1
        for index, item in enumerate(items):
            if isinstance(item, TextItem):
                if content and previous == index - 1 and not content[-1][-1:].isspace() and item.text:
                    content.append("\n")
                content.append(item.text)
                previous = index
                continue
            kind = item.modality
            if kind == "image":
                content.append(IMAGE_TAG)
                tags.append((index, "image", 0.0))
                images.append(next(images_of))
            elif kind == "audio":
                for k in range(mb.media[index]["windows"]):
                    wave, _ = next(slots)
                    content.append(AUDIO_TAG)
                    tags.append((index, "audio", k * self.audio_window_seconds))
                    audio.append(wave)
            else:
                frames = mb.videos[video_index]
                video_index += 1
                track = None
                if mb.audio_in_video:
                    track, _ = next(slots)
                fps = mb.video_fps
                from PIL import Image

                for f in range(mb.media[index]["frames"]):
                    content.append(UNIT + IMAGE_TAG)
                    tags.append((index, "video", f / fps))
                    images.append(Image.fromarray(frames[f]))
                    if track is not None:
                        lo, hi = int(f / fps * self.sampling_rate), int((f + 1) / fps * self.sampling_rate)
                        if hi > lo and lo < len(track):
                            content.append(AUDIO_TAG)
                            tags.append((index, "video_audio", f / fps))
                            audio.append(track[lo:hi])
        return "".join(content), tags, images, audio

    def prepare(self, items: Sequence[Item], sources: SourceConfig,
                system_prompt: str | None = None) -> PreparedInput:
        mb = self.load_media(items, sources)
        user, tags, images, audio = self.prompt(items, mb)
        messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + \
            [{"role": "user", "content": user}]
        rendered = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        kwargs: dict[str, Any] = {"max_slice_nums": self.max_slice_nums, "use_image_id": False,
                                  "chunk_input": False, "return_tensors": "pt"}
        batch = self.processor([rendered], [images] if images else None, [audio] if audio else None, **kwargs)
        input_ids = torch.as_tensor(batch["input_ids"]).long()
        layout = self.layout_from_bounds(input_ids[0].numpy(), rendered, batch, tags, items, mb)
        device = self.input_device
        data = {key: batch[key] for key in ("pixel_values", "tgt_sizes", "image_bound", "audio_features",
                                            "audio_feature_lens", "audio_bounds", "spk_bounds") if key in batch}
        return PreparedInput(input_ids=input_ids.to(device), layout=layout, labels=[item_label(it) for it in items],
                             model_inputs={}, extras={"position_ids": torch.arange(input_ids.shape[1],
                                                                                   device=device)[None],
                                                      "rope_delta": 0, "data": _to(data, device, self.model.dtype)},
                             media=mb.media)

    # -- layout ----------------------------------------------------------------------------
    def layout_from_bounds(self, ids: np.ndarray, rendered: str, batch: Any, tags: list[tuple[int, str, float]],
                           items: Sequence[Item], mb: MediaBatch) -> L.TokenLayout:
        """Media tokens from the processor's bounds; text tokens by re-finding each text piece's ids."""
        draft = LayoutDraft(len(ids))
        image_runs = [(int(a), int(b)) for a, b in np.asarray(batch["image_bound"][0]).reshape(-1, 2)]
        audio_runs = [(int(a), int(b)) for a, b in np.asarray(batch["audio_bounds"][0]).reshape(-1, 2)] \
            if "audio_bounds" in batch else []
        image_start = self.token_id("<image>")
        pictures: list[list[tuple[int, int]]] = []
        for start, end in image_runs:  # a run right after <image> begins a picture; <slice> runs continue it
            if ids[start - 1] == image_start or not pictures:
                pictures.append([])
            pictures[-1].append((start, end))
        pictures_iter, audio_iter = iter(pictures), iter(audio_runs)
        step = self.audio_seconds_per_token
        for item, kind, offset in tags:
            if kind in ("image", "video"):
                positions = np.concatenate([np.arange(a, b) for a, b in next(pictures_iter)])
                draft.tiles(positions, item, (1, 1), np.zeros(len(positions), np.int64),
                            kind=L.IMAGE if kind == "image" else L.VIDEO_VISUAL)
                if kind == "video":
                    fps, duration = mb.video_fps, mb.media[item]["duration"]
                    draft.times(positions, item, L.VIDEO_VISUAL, np.full(len(positions), min(offset, duration)),
                                np.full(len(positions), min(offset + 1 / fps, duration)))
                    draft.durations[item] = duration
            else:
                a, b = next(audio_iter)
                positions = np.arange(a, b)
                duration = mb.media[item]["duration"]
                start = np.minimum(offset + np.arange(len(positions)) * step, duration)
                draft.times(positions, item, L.AUDIO if kind == "audio" else L.VIDEO_AUDIO, start,
                            np.minimum(start + step, duration))
                draft.durations[item] = duration
        self._lay_text(draft, ids, rendered, items, mb)
        return draft.freeze()

    def _lay_text(self, draft: LayoutDraft, ids: np.ndarray, rendered: str, items: Sequence[Item],
                  mb: MediaBatch) -> None:
        """Find each text item's tokens: tag-free pieces of the prompt tokenise on their own (the tags'
        expansions start and end with special tokens), so their ids appear verbatim, in order."""
        ranges = self.locate_texts(rendered, mb.parts, items)
        cursor, offset = 0, 0
        for piece in _TAGS.split(rendered):
            if _TAGS.fullmatch(piece) or not piece:
                offset += len(piece)
                continue
            enc = self.tokenizer(piece, add_special_tokens=False, return_offsets_mapping=True)
            pids = list(enc["input_ids"])
            at = _find(ids, pids, cursor)
            if at < 0:
                raise RuntimeError("token layout mismatch: a text piece of the prompt is not in the processor's ids")
            for k, (s, e) in enumerate(enc["offset_mapping"]):
                s, e = s + offset, e + offset
                for item, (lo, hi, lead) in ranges.items():
                    anchor = next((c for c in range(s, e) if not rendered[c].isspace()), s)
                    if lo <= anchor < hi:
                        i = at + k
                        draft.kind[i], draft.item[i] = L.TEXT, item
                        draft.char_start[i], draft.char_end[i] = max(s, lo) - lo + lead, min(e, hi) - lo + lead
                        break
            cursor = at + len(pids)
            offset += len(piece)

    # -- model calls -----------------------------------------------------------------------
    def new_cache(self) -> Any:
        from transformers import DynamicCache

        return DynamicCache(config=self.text_model_config())

    def prefill(self, prepared: PreparedInput) -> Any:
        cache = self.new_cache()
        if prepared.length > 1:
            with torch.no_grad():
                data = {**prepared.extras["data"], "input_ids": prepared.input_ids}
                embeds, _ = self.model.get_vllm_embedding(data)
                embeds = self.model.get_omni_embedding(data, input_embeddings=embeds,
                                                       chunk_length=getattr(self.model.config, "audio_chunk_length",
                                                                            -1))
                self.model.llm.model(inputs_embeds=embeds[:, :-1], position_ids=prepared.extras["position_ids"][:, :-1],
                                     past_key_values=cache, use_cache=True)
        return cache

    def step(self, prepared: PreparedInput, token_id: int, position: int, cache: Any) -> torch.Tensor:
        ids = torch.tensor([[token_id]], device=self.input_device)
        positions = torch.tensor([[position]], device=self.input_device)
        out = self.model.llm(input_ids=ids, position_ids=positions, past_key_values=cache, use_cache=True)
        return out.logits[0, -1]

    def generate_kwargs(self, prepared: PreparedInput) -> dict[str, Any]:
        raise NotImplementedError("MiniCPM-o generates through its own chat(); the untraced baseline is not wired")


def _find(haystack: np.ndarray, needle: list[int], start: int) -> int:
    """First index >= start where ``needle`` occurs in ``haystack`` (-1 if none)."""
    n = len(needle)
    if n == 0:
        return start
    first = needle[0]
    for i in np.flatnonzero(haystack[start:] == first) + start:
        if haystack[i:i + n].tolist() == needle:
            return int(i)
    return -1


def _to(value: Any, device: torch.device, dtype: torch.dtype) -> Any:
    """Move the processor's (nested) tensors to the model; floating tensors to its dtype."""
    if isinstance(value, torch.Tensor):
        return value.to(device, dtype) if value.is_floating_point() else value.to(device)
    if isinstance(value, dict):
        return {k: _to(v, device, dtype) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to(v, device, dtype) for v in value)
    return value
