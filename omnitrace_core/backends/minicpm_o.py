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
``<unk>`` as ``image_bound`` / ``audio_bounds``. User text stays text whatever it spells, as in the
shared pipeline (:mod:`.user_text`): the processor gets the prompt with special-token strings and
its own tags masked inside user text, each tag's expansion is the processor's own placeholder
(:meth:`MiniCPMOBackend.expansions`), and the prompt ids are the real expanded text tokenised with
user text split from special tokens; the processor's bounds are moved onto those ids. The layout is
the shared walk of the expansions: a tag's ``<unk>`` tokens are its media, the rest maps back to the
text items and their characters. An image (or frame) is a single tile. Positions are plain 1-D.

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
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np
import torch

from .. import layout as L
from ..capture import register_capture_attention
from ..config import SourceConfig
from ..inputs import AudioItem, ImageItem, Item, TextItem, VideoItem, item_label
from ..media import MediaLimits
from .base import PreparedInput, RemoteCodeRefused, register_backend
from .expansion import expand, expanded_ranges, walk_expansion
from .hf_multimodal import HFMultimodalBackend, LayoutContext, LayoutDraft, MediaBatch, Segment
from .user_text import PromptTokens, locate_texts, marked_parts, mask_special_strings, tokenize_prompt

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
        parts: the content elements in order, ``{"text": string}``, with ``"item"`` for a text item.
        separator: what joins them (``"\\n"``, or ``""`` in omni mode).
        tags: the media tags in order.
        images: PIL images, one per image tag.
        audio: waveforms at 16 kHz, one per audio tag.
        audio_parts: per waveform, the stream it belongs to (consecutive equal ids are merged).
    """

    parts: list[dict[str, Any]] = field(default_factory=list)
    separator: str = "\n"
    tags: list[Tag] = field(default_factory=list)
    images: list[Any] = field(default_factory=list)
    audio: list[np.ndarray] = field(default_factory=list)
    audio_parts: list[int] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The content string."""
        return self.separator.join(part["text"] for part in self.parts)

    def marked(self) -> "ChatContent":
        """The same content with every text item's text replaced by its marker (see :func:`.user_text.locate_texts`)."""
        return replace(self, parts=marked_parts(self.parts))


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

    def __init__(self, model: torch.nn.Module, processor: Any, model_id: str,
                 limits: MediaLimits = MediaLimits()) -> None:
        super().__init__(model, processor, model_id, limits=limits)
        # the processor expands its tags wherever they stand, and <audio> is no special token: masked too
        self._special_strings = tuple(sorted({*self._special_strings, IMAGE_TAG, AUDIO_TAG}, key=len, reverse=True))

    @property
    def protects_user_text(self) -> bool:
        return True  # prepare() masks, splits and lays out user text as the shared pipeline does

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

        out = ChatContent(separator="" if any(isinstance(it, VideoItem) for it in items) else "\n")  # omni: ""
        audio_items = iter(w for w, v in zip(mb.audio, mb.audio_video) if v is None)
        tracks = {v: w for w, v in zip(mb.audio, mb.audio_video) if v is not None}
        images = iter(mb.images)
        video_index = 0
        for index, item in enumerate(items):
            if isinstance(item, TextItem):
                out.parts.append({"text": item.text, "item": index})
            elif isinstance(item, ImageItem):
                out.parts.append({"text": IMAGE_TAG})
                out.tags.append(Tag(index, "image"))
                out.images.append(next(images))
            elif isinstance(item, AudioItem):
                out.parts.append({"text": AUDIO_TAG})
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
                    out.parts += [{"text": UNIT}, {"text": IMAGE_TAG}]
                    out.tags.append(Tag(index, "video", min(f / mb.video_fps, duration),
                                        min((f + 1) / mb.video_fps, duration)))
                    out.images.append(Image.fromarray(frames[f]))
                    if f < len(spans):
                        lo, hi = spans[f]
                        out.parts.append({"text": AUDIO_TAG})
                        out.tags.append(Tag(index, "video_audio", lo / self.sampling_rate, hi / self.sampling_rate))
                        out.audio.append(track[lo:hi])
                        out.audio_parts.append(index)
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

    def prepare(self, items: Sequence[Item], sources: SourceConfig, system_prompt: str | None = None,
                media: MediaBatch | None = None) -> PreparedInput:
        """See :meth:`Backend.prepare`. ``media``: the items' media as :meth:`load_media` returned them,
        possibly edited (verification greys out an image or silences a second); loaded here when None."""
        mb = self.load_media(items, sources) if media is None else media
        content = self.chat_content(items, mb)
        system_prompt = system_prompt or self.default_system_prompt
        rendered = self.render_chat(content, system_prompt)
        text_ranges = locate_texts(rendered, self.render_chat(content.marked(), system_prompt), items)
        # chat()'s processor call, without its max_length truncation (the tracer has its own limit), on the
        # prompt with special-token strings and tags masked in user text: it expands only our tags
        masked = mask_special_strings(rendered, text_ranges, self._special_strings)
        batch = self.processor([masked], [content.images], [content.audio], [content.audio_parts],
                               max_slice_nums=self.max_slice_nums, use_image_id=None, stream_input=False,
                               return_tensors="pt", max_length=None)
        replacements = self.expansions(masked, batch, content)
        spans = expanded_ranges(text_ranges, replacements)
        # the processor encodes with the tokenizer's special tokens added (none for this tokenizer)
        tokens = tokenize_prompt(self.tokenizer, expand(rendered, replacements),
                                 [(lo, hi) for lo, hi, _lead in spans.values()], add_special_tokens=True)
        data = {key: batch[key] for key in _DATA_KEYS if key in batch}
        data.update(self._moved_bounds(batch, expand(masked, replacements), tokens))
        layout = self.lay_out(tokens, replacements, spans, data, content, mb)
        device = self.input_device
        input_ids = torch.tensor([tokens.ids], dtype=torch.long)
        return PreparedInput(input_ids=input_ids.to(device), layout=layout, labels=[item_label(it) for it in items],
                             model_inputs={}, extras={"position_ids": torch.arange(input_ids.shape[1],
                                                                                   device=device)[None],
                                                      "rope_delta": 0, "data": _to(data, device, self.model.dtype)},
                             media=mb.media)

    def expansions(self, masked: str, batch: Any, content: ChatContent) -> list[dict[str, Any]]:
        """Where the processor expanded each tag of ``masked`` and into what, as transformers'
        ``text_replacement_offsets`` records (``type``, ``span``, ``new_span``, ``replacement``).

        Each expansion is the processor's own placeholder for that image (``get_slice_image_placeholder``)
        or audio (``get_audio_placeholder``), with the arguments its call passes; :meth:`_moved_bounds`
        checks that they give the processor's ids.
        """
        records: list[dict[str, Any]] = []
        shift, images, audio = 0, 0, iter(content.audio)
        for match in _TAGS.finditer(masked):
            if match.group() == IMAGE_TAG:
                kind = "image"
                text = self.processor.image_processor.get_slice_image_placeholder(
                    batch["image_sizes"][0][images], images, self.max_slice_nums, None)
                images += 1
            else:
                kind = "audio"
                text = self.processor.get_audio_placeholder(len(next(audio)), chunk_input=False)
            start = match.start() + shift
            records.append({"type": kind, "span": match.span(), "new_span": (start, start + len(text)),
                            "replacement": text})
            shift += len(text) - len(match.group())
        return records

    def _moved_bounds(self, batch: Any, masked_expanded: str, tokens: PromptTokens) -> dict[str, Any]:
        """The processor's ``image_bound`` / ``audio_bounds`` moved onto the prompt ids ``tokens``.

        The bounds index the processor's tokenisation of the masked prompt; where user text made the ids
        differ, each bound's token (an expansion's ``<unk>`` or closing special token, the same in both) is
        found again by its first character.
        """
        enc = self.tokenizer(masked_expanded, return_offsets_mapping=True)
        if list(enc["input_ids"]) != batch["input_ids"][0].tolist():
            raise RuntimeError("token layout mismatch: the processor's ids differ from a tokenisation of its "
                               "expanded prompt")
        if tokens.ids == list(enc["input_ids"]):
            return {}
        starts = np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)[:, 0]
        index = {int(s): i for i, (s, e) in enumerate(tokens.offsets.tolist()) if e > s}
        moved = {}
        for key in ("image_bound", "audio_bounds"):
            bounds = torch.as_tensor(batch[key][0])
            moved[key] = [bounds.new_tensor([index[int(starts[p])] for p in bounds.reshape(-1).tolist()]
                                            ).reshape(-1, 2)]
        return moved

    # -- layout ----------------------------------------------------------------------------
    def lay_out(self, tokens: PromptTokens, replacements: list[dict[str, Any]],
                spans: dict[int, tuple[int, int, int]], data: dict[str, Any], content: ChatContent,
                mb: MediaBatch) -> L.TokenLayout:
        """The shared walk of the tags' expansions (:func:`.expansion.walk_expansion`), checked against the
        model's image and audio bounds.

        Args:
            tokens: the prompt ids with their spans in the expanded text.
            replacements: the tags' expansions (:meth:`expansions`).
            spans: text item ranges in the expanded text.
            data: the model's inputs, with the bounds on ``tokens``.
            content: the user content (its tags, in prompt order, match the expansions).
            mb: the loaded media.
        """
        segments = [Segment(tag.item, "image" if tag.kind in ("image", "video") else "audio", k)
                    for k, tag in enumerate(content.tags)]
        unk = self.tokenizer.unk_token_id

        def fill(draft: LayoutDraft, segment: Segment, positions: np.ndarray, ctx: LayoutContext) -> None:
            self._lay_tag(draft, content.tags[segment.index], self.placeholder_positions(ctx, positions, unk), mb)

        layout = walk_expansion(tokens, {"text_replacement_offsets": [replacements]}, replace(mb, segments=segments),
                                spans, fill)
        for kinds, key in (((L.IMAGE, L.VIDEO_VISUAL), "image_bound"), ((L.AUDIO, L.VIDEO_AUDIO), "audio_bounds")):
            if not np.array_equal(np.flatnonzero(np.isin(layout.kind, kinds)), _bound_positions(data[key][0])):
                raise RuntimeError(f"token layout mismatch: the tags' <unk> tokens are not the model's {key}")
        return layout

    def _lay_tag(self, draft: LayoutDraft, tag: Tag, positions: np.ndarray, mb: MediaBatch) -> None:
        """One tag's feature slots: an image or frame is one tile (its resampler queries have no spatial
        order), an audio span one token per ``audio_seconds_per_token`` from the span's start."""
        if tag.kind in ("image", "video"):
            kind = L.IMAGE if tag.kind == "image" else L.VIDEO_VISUAL
            draft.tiles(positions, tag.item, (1, 1), np.zeros(len(positions), np.int64), kind=kind)
            if tag.kind == "video":
                draft.times(positions, tag.item, kind, np.full(len(positions), tag.start),
                            np.full(len(positions), tag.end))
                draft.durations[tag.item] = mb.media[tag.item]["duration"]
            return
        duration = mb.media[tag.item]["duration"]
        end = min(tag.end, duration)
        start = np.minimum(tag.start + np.arange(len(positions)) * self.audio_seconds_per_token, end)
        kind = L.AUDIO if tag.kind == "audio" else L.VIDEO_AUDIO
        draft.times(positions, tag.item, kind, start, np.minimum(start + self.audio_seconds_per_token, end))
        draft.durations[tag.item] = duration

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

    def lm_decoder(self) -> torch.nn.Module:
        """The decoder stack :meth:`prefill` runs (``get_decoder()`` is the whole ``Qwen3ForCausalLM`` here):
        verification's teacher forcing stops the prefill at its door and runs it alone."""
        return self.model.llm.model

    def generate_kwargs(self, prepared: PreparedInput) -> dict[str, Any]:
        raise NotImplementedError("MiniCPM-o generates through its own chat(); the untraced baseline is not wired")


def _to(value: Any, device: torch.device, dtype: torch.dtype) -> Any:
    """Move the processor's (nested) tensors to the model; floating tensors to its dtype."""
    if isinstance(value, torch.Tensor):
        return value.to(device, dtype) if value.is_floating_point() else value.to(device)
    if isinstance(value, dict):
        return {k: _to(v, device, dtype) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to(v, device, dtype) for v in value)
    return value


def _bound_positions(bounds: Any) -> np.ndarray:
    """The positions inside (n, 2) [start, end) bounds, in order."""
    pairs = np.asarray(bounds).reshape(-1, 2).tolist()
    return np.concatenate([np.arange(a, b) for a, b in pairs] or [np.zeros(0, np.int64)]).astype(np.int64)
