"""MiniCPM-o 4.5 backend (text, images, audio, video with its audio track): remote code, opt-in only.

MiniCPM-o is not part of transformers: its model and processor classes ship as Python files with
the checkpoint (``openbmb/MiniCPM-o-4_5``), and loading them runs that code. This backend is
therefore loaded only with ``trust_remote_code=True`` (:func:`~omnitrace_core.load_backend`
refuses otherwise, before any of the checkpoint's code is imported). The code was written for an
older transformers; :mod:`.minicpm_o_compat` lists and fixes what breaks under the pinned 5.x.

Module tree touched (remote ``MiniCPMO``)::

    model                          MiniCPMO
    ├── vpm, resampler             SigLIP (NaViT) + perceiver resampler: ``query_num`` tokens per view
    │                              (source image or slice), with no spatial order among them
    ├── apm, audio_avg_pooler,     Whisper encoder (50 Hz after its convolution), pooled by
    │   audio_projection_layer     ``audio_pool_step`` -> one token per 2 * pool_step * 10 ms
    └── llm                        Qwen3ForCausalLM: its attention runs the capture implementation

The prompt is the one the model's own ``chat()`` builds: the user turn's content elements (each text
item, ``<image>./</image>`` per image, ``<audio>./</audio>`` per audio) joined with ``"\\n"``, the
checkpoint's chat template with ``enable_thinking=False`` (``<think>\\n\\n</think>\\n\\n`` after
``assistant\\n``) and, when there is audio, ``use_tts_template`` (``<|tts_bos|>``), then the
processor with ``use_image_id`` and ``max_slice_nums`` from its config. A video is given as the
model card's omni content, ``chat(omni_mode=True)`` (elements joined with ``""``): per sampled frame,
``<unit>``, the frame as an image, then that frame's span of the audio track. The processor expands
an image to ``<image_id>k</image_id><image><unk>...</image>`` plus ``<slice><unk>...</slice>`` runs
for large images, an audio to ``<|audio_start|><unk>...<|audio_end|>``, and reports each run of
``<unk>`` as ``image_bound`` / ``audio_bounds``: the layout reads media positions from there, and
text positions by re-finding each text piece's ids (every expansion starts and ends with a special
token, so the pieces between them tokenise on their own). An image (or frame) is a single tile.
Positions are plain 1-D.

Audio: ``chat()`` merges all audio of one message into one stream before the Whisper encoder
(``merge_audio_from_same_content``) and cuts it into 30 s pieces. Here each audio item, and each
video's track, is one stream: the same as ``chat()`` when the prompt has one audio source (an audio
item or a video's track), and always aligned with the placeholders when it has several (merging
several items, whose lengths are not multiples of a token, shifts ``chat()``'s tokens against its
placeholders). A video's track is cut at multiples of one audio token (100 ms), so that the pieces'
placeholders add up to the stream's tokens exactly.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from .. import layout as L
from ..capture import register_capture_attention
from ..config import SourceConfig
from ..inputs import AudioItem, ImageItem, Item, TextItem, VideoItem, item_label
from ..media import MediaLimits
from .base import PreparedInput, RemoteCodeRefused, register_backend
from .hf_multimodal import HFMultimodalBackend, LayoutDraft, MediaBatch

logger = logging.getLogger(__name__)

IMAGE_TAG = "<image>./</image>"
AUDIO_TAG = "<audio>./</audio>"
UNIT = "<unit>"
_TAGS = re.compile(f"({re.escape(IMAGE_TAG)}|{re.escape(AUDIO_TAG)})")
#: processor outputs the model's embedding functions read
_DATA_KEYS = ("pixel_values", "tgt_sizes", "image_bound", "audio_features", "audio_feature_lens", "audio_bounds")


@dataclass
class Tag:
    """One media tag of the user content: ``item``'s image / audio / video frame / video audio span,
    covering [start, end) seconds of it (times only for audio and video)."""

    item: int
    kind: str
    start: float = 0.0
    end: float = 0.0


@dataclass
class ChatContent:
    """The user turn as ``chat()`` writes it, with what the processor takes alongside.

    Attributes:
        text: the content string (elements joined by ``"\\n"``, or ``""`` in omni mode).
        texts: text item -> [start, end) characters in ``text``.
        tags: the media tags in order.
        images: PIL images, one per image tag.
        audio: waveforms at 16 kHz, one per audio tag.
        audio_parts: per waveform, the stream it belongs to (consecutive equal ids are merged).
    """

    text: str = ""
    texts: dict[int, tuple[int, int]] = field(default_factory=dict)
    tags: list[Tag] = field(default_factory=list)
    images: list[Any] = field(default_factory=list)
    audio: list[np.ndarray] = field(default_factory=list)
    audio_parts: list[int] = field(default_factory=list)


@register_backend
class MiniCPMOBackend(HFMultimodalBackend):
    """Backend for ``minicpmo`` checkpoints (MiniCPM-o 4.5, remote code)."""

    name = "minicpm_o"
    model_types = ("minicpmo",)
    requires_remote_code = True
    modalities = frozenset({"text", "image", "audio", "video"})
    # with audio in the prompt chat() asks for speech-ready text, which ends with <|tts_eos|>
    eos_strings = ("<|im_end|>", "<|endoftext|>", "<|tts_eos|>")
    enable_thinking = False  # chat()'s default
    max_slice_nums: int | None = None  # None: the processor's configured slicing, as chat() does

    @classmethod
    def from_pretrained(cls, model_id: str, *, dtype="auto", device=None, device_map=None,
                        trust_remote_code: bool = False, limits: MediaLimits = MediaLimits()) -> "MiniCPMOBackend":
        if not trust_remote_code:
            raise RemoteCodeRefused(
                f"{model_id} is MiniCPM-o, whose model code ships with the checkpoint: loading it runs that code "
                "on this machine with your permissions. Pass trust_remote_code=True (CLI: --trust-remote-code) "
                "only for checkpoints whose code you trust.")
        from .minicpm_o_compat import load_minicpm_o

        kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": "sdpa"}
        if device_map is not None:
            kwargs["device_map"] = device_map
        model, processor = load_minicpm_o(model_id, **kwargs)
        if device_map is None:
            model = model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
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
        ap = self.processor.audio_processor
        return 2 * self.processor.pool_step * ap.hop_length / ap.sampling_rate

    @property
    def audio_window_seconds(self) -> float | None:
        return None  # one stream per item: the processor cuts it into the encoder's 30 s pieces itself

    def wants_audio_in_video(self, sources: SourceConfig) -> bool:
        return sources.use_audio_in_video

    # -- prompt ----------------------------------------------------------------------------
    def chat_content(self, items: Sequence[Item], mb: MediaBatch) -> ChatContent:
        """The user content ``chat()`` writes for these items (see the module docstring)."""
        from PIL import Image

        elements: list[tuple[str, int | None]] = []  # (string, text item or None)
        out = ChatContent()
        audio_items = iter(w for w, v in zip(mb.audio, mb.audio_video) if v is None)
        tracks = {v: w for w, v in zip(mb.audio, mb.audio_video) if v is not None}
        images = iter(mb.images)
        video_index = 0
        for index, item in enumerate(items):
            if isinstance(item, TextItem):
                elements.append((item.text, index))
            elif isinstance(item, ImageItem):
                elements.append((IMAGE_TAG, None))
                out.tags.append(Tag(index, "image"))
                out.images.append(next(images))
            elif isinstance(item, AudioItem):
                elements.append((AUDIO_TAG, None))
                duration = mb.media[index]["duration"]
                out.tags.append(Tag(index, "audio", 0.0, duration))
                out.audio.append(next(audio_items))
                out.audio_parts.append(index)
            else:
                frames, track = mb.videos[video_index], tracks.get(video_index)
                video_index += 1
                spans = self._track_spans(len(frames), mb.video_fps, track)
                duration = mb.media[index]["duration"]
                for f in range(mb.media[index]["frames"]):
                    elements += [(UNIT, None), (IMAGE_TAG, None)]
                    out.tags.append(Tag(index, "video", min(f / mb.video_fps, duration),
                                        min((f + 1) / mb.video_fps, duration)))
                    out.images.append(Image.fromarray(frames[f]))
                    if f < len(spans):
                        lo, hi = spans[f]
                        elements.append((AUDIO_TAG, None))
                        out.tags.append(Tag(index, "video_audio", lo / self.sampling_rate, hi / self.sampling_rate))
                        out.audio.append(track[lo:hi])
                        out.audio_parts.append(index)
        separator = "" if any(isinstance(it, VideoItem) for it in items) else "\n"  # omni_mode joins with ""
        pieces = []
        for k, (string, text_item) in enumerate(elements):
            start = sum(map(len, pieces)) + (len(separator) if k else 0)
            if text_item is not None:
                out.texts[text_item] = (start, start + len(string))
            pieces.append((separator if k else "") + string)
        out.text = "".join(pieces)
        return out

    def _track_spans(self, frames: int, fps: float, track: np.ndarray | None) -> list[tuple[int, int]]:
        """Sample ranges of the audio track per frame: [f / fps, (f + 1) / fps) rounded to whole audio
        tokens (the last runs to the track's end); frames past the track's end get none."""
        if track is None:
            return []
        grid = int(round(self.audio_seconds_per_token * self.sampling_rate))
        edges = [int(round(f / fps * self.sampling_rate / grid)) * grid for f in range(frames)] + [len(track)]
        return [(lo, min(hi, len(track))) for lo, hi in zip(edges, edges[1:]) if lo < min(hi, len(track))]

    def render_chat(self, content: ChatContent, system_prompt: str | None) -> str:
        """The chat template as ``chat()`` applies it (generation prompt, thinking off, tts if audio)."""
        messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + \
            [{"role": "user", "content": content.text}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                                  use_tts_template=bool(content.audio),
                                                  enable_thinking=self.enable_thinking)

    def prepare(self, items: Sequence[Item], sources: SourceConfig,
                system_prompt: str | None = None) -> PreparedInput:
        mb = self.load_media(items, sources)
        content = self.chat_content(items, mb)
        rendered = self.render_chat(content, system_prompt or self.default_system_prompt)
        # chat()'s processor call, without its max_length truncation (the tracer has its own limit)
        batch = self.processor([rendered], [content.images], [content.audio], [content.audio_parts],
                               max_slice_nums=self.max_slice_nums, use_image_id=None, stream_input=False,
                               return_tensors="pt", max_length=None)
        input_ids = torch.as_tensor(batch["input_ids"]).long()
        layout = self.lay_out(input_ids[0].numpy(), rendered, batch, content, mb)
        device = self.input_device
        data = {key: batch[key] for key in _DATA_KEYS if key in batch}
        return PreparedInput(input_ids=input_ids.to(device), layout=layout, labels=[item_label(it) for it in items],
                             model_inputs={}, extras={"position_ids": torch.arange(input_ids.shape[1],
                                                                                   device=device)[None],
                                                      "rope_delta": 0, "data": _to(data, device, self.model.dtype)},
                             media=mb.media)

    # -- layout ----------------------------------------------------------------------------
    def lay_out(self, ids: np.ndarray, rendered: str, batch: Any, content: ChatContent,
                mb: MediaBatch) -> L.TokenLayout:
        """Media tokens from the processor's bounds; text tokens by re-finding each text piece's ids."""
        draft = LayoutDraft(len(ids))
        image_start = self.token_id("<image>")
        pictures: list[list[tuple[int, int]]] = []
        for start, end in np.asarray(batch["image_bound"][0]).reshape(-1, 2).tolist():
            if ids[start - 1] == image_start or not pictures:  # <image> begins a picture, <slice> runs continue it
                pictures.append([])
            pictures[-1].append((start, end))
        audio_runs = np.asarray(batch["audio_bounds"][0]).reshape(-1, 2).tolist()
        visual = [t for t in content.tags if t.kind in ("image", "video")]
        if len(pictures) != len(visual) or len(audio_runs) != len(content.tags) - len(visual):
            raise RuntimeError(f"token layout mismatch: the processor wrote {len(pictures)} images and "
                               f"{len(audio_runs)} audio runs for {len(visual)} image and "
                               f"{len(content.tags) - len(visual)} audio tags")
        pictures_iter, audio_iter = iter(pictures), iter(audio_runs)
        step = self.audio_seconds_per_token
        for tag in content.tags:
            if tag.kind in ("image", "video"):
                positions = np.concatenate([np.arange(a, b) for a, b in next(pictures_iter)])
                kind = L.IMAGE if tag.kind == "image" else L.VIDEO_VISUAL
                draft.tiles(positions, tag.item, (1, 1), np.zeros(len(positions), np.int64), kind=kind)
                if tag.kind == "video":
                    draft.times(positions, tag.item, kind, np.full(len(positions), tag.start),
                                np.full(len(positions), tag.end))
                    draft.durations[tag.item] = mb.media[tag.item]["duration"]
            else:
                a, b = next(audio_iter)
                positions = np.arange(a, b)
                duration = mb.media[tag.item]["duration"]
                end = min(tag.end, duration)
                start = np.minimum(tag.start + np.arange(len(positions)) * step, end)
                kind = L.AUDIO if tag.kind == "audio" else L.VIDEO_AUDIO
                draft.times(positions, tag.item, kind, start, np.minimum(start + step, end))
                draft.durations[tag.item] = duration
        self._lay_text(draft, ids, rendered, content)
        return draft.freeze()

    def _lay_text(self, draft: LayoutDraft, ids: np.ndarray, rendered: str, content: ChatContent) -> None:
        """Find each text item's tokens: the tag-free pieces of the prompt tokenise on their own (the tags'
        expansions start and end with special tokens), so their ids appear verbatim, in order."""
        base = rendered.find("<|im_start|>user\n" + content.text)
        if base < 0:
            raise RuntimeError("the chat template altered the user content; cannot locate it in the prompt")
        base += len("<|im_start|>user\n")
        ranges = {item: (base + lo, base + hi) for item, (lo, hi) in content.texts.items()}
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
                anchor = next((c for c in range(s, e) if not rendered[c].isspace()), s)
                for item, (lo, hi) in ranges.items():
                    if lo <= anchor < hi:
                        i = at + k
                        draft.kind[i], draft.item[i] = L.TEXT, item
                        draft.char_start[i], draft.char_end[i] = max(s, lo) - lo, min(e, hi) - lo
                        break
            cursor = at + len(pids)
            offset += len(piece)

    # -- model calls -----------------------------------------------------------------------
    def embed_prompt(self, prepared: PreparedInput) -> torch.Tensor:
        """(1, L, D) input embeddings of the prompt: token embeddings with the resampler's image
        tokens (the model's ``get_vllm_embedding``) and the audio streams' tokens in their runs."""
        data = {**prepared.extras["data"], "input_ids": prepared.input_ids}
        embeds, _ = self.model.get_vllm_embedding(data)
        bounds = data.get("audio_bounds", [[]])[0]
        if len(bounds) == 0:
            return embeds
        # the model's get_omni_embedding with config.stream_input: a stream's tokens fill its runs in order
        chunk = getattr(self.model.config, "audio_chunk_length", -1)
        stream = torch.cat(self.model.get_audio_embedding(data, chunk_length=chunk)[0]).to(embeds.dtype)
        positions = torch.cat([torch.arange(int(a), int(b)) for a, b in bounds]).to(embeds.device)
        if len(positions) != len(stream):
            raise RuntimeError(f"the audio encoder gave {len(stream)} tokens for {len(positions)} audio positions")
        embeds[0, positions] = stream
        return embeds

    def new_cache(self) -> Any:
        from transformers import DynamicCache

        return DynamicCache(config=self.text_model_config())

    def prefill(self, prepared: PreparedInput) -> Any:
        cache = self.new_cache()
        if prepared.length > 1:
            with torch.no_grad():
                embeds = self.embed_prompt(prepared)
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
