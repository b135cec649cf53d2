"""What every backend over a transformers multimodal model shares; a family file declares the rest.

The pipeline of :meth:`HFMultimodalBackend.prepare`:

1. load the media of every item (``omnitrace_core.media``: PyAV decoding at the true frame rate,
   long audio cut into the audio encoder's windows) and build the chat content parts in item order;
2. render the family's chat template to text and find each text item in it;
3. call the family's own processor on that text with ``return_text_replacement_offsets=True``: it
   expands every media placeholder into the model's run of tokens and says where each run lies
   in the expanded text;
4. tokenise the expanded text with offsets (the same ids the processor returned, checked) and walk
   it: a token inside a run belongs to that run's media item and the family maps it to a tile or a
   time (:meth:`HFMultimodalBackend.fill_segment`); a token outside maps back to the rendered text
   and so to a text item and its characters;
5. position ids: plain 1-D positions, or the family's M-RoPE ids and rope delta.

Prefill runs the inner model (no ``L x vocab`` logits), decode steps run the whole model on one
token. A family sets its facts as class attributes (:class:`HFMultimodalBackend` lists them) and
overrides :meth:`~HFMultimodalBackend.fill_segment`, plus the few hooks where its processor or its
positions differ.
"""

from __future__ import annotations

import logging
import math
from typing import Any, ClassVar, Sequence

import numpy as np
import torch

from .. import layout as L
from ..config import SourceConfig
from ..errors import InputError
from ..inputs import AudioItem, ImageItem, Item, TextItem, VideoItem, item_label
from ..media import MediaLimits, load_audio, load_image, load_video, probe_duration
from .base import Backend, PreparedInput
from .expansion import (LayoutContext, LayoutDraft, MediaBatch, Segment, expand, expanded_ranges, search_texts,
                        walk_expansion)
from .user_text import (PromptTokens, locate_texts, marked_parts, mask_special_strings, special_strings,
                        tokenize_prompt)

__all__ = ["HFMultimodalBackend", "LayoutContext", "LayoutDraft", "MediaBatch", "Segment"]

logger = logging.getLogger(__name__)

MODALITY_OF = {TextItem: "text", ImageItem: "image", AudioItem: "audio", VideoItem: "video"}


class HFMultimodalBackend(Backend):
    """A backend over a transformers multimodal checkpoint: shared pipeline, per-family facts.

    Family facts (class attributes):
        model_class: the transformers class the checkpoint is loaded with.
        modalities: the item modalities the family accepts (text is always accepted).
        default_system_prompt: system message placed first (None: the template's own default).
        eos_strings: tokens, by string, that end generation besides the generation config's eos.
        model_input_keys: processor outputs the prefill forward takes.
        sampling_rate: audio sampling rate of the family's feature extractor.
        video_frame_multiple: the video frame count is padded (last frame repeated) to a multiple of it.
        uses_mrope: position ids are M-RoPE ids (3, 1, L) with a rope delta, else plain (1, L).
    """

    model_class: ClassVar[str]
    modalities: ClassVar[frozenset[str]] = frozenset({"text", "image"})
    default_system_prompt: ClassVar[str | None] = None
    eos_strings: ClassVar[tuple[str, ...]] = ()
    model_input_keys: ClassVar[tuple[str, ...]] = ()
    sampling_rate: ClassVar[int] = 16000
    video_frame_multiple: ClassVar[int] = 1
    uses_mrope: ClassVar[bool] = False

    def __init__(self, model: torch.nn.Module, processor: Any, model_id: str,
                 limits: MediaLimits = MediaLimits()) -> None:
        super().__init__(model, processor, model_id)
        self.limits = limits
        # what must not reach the processor from user text: the tokenizer's special tokens and the
        # processor's placeholder strings
        placeholders = {getattr(processor, f"{kind}_token", None) for kind in ("image", "video", "audio")}
        self._special_strings = tuple(sorted(set(special_strings(self.tokenizer)) | {
            p for p in placeholders if isinstance(p, str) and p}, key=len, reverse=True))

    # -- loading ---------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, model_id: str, *, dtype="auto", device=None, device_map=None,
                        trust_remote_code: bool = False, limits: MediaLimits = MediaLimits()) -> "HFMultimodalBackend":
        from transformers import AutoConfig, AutoProcessor

        config = AutoConfig.from_pretrained(model_id, trust_remote_code=trust_remote_code)
        kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": "sdpa"}
        if device_map is not None:
            kwargs["device_map"] = device_map
        model = cls.load_model(model_id, config, kwargs)
        if device_map is None:
            model = model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        processor = AutoProcessor.from_pretrained(model_id, trust_remote_code=trust_remote_code)
        return cls(model, processor, model_id, limits=limits)

    @classmethod
    def load_model(cls, model_id: str, config: Any, kwargs: dict[str, Any]) -> torch.nn.Module:
        """Load the model that is traced (override to load a part, e.g. a thinker)."""
        import transformers

        return getattr(transformers, cls.model_class).from_pretrained(model_id, **kwargs)

    def text_model_config(self) -> Any:
        return self.model.config.text_config

    @property
    def attention_layers(self) -> tuple[int, ...]:
        types = getattr(self.text_model_config(), "layer_types", None)
        if not types:
            return super().attention_layers
        # hybrid decoders (e.g. Qwen3.5's gated delta-net layers) have layers without softmax rows
        return tuple(i for i, kind in enumerate(types) if "attention" in kind and kind != "linear_attention")

    # -- facts -----------------------------------------------------------------------------
    def token_id(self, text: str) -> int:
        """The id of a special token, looked up by its string."""
        tid = self.tokenizer.convert_tokens_to_ids(text)
        if not isinstance(tid, int) or tid == self.tokenizer.unk_token_id:
            raise RuntimeError(f"the tokenizer of {self.model_id} has no token {text!r}")
        return tid

    @property
    def eos_token_ids(self) -> frozenset[int]:
        ids: set[int] = set()
        gen = getattr(self.model, "generation_config", None)
        eos = getattr(gen, "eos_token_id", None)
        if eos is not None:
            ids.update([eos] if isinstance(eos, int) else eos)
        for text in self.eos_strings:
            tid = self.tokenizer.convert_tokens_to_ids(text)
            if isinstance(tid, int) and tid != self.tokenizer.unk_token_id:
                ids.add(tid)
        return frozenset(ids)

    @property
    def audio_window_seconds(self) -> float | None:
        """Longest audio the encoder takes in one piece (longer audio is cut); None: no limit."""
        fe = getattr(self.processor, "feature_extractor", None)
        if fe is None or not getattr(fe, "n_samples", None):
            return None
        return fe.n_samples / fe.sampling_rate

    # -- media -----------------------------------------------------------------------------
    @property
    def protects_user_text(self) -> bool:
        """Whether user text reaches the model as text whatever it spells: true for the shared
        :meth:`prepare` (see :mod:`.user_text`); a family with its own prompt path refuses text that
        holds a special-token string instead, unless it overrides this."""
        return type(self).prepare is HFMultimodalBackend.prepare

    def _check_text(self, index: int, text: str) -> None:
        for special in self._special_strings:
            if special in text:
                raise InputError(
                    f"text item {index} contains the model's special token {special!r}; "
                    "special tokens cannot appear in input text"
                )

    def _check_modalities(self, items: Sequence[Item]) -> None:
        for index, item in enumerate(items):
            modality = MODALITY_OF.get(type(item))
            if modality is None:
                raise InputError(f"item {index} has unsupported type {type(item).__name__}")
            if modality != "text" and modality not in self.modalities:
                accepted = ", ".join(sorted(self.modalities | {"text"}))
                raise InputError(f"item {index} is {modality}, which {self.name} models do not take; "
                                 f"this family accepts: {accepted}")

    def wants_audio_in_video(self, sources: SourceConfig) -> bool:
        """Whether the videos' audio tracks join the prompt (families that interleave them override)."""
        return False

    def video_fps(self, items: Sequence[Item], sources: SourceConfig) -> float:
        """One sampling rate for all videos of a prompt: processors take a single fps."""
        fps = sources.video_fps
        for item in items:
            if isinstance(item, VideoItem):
                duration = probe_duration(item.source)
                if duration > 0:
                    fps = min(fps, sources.video_max_frames / duration)
        return fps

    def load_media(self, items: Sequence[Item], sources: SourceConfig) -> MediaBatch:
        """Load every media item and build the chat content parts, in item order."""
        self._check_modalities(items)
        mb = MediaBatch()
        video_items = [i for i, it in enumerate(items) if isinstance(it, VideoItem)]
        mb.video_fps = self.video_fps(items, sources) if video_items else sources.video_fps
        want_audio = self.wants_audio_in_video(sources)
        clips = {i: load_video(items[i].source, fps=mb.video_fps, max_frames=sources.video_max_frames,
                               with_audio=want_audio, sampling_rate=self.sampling_rate, limits=self.limits)
                 for i in video_items}
        mb.audio_in_video = want_audio and any(c.audio is not None for c in clips.values())
        window = self.audio_window_seconds
        previous_text = False
        for index, item in enumerate(items):
            if isinstance(item, TextItem):
                if not self.protects_user_text:
                    self._check_text(index, item.text)
                if previous_text and item.text and not mb.parts[-1]["text"][-1:].isspace():
                    mb.parts.append({"type": "text", "text": "\n"})  # keep adjacent text items apart
                mb.parts.append({"type": "text", "text": item.text, "item": index})
                previous_text = bool(item.text)
                continue
            previous_text = False
            if isinstance(item, ImageItem):
                image = load_image(item.source, limits=self.limits)
                mb.segments.append(Segment(index, "image", len(mb.images)))
                mb.images.append(image)
                mb.parts.append({"type": "image"})
                mb.media[index] = {"width": image.width, "height": image.height}
            elif isinstance(item, AudioItem):
                clip = load_audio(item.source, sampling_rate=self.sampling_rate, limits=self.limits)
                # the feature extractor truncates at its window: cut long audio into windows instead
                per = len(clip.waveform) if window is None else int(round(window * clip.sampling_rate))
                count = max(1, math.ceil(len(clip.waveform) / max(per, 1)))
                for k in range(count):
                    mb.segments.append(Segment(index, "audio", len(mb.audio), k * (window or 0.0)))
                    mb.audio.append(clip.waveform[k * per:(k + 1) * per])
                    mb.audio_video.append(None)
                    mb.parts.append({"type": "audio"})
                mb.media[index] = {"duration": clip.duration, "windows": count}
            else:
                clip = clips[index]
                frames = clip.frames
                pad = -len(frames) % self.video_frame_multiple
                if pad:  # processors pad by repeating the last frame; make it explicit
                    frames = np.concatenate([frames, np.repeat(frames[-1:], pad, axis=0)], axis=0)
                mb.segments.append(Segment(index, "video", len(mb.videos)))
                mb.videos.append(frames)
                mb.video_metadata.append({"total_num_frames": len(frames), "fps": clip.fps, "duration": clip.duration,
                                          "frames_indices": list(range(len(frames))),
                                          "height": frames.shape[1], "width": frames.shape[2]})
                # has_audio: what the file holds; audio_traced: whether that track is in the prompt
                info = {"duration": clip.duration, "fps": clip.fps, "frames": len(clip.frames),
                        "has_audio": clip.has_audio_track, "audio_traced": mb.audio_in_video and clip.audio is not None}
                if mb.audio_in_video:
                    self._add_video_track(mb, clip, info, item)
                mb.parts.append({"type": "video"})
                mb.media[index] = info
        return mb

    def _add_video_track(self, mb: MediaBatch, clip: Any, info: dict[str, Any], item: Item) -> None:
        """Queue a video's audio track as an audio slot tied to that video (interleaving families)."""
        rate = self.sampling_rate
        track = clip.audio.waveform if clip.audio is not None else np.zeros(
            max(1, int(clip.duration * rate)), np.float32)  # a silent track keeps the layout uniform
        window = self.audio_window_seconds
        limit = len(track) if window is None else int(window * rate)
        if len(track) > limit:
            logger.warning("audio track of %s is traced over its first %.0f s only", item_label(item), window)
        info["audio_traced_seconds"] = min(len(track), limit) / rate
        mb.audio.append(track[:limit])
        mb.audio_video.append(len(mb.videos) - 1)

    # -- prompt ----------------------------------------------------------------------------
    def conversation(self, mb: MediaBatch, system_prompt: str | None) -> list[dict[str, Any]]:
        """The chat messages: an optional system message, then one user turn with every part."""
        messages = []
        if system_prompt:
            messages.append({"role": "system", "content": [{"type": "text", "text": system_prompt}]})
        messages.append({"role": "user", "content": [{k: v for k, v in p.items() if k != "item"} for p in mb.parts]})
        return messages

    def render(self, messages: list[dict[str, Any]]) -> str:
        rendered = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return rendered[0] if isinstance(rendered, list) else rendered

    @staticmethod
    def locate_texts(rendered: str, parts: list[dict[str, Any]],
                     items: Sequence[Item]) -> dict[int, tuple[int, int, int]]:
        """Where each text item lies in the rendered template, by search (see :func:`expansion.search_texts`)."""
        return search_texts(rendered, parts, items)

    def processor_kwargs(self, mb: MediaBatch) -> dict[str, Any]:
        """Media arguments of the processor call (override for family-specific keyword arguments)."""
        kwargs: dict[str, Any] = {}
        if mb.images:
            kwargs["images"] = mb.images
        if mb.audio:
            kwargs["audio"] = mb.audio
        if mb.videos:
            kwargs["videos"] = mb.videos
            kwargs["videos_kwargs"] = self.videos_kwargs(mb)
        return kwargs

    def videos_kwargs(self, mb: MediaBatch) -> dict[str, Any]:
        """Video processor arguments: the frames are already sampled at ``mb.video_fps``."""
        return {"do_sample_frames": False, "video_metadata": mb.video_metadata}

    def add_special_tokens(self, rendered: str) -> bool:
        """Whether the tokenizer adds its special tokens (as transformers' own chat path decides)."""
        bos = self.tokenizer.bos_token
        return not (bos is not None and rendered.startswith(bos))

    def prepare(self, items: Sequence[Item], sources: SourceConfig,
                system_prompt: str | None = None, media: MediaBatch | None = None) -> PreparedInput:
        """See :meth:`Backend.prepare`. ``media``: the items' media as :meth:`load_media` returned them,
        possibly edited (verification greys out an image or silences a second); loaded here when None."""
        if system_prompt is None:
            system_prompt = self.default_system_prompt
        mb = self.load_media(items, sources) if media is None else media
        rendered = self.render(self.conversation(mb, system_prompt))
        skeleton = self.render(self.conversation(MediaBatch(parts=marked_parts(mb.parts)), system_prompt))
        text_ranges = locate_texts(rendered, skeleton, items)
        special = self.add_special_tokens(rendered)
        # the processor sees user text with special-token strings masked, so that it expands only the
        # template's placeholders; the ids are then made from the real text (see user_text)
        masked = mask_special_strings(rendered, text_ranges, self._special_strings)
        batch = self.processor(text=[masked], return_tensors="pt", return_text_replacement_offsets=True,
                               add_special_tokens=special, **self.processor_kwargs(mb))
        replacements = batch["text_replacement_offsets"][0]
        spans = expanded_ranges(text_ranges, replacements)
        tokens = tokenize_prompt(self.tokenizer, expand(rendered, replacements),
                                 [(lo, hi) for lo, hi, _lead in spans.values()], special)
        if masked == rendered and not tokens.resplit and tokens.ids != batch["input_ids"][0].tolist():
            raise RuntimeError("token layout mismatch: the processor's ids differ from a tokenisation of its "
                               "expanded prompt")
        input_ids = torch.tensor([tokens.ids], dtype=batch["input_ids"].dtype)
        self.match_prompt_ids(batch, input_ids)
        layout = self.layout(tokens, batch, mb, spans)
        position_ids, rope_delta = self.position_ids(input_ids, batch, mb)
        device = self.input_device
        dtype = self.model.dtype
        model_inputs = {}
        for key in self.model_input_keys:
            if key in batch and batch[key] is not None:
                value = torch.as_tensor(batch[key]).to(device)
                model_inputs[key] = value.to(dtype) if value.is_floating_point() else value
        extras = {"position_ids": position_ids.to(device), "rope_delta": rope_delta}
        extras.update(self.extra_inputs(batch, mb))
        return PreparedInput(input_ids=input_ids.to(device), layout=layout,
                             labels=[item_label(it) for it in items], model_inputs=model_inputs,
                             extras=extras, media=mb.media)

    def match_prompt_ids(self, batch: Any, input_ids: torch.Tensor) -> None:
        """Rebuild the processor's per-token arrays in ``batch`` for the prompt ids ``input_ids`` (1, L).

        The processor tokenised the prompt with user text masked; where user text spells a special or
        added token, or two text items would share a token, :func:`.user_text.tokenize_prompt` tokenises
        it again and the prompt ids differ from the processor's in length or in where media runs sit. Its
        ``mm_token_type_ids`` (which M-RoPE families turn into positions) and ``attention_mask`` would then
        describe other ids, so both are made again from the prompt ids: the token types by the processor's
        own rule (its image, video and audio placeholder ids; the media runs are the same in both), the
        mask as all ones (one sample).
        """
        if "mm_token_type_ids" in batch:
            types = self.processor.create_mm_token_type_ids(input_ids.tolist())
            batch["mm_token_type_ids"] = torch.tensor(types, dtype=torch.as_tensor(batch["mm_token_type_ids"]).dtype)
        if "attention_mask" in batch:
            batch["attention_mask"] = torch.ones_like(input_ids)

    def extra_inputs(self, batch: Any, mb: MediaBatch) -> dict[str, Any]:
        """Backend-private values the family's decode steps or ``generate`` need."""
        return {}

    # -- layout ----------------------------------------------------------------------------
    def layout(self, tokens: PromptTokens, batch: Any, mb: MediaBatch,
               text_ranges: dict[int, tuple[int, int, int]]) -> L.TokenLayout:
        """Walk the expanded prompt: media runs by the processor's own expansion record, text by offsets.

        ``text_ranges``: each text item's range in the expanded text.
        """
        return walk_expansion(tokens, batch, mb, text_ranges, self.fill_segment)

    def fill_segment(self, draft: LayoutDraft, segment: Segment, positions: np.ndarray, ctx: LayoutContext) -> None:
        """Lay out the tokens of one expanded media placeholder (``positions`` into the prompt)."""
        raise NotImplementedError(f"{type(self).__name__} must lay out {segment.kind} placeholders")

    @staticmethod
    def placeholder_positions(ctx: LayoutContext, positions: np.ndarray, token_id: int) -> np.ndarray:
        """The positions among ``positions`` that hold ``token_id`` (a run's feature slots)."""
        return positions[ctx.ids[positions] == token_id]

    # -- positions -------------------------------------------------------------------------
    def position_ids(self, input_ids: torch.Tensor, batch: Any, mb: MediaBatch) -> tuple[torch.Tensor, int]:
        """Prompt position ids and the rope delta of later positions; plain 1-D positions by default."""
        return torch.arange(input_ids.shape[1]).view(1, -1), 0

    def positions_for(self, prepared: PreparedInput, length: int) -> torch.Tensor:
        """Position ids of a full forward over the prompt and ``length - L`` generated tokens."""
        prompt = prepared.extras["position_ids"]
        later = torch.arange(prepared.length, length, device=prompt.device).to(prompt.dtype)
        later = later + prepared.extras["rope_delta"]
        later = later.view(*([1] * (prompt.dim() - 1)), -1).expand(*prompt.shape[:-1], -1)
        return torch.cat([prompt, later], dim=-1)

    # -- model calls -----------------------------------------------------------------------
    def prefill_module(self) -> torch.nn.Module:
        """The model without its LM head: the prefill needs the KV cache, not ``L x vocab`` logits."""
        return self.model.model

    def new_cache(self) -> Any:
        from transformers import DynamicCache

        return DynamicCache(config=self.text_model_config())

    def prefill(self, prepared: PreparedInput) -> Any:
        cache = self.new_cache()
        if prepared.length > 1:
            with torch.no_grad():
                self.prefill_module()(
                    input_ids=prepared.input_ids[:, :-1],
                    position_ids=prepared.extras["position_ids"][..., :-1],
                    past_key_values=cache,
                    use_cache=True,
                    **prepared.model_inputs,
                )
        return cache

    def step(self, prepared: PreparedInput, token_id: int, position: int, cache: Any) -> torch.Tensor:
        device = self.input_device
        for layer in getattr(cache, "layers", ()):
            # recurrent states (linear-attention layers) written under a gradient step keep its graph
            for name, value in list(vars(layer).items()):
                if isinstance(value, torch.Tensor) and value.requires_grad:
                    setattr(layer, name, value.detach())
        ids = torch.tensor([[token_id]], device=device)
        prompt = prepared.extras["position_ids"]
        positions = torch.full((*prompt.shape[:-1], 1), position + prepared.extras["rope_delta"], device=device,
                               dtype=prompt.dtype)
        out = self.model(input_ids=ids, position_ids=positions, past_key_values=cache, use_cache=True)
        return out.logits[0, -1]

    # -- teacher forcing (verification) ----------------------------------------------------
    def lm_decoder(self) -> torch.nn.Module:
        """The decoder stack the prefill runs: it reads ``inputs_embeds`` and returns normed hidden states."""
        return self.model.get_decoder()

    def lm_inputs(self, prepared: PreparedInput, generated: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """See :meth:`Backend.lm_inputs`. The backend's own prefill runs over the prompt and the generated
        tokens and is stopped at the decoder's door, so the embeddings are exactly what tracing feeds it."""
        from dataclasses import replace

        tail = torch.as_tensor([list(generated)], dtype=prepared.input_ids.dtype, device=prepared.input_ids.device)
        length = prepared.length + tail.shape[1]
        extended = replace(prepared, input_ids=torch.cat([prepared.input_ids, tail], dim=1),
                           extras={**prepared.extras, "position_ids": self.positions_for(prepared, length)})
        captured: dict[str, Any] = {}

        def grab(_module: torch.nn.Module, _args: tuple, kwargs: dict[str, Any]) -> None:
            captured.update(kwargs)
            raise _DecoderReached

        handle = self.lm_decoder().register_forward_pre_hook(grab, with_kwargs=True)
        try:
            self.prefill(extended)
        except _DecoderReached:
            pass
        finally:
            handle.remove()
        embeds, positions = captured.get("inputs_embeds"), captured.get("position_ids")
        if embeds is None or positions is None or embeds.shape[1] != length - 1:
            raise NotImplementedError(f"{self.name}: the prefill does not call lm_decoder() with inputs_embeds and "
                                      "position_ids, so verification cannot teacher-force this family")
        extra = sorted(k for k, v in captured.items() if isinstance(v, torch.Tensor)
                       and k not in ("inputs_embeds", "position_ids", "attention_mask", "cache_position"))
        if extra or (captured.get("attention_mask") is not None and not bool(captured["attention_mask"].all())):
            raise NotImplementedError(f"{self.name}: the decoder also reads {extra or ['a padding mask']}, which "
                                      "verification does not forward")
        return embeds.detach(), positions.detach()

    def lm_forward(self, inputs_embeds: torch.Tensor, position_ids: torch.Tensor,
                   attention_mask: torch.Tensor | None = None, cache: Any = None) -> torch.Tensor:
        """See :meth:`Backend.lm_forward`."""
        with torch.no_grad():
            out = self.lm_decoder()(inputs_embeds=inputs_embeds, position_ids=position_ids,
                                    attention_mask=attention_mask, past_key_values=cache, use_cache=cache is not None)
        return out.last_hidden_state

    def lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """See :meth:`Backend.lm_logits`."""
        with torch.no_grad():
            logits = self.model.get_output_embeddings()(hidden)
        cap = getattr(self.text_model_config(), "final_logit_softcapping", None)
        return torch.tanh(logits / cap) * cap if cap else logits


class _DecoderReached(Exception):
    """Raised by the hook of :meth:`HFMultimodalBackend.lm_inputs` to stop a prefill at the decoder."""
