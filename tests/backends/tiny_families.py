"""Shared helpers of the per-family backend tests: local tokenizers, tiny processors, exactness checks.

Every family test builds a random-weight model from its transformers config with tiny dimensions
and a processor from its transformers classes around a tokenizer trained here, offline. The chat
templates below reproduce each family's published template in the parts the backends rely on
(text verbatim, one placeholder per media part, the generation prompt).
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pytest
import torch

from omnitrace_core import GenerationConfig, SourceConfig, Tracer
from omnitrace_core import layout as L
from omnitrace_core.testing.tiny_tokenizer import DEFAULT_CORPUS
from omnitrace_core.capture import CAPTURE_ATTENTION

GEN = GenerationConfig(max_new_tokens=3, min_new_tokens=3)
QWEN2_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

#: The Qwen2-VL / Qwen2.5-VL chat template (system default, vision placeholders, generation prompt).
QWEN_VL_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def train_byte_level_bpe(vocab_size: int = 640, corpus: Iterable[str] | None = None) -> tuple[dict, list]:
    """Train a byte-level BPE the Qwen2 way (NFC, Qwen2 split regex, ByteLevel); return (vocab, merges)."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, trainers
    from tokenizers.models import BPE

    backend = Tokenizer(BPE(unk_token=None, byte_fallback=False))
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=0, show_progress=False,
                                  initial_alphabet=sorted(pre_tokenizers.ByteLevel.alphabet()))
    texts = list(DEFAULT_CORPUS if corpus is None else corpus)
    backend.train_from_iterator(texts, trainer=trainer, length=len(texts))
    model = json.loads(backend.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return model["vocab"], merges


def qwen2_tokenizer(added: Sequence[str], *, eos: str, pad: str, chat_template: str | None = None,
                    named: dict[str, str] | None = None, bos: str | None = None, cls: Any = None,
                    vocab_size: int = 640) -> Any:
    """A Qwen2-style tokenizer with ``added`` special tokens after the BPE vocabulary, in order.

    ``named`` sets the tokenizer's named multimodal tokens (``image_token="<|image_pad|>"`` ...);
    ``cls`` is the tokenizer class (default ``Qwen2TokenizerFast``).
    """
    from transformers import AddedToken, Qwen2TokenizerFast

    vocab, merges = train_byte_level_bpe(vocab_size)
    base = len(vocab)
    cls = cls or Qwen2TokenizerFast
    tokenizer = cls(
        vocab=vocab, merges=merges,
        added_tokens_decoder={base + k: AddedToken(t, special=True, normalized=False) for k, t in enumerate(added)},
        errors="replace", unk_token=None, bos_token=bos, eos_token=eos, pad_token=pad,
        extra_special_tokens=[t for t in added if t not in (eos, pad, bos)],
        clean_up_tokenization_spaces=False, split_special_tokens=False, chat_template=chat_template,
        **(named or {}),
    )
    for k, t in enumerate(added):
        assert tokenizer.convert_tokens_to_ids(t) == base + k, t
    return tokenizer


def ids_of(tokenizer: Any, *tokens: str) -> dict[str, int]:
    """Token ids by string."""
    return {t: tokenizer.convert_tokens_to_ids(t) for t in tokens}


def padded_vocab(tokenizer: Any, multiple: int = 64) -> int:
    return -(-len(tokenizer) // multiple) * multiple


# ------------------------------------------------------------------------------ layout checks
def blocks(layout: L.TokenLayout, kind: int) -> dict[int, np.ndarray]:
    """item -> positions of that kind."""
    return {int(i): layout.positions(kind, int(i)) for i in np.unique(layout.item[layout.kind == kind])}


def check_text_offsets(layout: L.TokenLayout, items: Sequence[Any], trimmed: bool = False) -> None:
    """Text tokens carry character offsets that reproduce their item's text (stripped: ``trimmed``)."""
    for item, positions in blocks(layout, L.TEXT).items():
        text = items[item].text
        pieces = "".join(text[s:e] for s, e in zip(layout.char_start[positions], layout.char_end[positions]))
        assert pieces == (text if trimmed is False else text.strip())
    texts = {i for i, it in enumerate(items) if it.modality == "text" and it.text.strip()}
    assert texts <= set(blocks(layout, L.TEXT))


def check_placeholder_mask(layout: L.TokenLayout, ids: np.ndarray, mask: np.ndarray, kinds: Sequence[int]) -> None:
    """The positions the model scatters media features into are exactly the layout's media tokens."""
    assert np.array_equal(mask, np.isin(layout.kind, list(kinds)))


# ------------------------------------------------------------------------------ exactness checks
def eager_forward(backend: Any, prepared: Any, generated: Sequence[int], grads: bool = False) -> Any:
    """One eager forward over prompt + generated tokens with every attention map (the reference)."""
    model = backend.model
    ids = torch.cat([prepared.input_ids, torch.tensor([list(generated)], device=prepared.input_ids.device)], dim=1)
    positions = backend.positions_for(prepared, ids.shape[1])
    model.set_attn_implementation({backend.text_config_key: "eager"})
    try:
        if grads:
            model.requires_grad_(True)
        with torch.set_grad_enabled(grads):
            return model(input_ids=ids, position_ids=positions, output_attentions=True, **prepared.model_inputs)
    finally:
        model.requires_grad_(False)
        model.set_attn_implementation({backend.text_config_key: CAPTURE_ATTENTION})


def _reduce(result: Any, scores: np.ndarray, prompt_length: int) -> np.ndarray:
    atoms = np.zeros(result.sources.num_atoms)
    pa = result.sources.position_atom
    mask = pa >= 0
    np.add.at(atoms, pa[mask], scores[:prompt_length][mask])
    return atoms


def check_signals_equal_eager_forward(backend: Any, items: Sequence[Any], sources: SourceConfig = SourceConfig(),
                                      signals: Sequence[str] = ("attmean", "attraw", "attgrads")) -> None:
    """Every signal runs end to end through a Tracer and its captured rows equal a full eager forward.

    attmean / attraw: the decode rows equal the eager attention maps' rows (mean over heads, over all
    layers or the last); attgrads: the one-step gradient signal equals a full-sequence backward.
    """
    # float64 weights: with random tiny models the float32 gradient noise is about 1e-3 relative,
    # which would hide a real error (captured rows are float32 either way)
    backend.model.to(torch.float64)
    try:
        _check_signals(backend, items, sources, signals)
    finally:
        backend.model.to(torch.float32)


def _check_signals(backend: Any, items: Sequence[Any], sources: SourceConfig, signals: Sequence[str]) -> None:
    tracer = Tracer(backend, sources=sources)
    results = {signal: tracer.trace(items, signal=signal, generation=GEN) for signal in signals}
    generated = [t.token_id for t in results[signals[0]].tokens]
    for result in results.values():  # greedy decoding: the signal never changes the tokens
        assert [t.token_id for t in result.tokens] == generated and result.sources.num_atoms > 0
    assert len(generated) == GEN.max_new_tokens
    prepared = backend.prepare(items, sources)
    length = prepared.length
    attention = [s for s in signals if s != "attgrads"]
    if attention:
        out = eager_forward(backend, prepared, generated)
        assert len(out.attentions) == len(backend.attention_layers)  # one map per softmax-attention layer
        for signal in attention:
            result = results[signal]
            layers = range(len(out.attentions)) if signal == "attmean" else [len(out.attentions) - 1]
            for t in range(len(generated)):
                q = length - 1 + t
                rows = torch.stack([out.attentions[i][0, :, q, : q + 1].float().mean(0) for i in layers]).mean(0)
                expected = _reduce(result, rows.double().cpu().numpy(), length)
                np.testing.assert_allclose(result.atom_sum[t], expected, rtol=1e-5, atol=1e-7)
                assert result.atom_sum[t].sum() + result.outside[t] == pytest.approx(1.0, abs=1e-4)
    if "attgrads" in signals:
        result = results["attgrads"]
        out = eager_forward(backend, prepared, generated, grads=True)
        attn = out.attentions[-1]
        for t in range(len(generated)):
            q = length - 1 + t
            logp = torch.log_softmax(out.logits[0, q].float(), -1)[generated[t]]
            (grad,) = torch.autograd.grad(logp, attn, retain_graph=t + 1 < len(generated))
            contribution = (attn[0, :, q, : q + 1] * grad[0, :, q, : q + 1]).sum(0).clamp_min(0).detach()
            contribution = contribution / contribution.sum()
            expected = _reduce(result, contribution.double().cpu().numpy(), length)
            np.testing.assert_allclose(result.atom_sum[t], expected, rtol=1e-4, atol=1e-7)


def check_round_trip(backend: Any, folder: Any, expected_type: type) -> Any:
    """Save model and processor, load them back through ``load_backend`` (the model_type registry)."""
    from omnitrace_core import load_backend

    backend.model.save_pretrained(folder)
    backend.processor.save_pretrained(folder)
    loaded = load_backend(str(folder), device="cpu")
    assert type(loaded) is expected_type
    return loaded


def seeded(build: Callable[[], torch.nn.Module], seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build().eval()
