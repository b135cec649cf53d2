"""Capture the attention row of the decoding query, without ever building prefill attention maps.

The text decoder runs a custom attention function (registered with transformers'
``AttentionInterface``) that behaves exactly like SDPA for every call except a single-query
decode step made while a :class:`AttentionRecorder` is active in the current context. For
those calls it computes the probabilities of that one query row explicitly (GQA-aware, no
``repeat_kv`` copies), hands them to the recorder and uses them for the output. The recorder
can turn the rows into gradient leaves, so that ``d log p(y_t) / d A`` needs one backward
through the current step only.

Which recorder is active is held in a ``ContextVar``, so concurrent traces in different
threads (e.g. several app users sharing one model) never see each other's rows.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Iterable, Iterator

import torch

CAPTURE_ATTENTION = "omnitrace_capture"

_ACTIVE_RECORDER: ContextVar["AttentionRecorder | None"] = ContextVar(
    "omnitrace_active_recorder", default=None
)


class AttentionRecorder:
    """Holds the decode-step attention rows of the layers one signal asks for.

    Args:
        layers: decoder layer indices to capture.
        as_grad_leaves: return each row as a fresh leaf that requires grad, so the caller can
            take ``torch.autograd.grad(logp, recorder.rows_for(layers))``.
    """

    def __init__(self, layers: Iterable[int], as_grad_leaves: bool = False) -> None:
        self.layers = frozenset(int(i) for i in layers)
        self.as_grad_leaves = as_grad_leaves
        self.rows: dict[int, torch.Tensor] = {}

    def wants(self, layer_idx: int | None) -> bool:
        return layer_idx is not None and layer_idx in self.layers

    def record(self, layer_idx: int, probs: torch.Tensor) -> torch.Tensor:
        """Store one layer's row, shape (heads, context) float32; return the tensor to use downstream."""
        if self.as_grad_leaves:
            probs = probs.detach().requires_grad_(True)
        self.rows[layer_idx] = probs
        return probs

    def rows_for(self, layers: Iterable[int]) -> list[torch.Tensor]:
        """The captured rows of ``layers``, in the order given; raises if one of them never ran."""
        layers = [int(i) for i in layers]
        missing = sorted(set(layers) - set(self.rows))
        if missing:
            raise RuntimeError(
                f"attention rows of layers {missing} were not captured: the text decoder is not "
                f"running the '{CAPTURE_ATTENTION}' attention implementation"
            )
        return [self.rows[i] for i in layers]


@contextlib.contextmanager
def recording(recorder: AttentionRecorder) -> Iterator[AttentionRecorder]:
    """Make ``recorder`` receive the rows of decode steps run inside this block (this context only)."""
    token = _ACTIVE_RECORDER.set(recorder)
    try:
        yield recorder
    finally:
        _ACTIVE_RECORDER.reset(token)


def _apply_mask(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Apply a (B, 1|H, 1, S) boolean or additive mask to scores of shape (B, KVH, G, S)."""
    if mask is None:
        return scores
    mask = mask[..., -scores.shape[-1] :]
    if mask.shape[1] != 1:  # per-head mask: (B, H, 1, S) -> (B, KVH, G, S)
        mask = mask.reshape(scores.shape)
    if mask.dtype == torch.bool:
        return scores.masked_fill(~mask, float("-inf"))
    return scores + mask.to(scores.dtype)


def capture_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """Attention function: SDPA, except for recorded single-query decode steps.

    Shapes: query (B, H, q, D), key/value (B, KVH, S, D); returns (B, q, H, D).
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    recorder = _ACTIVE_RECORDER.get()
    layer_idx = getattr(module, "layer_idx", None)
    if recorder is None or query.shape[2] != 1 or not recorder.wants(layer_idx):
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    batch, heads, _, head_dim = query.shape
    kv_heads, context = key.shape[1], key.shape[2]
    groups = heads // kv_heads
    if scaling is None:
        scaling = head_dim**-0.5
    q = query.reshape(batch, kv_heads, groups, head_dim)
    scores = torch.matmul(q, key.transpose(-1, -2)).float() * scaling  # (B, KVH, G, S)
    scores = _apply_mask(scores, attention_mask)
    probs = torch.softmax(scores, dim=-1)
    probs = recorder.record(layer_idx, probs.reshape(heads, context) if batch == 1 else probs)
    out = torch.matmul(probs.reshape(batch, kv_heads, groups, context).to(value.dtype), value)
    return out.reshape(batch, heads, 1, head_dim).transpose(1, 2), None


def register_capture_attention() -> str:
    """Register the capture attention (idempotent) and return its implementation name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(CAPTURE_ATTENTION, capture_attention_forward)
    AttentionMaskInterface.register(CAPTURE_ATTENTION, sdpa_mask)
    return CAPTURE_ATTENTION
