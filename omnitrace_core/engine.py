"""The tracing engine: decode token by token, capture each step's signal, build the result.

Per step t the decode query (the last prompt position for t = 1) runs with an active
:class:`~omnitrace_core.capture.AttentionRecorder`; the signal turns the captured rows (and for
gradient signals ``d log p(y_t) / dA`` from one backward through that single step, the KV cache
being constant) into scores over the context, and those are reduced on the model's device to
per-atom sums and maxima before anything is copied to the host. Nothing of size L x L exists.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch

from .answer import answer_token_ids
from .backends import Backend, load_backend
from .capture import AttentionRecorder, recording
from .config import CurationConfig, GenerationConfig, SourceConfig, as_config
from .curation import Span, TokenScores, curate_spans, get_token_rule
from .heads import HeadMass
from .inputs import Item, TextItem, validate_items
from .media import MediaLimits
from .nlp import segment_generation
from .prompt_length import audio_token_floor, check_prompt_length, max_positions, prompt_inputs
from .result import SAVED_DECIMALS, GeneratedToken, ItemInfo, TraceResult
from .sampling import TokenChoice
from .signals import DEFAULT_SIGNAL, Signal, get_signal
from .sources import SourceSet, build_sources
from .sources.reduce import AtomReducer, HeadReducer
from .speech import ItemSegments, Recognizer, TransformersRecognizer, plan_units, resolve_segments
from .verification import Verification

logger = logging.getLogger(__name__)

_SENTENCE_END = (".", "!", "?", "\n", "。")


@dataclass(frozen=True)
class TraceStep:
    """One decoded token, as streamed by :meth:`Tracer.stream`.

    Attributes:
        index: generated-token index.
        token_id / token_text: the token and its text piece.
        text: the whole generated text so far.
        unit / confidence: the source unit the token traces to (-1 for none) and its confidence.
        result: on the last step, the finished :class:`TraceResult`; with ``partial_results``,
            also a snapshot after each step that ends a sentence.
        done: True on the final event.
        logprob: the token's log-probability under the model (None on the final event).
    """

    index: int
    token_id: int
    token_text: str
    text: str
    unit: int
    confidence: float
    result: TraceResult | None = None
    done: bool = False
    logprob: float | None = None


@dataclass
class _Step:
    """What one decode step produced: the token, its scores, how the model rated it, its head masses."""

    token_id: int
    scores: np.ndarray  # [atom_sum (A), atom_max (A), outside (1)]
    logprob: float
    top_id: int
    top_logprob: float
    heads: np.ndarray | None = None  # (layers, heads, U)


@dataclass
class _Decoded:
    """The steps decoded so far, as the result is assembled from them."""

    ids: list[int] = field(default_factory=list)
    offsets: list[tuple[int, int]] = field(default_factory=list)
    steps: list[_Step] = field(default_factory=list)


class Tracer:
    """Traced generation over interleaved inputs.

    Args:
        backend: a loaded model backend (see :func:`omnitrace_core.load_backend`).
        signal: default signal name (``list_signals()``) or instance.
        generation, sources, curation: default settings (a config, or a mapping of its fields);
            each call may override them.
        system_prompt: None for the backend's default system prompt, "" for none.
        recognizer: speech recogniser for audio items whose units are speech segments and that
            bring no transcript (see :mod:`omnitrace_core.speech`); None loads
            ``SourceConfig.asr_model`` with transformers on first need and keeps it.

    Example:
        >>> tracer = Tracer.from_pretrained("Qwen/Qwen2.5-Omni-7B", dtype="bfloat16")
        >>> result = tracer.trace([TextItem("Describe the image."), ImageItem("cat.jpg")])
        >>> for span in result.spans: print(span.text, [s.label for s in span.sources])
    """

    def __init__(self, backend: Backend, *, signal: str | Signal = DEFAULT_SIGNAL,
                 generation: GenerationConfig = GenerationConfig(), sources: SourceConfig = SourceConfig(),
                 curation: CurationConfig = CurationConfig(), system_prompt: str | None = None,
                 recognizer: Recognizer | None = None) -> None:
        self.backend = backend
        self.signal = get_signal(signal)
        self.generation = as_config(GenerationConfig, generation, "generation")
        self.sources = as_config(SourceConfig, sources, "sources")
        self.curation = as_config(CurationConfig, curation, "curation")
        self.system_prompt = system_prompt
        self.recognizer = recognizer
        self._recognizers: dict[str, Recognizer] = {}  # loaded on first need, per asr_model
        self._recognizer_lock = threading.Lock()

    @classmethod
    def from_pretrained(cls, model_id: str | Path, *, dtype: str | torch.dtype = "auto", device: str | None = None,
                        device_map: str | dict | None = None, trust_remote_code: bool = False,
                        limits: MediaLimits = MediaLimits(), **tracer_kwargs: Any) -> "Tracer":
        """Load a checkpoint (Hub id or local folder) and wrap it in a Tracer.

        ``limits`` bound the media the backend reads (file size, pixels, durations).
        """
        backend = load_backend(str(model_id), dtype=dtype, device=device, device_map=device_map,
                               trust_remote_code=trust_remote_code, limits=limits)
        return cls(backend, **tracer_kwargs)

    def trace(self, items: Sequence[Item], **kwargs: Any) -> TraceResult:
        """Generate and trace; same arguments as :meth:`stream`. Returns the finished result."""
        for step in self.stream(items, **kwargs):
            if step.done:
                return step.result
        raise RuntimeError("tracing ended without a result")  # stream always ends with done

    def verify(self, result: TraceResult, mode: str = "input", *, sentences: Sequence[int] | None = None,
               units: Sequence[int] | str | None = None, image: int | None = None,
               items: Sequence[Item] | None = None, progress: Any = None, stop: threading.Event | None = None,
               **options: Any) -> "Verification":
        """Measure what removing each source unit does to each output sentence of ``result``.

        Teacher-forces the generated tokens under each removal (one forward per removed unit, batched,
        reusing the prompt's KV cache up to the first change). Measurements already on ``result`` (same
        mode) are reused, not repeated, and the returned verification includes them, with their cost
        (``cost`` totals every forward once). Store it with ``result = result.with_verification(v)``,
        which replaces what the result held.

        Args:
            result: a result this tracer's model generated.
            mode: "input" (change the input and re-encode: does the content matter?) or "knockout"
                (block attention to the unit: does the language model read it?); see
                :mod:`omnitrace_core.verification.ablation`.
            sentences: span indices to check (default: all); unit effects cover every sentence.
            units: unit indices to measure (default: all), or "tiles" for the tiles of ``image``.
            image: the image unit of ``units="tiles"`` (default: the image the sentences cite most).
            items: the input items (default: rebuilt from the result's item records).
            progress: ``progress(done, total)`` after each decoder call.
            stop: set it to stop between decoder calls (the verification keeps what was finished,
                ``stopped=True``).
            **options: ``top_k``, ``threshold``, ``checks``, ``curated``, ``rankings``, ``batch_size``,
                ``media_root`` (see :func:`omnitrace_core.verification.verify`).
        """
        from .verification import verify

        previous = result.verification_in(mode)
        measured = verify(self.backend, result, items, mode=mode, sentences=sentences, units=units, image=image,
                          previous=previous, progress=progress, stop=stop, system_prompt=self.system_prompt,
                          **options)
        return previous.merge(measured) if previous is not None else measured

    def stream(self, items: Sequence[Item], *, signal: str | Signal | None = None,
               generation: GenerationConfig | None = None, sources: SourceConfig | None = None,
               curation: CurationConfig | None = None, stop: threading.Event | None = None,
               partial_results: bool = False, answer: str | None = None,
               heads: bool = False) -> Iterator[TraceStep]:
        """Generate and trace, yielding a :class:`TraceStep` per token and a final one with the result.

        Args:
            items: the interleaved input items, in order.
            signal, generation, sources, curation: overrides of the tracer's defaults (a config,
                or a mapping of its fields read as ``GenerationConfig.from_dict`` etc.).
            stop: set it (from another thread) to end generation early; the result keeps what
                was generated (``stop_reason == "stopped"``).
            partial_results: attach a snapshot result to each step that ends a sentence.
            answer: trace this text instead of generating: it is tokenised as the model would write
                it (:func:`omnitrace_core.answer.answer_token_ids`) and teacher-forced token by token,
                each step traced exactly as a generated one. The whole answer is traced
                (``max_new_tokens`` does not cut it, sampling settings do not apply); the result has
                ``forced=True``, ``stop_reason == "answer"`` and each token's log-probability, with the
                model's own top choice where it differs.
            heads: also capture each layer's and head's attention mass on each source unit
                (``result.heads``, see :mod:`omnitrace_core.heads`): layers x heads x units numbers per token.
        """
        items = list(items)
        validate_items(items)
        signal_obj = get_signal(signal) if signal is not None else self.signal
        gen = self.generation if generation is None else as_config(GenerationConfig, generation, "generation")
        src_config = self.sources if sources is None else as_config(SourceConfig, sources, "sources")
        cur = self.curation if curation is None else as_config(CurationConfig, curation, "curation")
        backend = self.backend
        t_start = time.perf_counter()
        # a signal's layer or head selection that does not fit the model fails before any media are read
        layers = backend.signal_layers(signal_obj)
        num_heads = getattr(backend.text_model_config(), "num_attention_heads", None)
        if num_heads:
            signal_obj.heads(int(num_heads))
        budget = gen
        if answer is not None:  # the answer's length stands for max_new_tokens (estimated until the prompt is known)
            budget = replace(gen, max_new_tokens=len(answer_token_ids(backend.tokenizer, [], answer)))
        prepare_kwargs = {} if self.system_prompt is None else {"system_prompt": self.system_prompt}
        plan = plan_units(items, src_config)  # reads transcripts: a bad one fails before media decoding
        positions = max_positions(backend)
        floor = audio_token_floor(items, backend)  # long audio is refused before the processor decodes it
        check_prompt_length(sum(i.tokens for i in floor), budget, positions, floor, at_least=True)
        prepared = backend.prepare(items, src_config, **prepare_kwargs)
        forced = None
        if answer is not None:
            forced = answer_token_ids(backend.tokenizer, prepared.input_ids[0].tolist(), answer)
            budget = replace(gen, max_new_tokens=len(forced))
        check_prompt_length(prepared.length, budget, positions, prompt_inputs(prepared))  # before any model forward
        t_speech = time.perf_counter()
        speech = resolve_segments(items, plan, src_config, prepared.layout.durations,
                                  lambda: self._recognizer(src_config), getattr(backend, "limits", MediaLimits()))
        t_speech = time.perf_counter() - t_speech
        source_set = build_sources(prepared.layout, items, src_config, labels=prepared.labels,
                                   segments={i: s.segments for i, s in speech.items() if s.segments})
        t_prepared = time.perf_counter()

        device = backend.input_device
        reducer = AtomReducer(source_set, prepared.length, device)
        head_reducer = HeadReducer(source_set, prepared.length, device, backend.attention_layers) if heads else None
        eos = backend.eos_token_ids
        choose = TokenChoice(gen, device, eos)
        cache = backend.prefill(prepared)
        t_prefilled = time.perf_counter()

        token, position = int(prepared.input_ids[0, -1]), prepared.length - 1
        decoded = _Decoded()
        generated, offsets = decoded.ids, decoded.offsets
        stop_reason = "max_new_tokens" if forced is None else "answer"
        first_token_s = None
        context = dict(items=items, prepared=prepared, sources=source_set, signal=signal_obj.name,
                       generation=gen, source_config=src_config, curation=cur, speech=speech,
                       forced=forced is not None, head_layers=head_reducer.layers if heads else None)
        for index in range(gen.max_new_tokens if forced is None else len(forced)):
            if stop is not None and stop.is_set():
                stop_reason = "stopped"
                break
            step = self._decode_step(prepared, signal_obj, layers, token, position, cache, reducer, choose,
                                     generated, forced=None if forced is None else forced[index],
                                     head_reducer=head_reducer)
            next_id = step.token_id
            if forced is None and next_id in eos:
                stop_reason = "eos"
                break
            generated.append(next_id)
            decoded.steps.append(step)
            text = backend.decode(generated).rstrip("\ufffd")  # an incomplete UTF-8 char waits for its bytes
            start = offsets[-1][1] if offsets else 0
            offsets.append((start, max(start, len(text))))
            token, position = next_id, position + 1
            if first_token_s is None:
                first_token_s = time.perf_counter() - t_start
            unit, confidence = self._step_trace(source_set, step.scores, cur)
            piece = text[offsets[-1][0]:offsets[-1][1]]
            snapshot = None
            if partial_results and piece.rstrip().endswith(_SENTENCE_END):
                snapshot = self._assemble(decoded, "running", {}, **context)
            yield TraceStep(index=index, token_id=next_id, token_text=piece, text=text, unit=unit,
                            confidence=confidence, result=snapshot, logprob=step.logprob)
        t_end = time.perf_counter()
        post_hoc_s = 0.0
        if signal_obj.post_hoc and generated:  # scored from the finished output (see Signal.post_hoc)
            scored = signal_obj.score_output(backend, items, prepared, source_set, generated, src_config,
                                             self.system_prompt)
            for step, row in zip(decoded.steps, scored):
                step.scores = np.asarray(row)
            post_hoc_s = time.perf_counter() - t_end
        decode_s = t_end - t_prefilled
        timings = {
            "prepare_s": t_prepared - t_start,
            "speech_s": t_speech,
            "prefill_s": t_prefilled - t_prepared,
            "decode_s": decode_s,
            "total_s": t_end - t_start + post_hoc_s,
            "first_token_s": first_token_s if first_token_s is not None else t_end - t_start,
            "tokens_per_s": len(generated) / decode_s if decode_s > 0 else 0.0,
            **({"post_hoc_s": post_hoc_s} if signal_obj.post_hoc else {}),
        }
        result = self._assemble(decoded, stop_reason, timings, **context)
        last_unit, last_conf = (-1, 0.0)
        if decoded.steps:
            last_unit, last_conf = self._step_trace(source_set, decoded.steps[-1].scores, cur)
        yield TraceStep(index=len(generated) - 1, token_id=generated[-1] if generated else -1, token_text="",
                        text=result.text, unit=last_unit, confidence=last_conf, result=result, done=True)

    def _recognizer(self, config: SourceConfig) -> Recognizer:
        """The tracer's recogniser, or ``config.asr_model`` loaded once and kept."""
        if self.recognizer is not None:
            return self.recognizer
        with self._recognizer_lock:
            if config.asr_model not in self._recognizers:
                self._recognizers[config.asr_model] = TransformersRecognizer(config.asr_model)
            return self._recognizers[config.asr_model]

    def _decode_step(self, prepared, signal_obj: Signal, layers, token: int, position: int, cache: Any,
                     reducer: AtomReducer, choose: TokenChoice, generated: list[int], *, forced: int | None = None,
                     head_reducer: HeadReducer | None = None) -> _Step:
        """One decode step: the next token (``forced``, or the choice under the generation settings),
        how the model rates it, its signal scores and, with ``head_reducer``, its head masses."""
        captured = set(layers) | set(head_reducer.layers if head_reducer is not None else ())
        recorder = AttentionRecorder(captured, as_grad_leaves=signal_obj.needs_gradients)
        with recording(recorder), torch.set_grad_enabled(signal_obj.needs_gradients):
            logits = self.backend.step(prepared, token, position, cache)
        next_id = choose(logits, generated) if forced is None else int(forced)
        with torch.no_grad():
            logp_all = torch.log_softmax(logits.detach().float(), dim=-1)
            top_id = int(logp_all.argmax())
            step = _Step(token_id=next_id, scores=np.zeros(2 * reducer.atoms + 1),
                         logprob=float(logp_all[next_id]), top_id=top_id, top_logprob=float(logp_all[top_id]))
            if head_reducer is not None:
                step.heads = head_reducer(recorder.rows_for(head_reducer.layers))
        if signal_obj.post_hoc:  # nothing to score until the output is complete
            return step
        rows = recorder.rows_for(layers)
        grads = None
        if signal_obj.needs_gradients:
            logp = torch.log_softmax(logits.float(), dim=-1)[next_id]
            grads = [g.to(reducer.device) for g in torch.autograd.grad(logp, rows)]
            _detach_cache(cache)
        with torch.no_grad():
            scores = signal_obj.score([r.detach().to(reducer.device) for r in rows], grads)
            step.scores = reducer(scores)
        return step

    @staticmethod
    def _step_trace(sources: SourceSet, step_scores: np.ndarray, curation: CurationConfig) -> tuple[int, float]:
        A = sources.num_atoms
        unit_sum = sources.unit_totals(step_scores[None, :A])
        unit_max = sources.unit_maxima(step_scores[None, A:2 * A])
        unit, confidence = get_token_rule(curation.token_rule)(unit_sum, unit_max)
        return int(unit[0]), float(confidence[0])

    def _assemble(self, decoded: _Decoded, stop_reason: str, timings: dict[str, float], *, items: Sequence[Item],
                  prepared, sources: SourceSet, signal: str, generation: GenerationConfig,
                  source_config: SourceConfig, curation: CurationConfig, speech: Mapping[int, ItemSegments],
                  forced: bool, head_layers: tuple[int, ...] | None) -> TraceResult:
        backend = self.backend
        generated, steps = list(decoded.ids), list(decoded.steps)
        text = backend.decode(generated)
        A = sources.num_atoms
        scores = np.stack([s.scores for s in steps]) if steps else np.zeros((0, 2 * A + 1))
        offsets = [(min(s, len(text)), min(e, len(text))) for s, e in decoded.offsets]
        segmentation = segment_generation(text, offsets, split_lines=source_config.split_lines)
        tokens = tuple(
            GeneratedToken(index=i, token_id=tid, text=text[s:e], char_start=s, char_end=e, pos=pos,
                           **self._rating(step))
            for i, (tid, (s, e), pos, step) in enumerate(zip(generated, offsets, segmentation.pos, steps))
        )
        head_mass = None
        if head_layers is not None:
            shape = (0, len(head_layers), int(getattr(backend.text_model_config(), "num_attention_heads", 0)),
                     len(sources.units))
            head_mass = HeadMass(layers=head_layers,
                                 mass=np.stack([s.heads for s in steps]) if steps else np.zeros(shape, np.float32))
        infos = []
        for index, item in enumerate(items):
            path = None
            if not isinstance(item, TextItem) and isinstance(item.source, (str, Path)):
                path = str(item.source)
            infos.append(ItemInfo(
                index=index, modality=item.modality, label=prepared.labels[index],
                is_prompt=isinstance(item, TextItem) and item.is_prompt,
                text=item.text if isinstance(item, TextItem) else None, path=path,
                grid=prepared.layout.grids.get(index),
                media={**prepared.media.get(index, {}), **(speech[index].info() if index in speech else {})}))
        atom_sum, atom_max = scores[:, :A].astype(np.float64), scores[:, A:2 * A].astype(np.float64)
        bare_spans = tuple(
            Span(index=k, text=text[s.char_start:s.char_end], char_start=s.char_start, char_end=s.char_end,
                 token_start=s.token_start, token_end=s.token_end, sources=())
            for k, s in enumerate(segmentation.spans))
        token_scores = TokenScores(sources=sources, atom_sum=atom_sum, atom_max=atom_max, pos=segmentation.pos,
                                   grids={i.index: i.grid for i in infos if i.grid is not None})
        return TraceResult(
            model_id=backend.model_id, backend=backend.name, signal=signal, text=text, items=tuple(infos),
            sources=sources, tokens=tokens, atom_sum=atom_sum, atom_max=atom_max,
            outside=scores[:, 2 * A].astype(np.float64), spans=curate_spans(bare_spans, token_scores, curation),
            generation=generation, source_config=source_config, curation=curation, timings=timings,
            stop_reason=stop_reason, prompt_tokens=prepared.length, forced=forced, heads=head_mass)

    def _rating(self, step: _Step) -> dict[str, Any]:
        """A token's log-probability and, where the model's top choice was another token, that choice."""
        rating: dict[str, Any] = {"logprob": round(step.logprob, SAVED_DECIMALS)}
        if step.top_id != step.token_id:
            rating.update(top_id=step.top_id, top_logprob=round(step.top_logprob, SAVED_DECIMALS),
                          top_text=self.backend.tokenizer.decode([step.top_id], skip_special_tokens=False))
        return rating


def _detach_cache(cache: Any) -> None:
    """Cut the autograd history of KV entries written by a gradient step (the cache is constant)."""
    for layer in getattr(cache, "layers", ()):
        for name in ("keys", "values"):
            tensor = getattr(layer, name, None)
            if isinstance(tensor, torch.Tensor) and tensor.requires_grad:
                setattr(layer, name, tensor.detach())
