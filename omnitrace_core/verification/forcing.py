"""Teacher forcing: the log-probability of every generated token under many ablated inputs, cheaply.

The generated tokens are fed back after the prompt and the decoder scores each of them (one
forward over prompt + output; ``L x vocab`` logits are never formed, only the ``T`` rows that
predict generated tokens go through the LM head). An ablated input differs from the original only
from some position on (the first position whose embedding, position id or readable keys differ):
the unablated forward's KV cache of everything before that position is reused, and ablations are
batched, each batch starting at the earliest first change of its members. Blocked positions
(knockout, dropped text) become a boolean attention mask; a query may always read itself, so no
row of the mask is empty.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

logger = logging.getLogger(__name__)


class Stopped(Exception):
    """A verification's stop event was set; what was scored so far is kept."""


@dataclass
class Cost:
    """What a verification ran: teacher-forced sequences, decoder calls, media re-encodings, seconds."""

    forwards: int = 0
    batches: int = 0
    encodes: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return {"forwards": self.forwards, "batches": self.batches, "encodes": self.encodes,
                "seconds": self.seconds}


@dataclass(frozen=True)
class Scored:
    """One teacher-forced sequence: per generated token, its log-probability and the model's greedy choice."""

    logp: np.ndarray  # (T,) float64
    choice: np.ndarray  # (T,) int64


@dataclass
class Variant:
    """An ablated input as the decoder sees it.

    Attributes:
        embeds: (1, N, hidden) decoder inputs, or None for the unablated ones.
        positions: (..., 1, N) position ids, or None for the unablated ones.
        blocked: prompt positions no query may read.
    """

    embeds: torch.Tensor | None = None
    positions: torch.Tensor | None = None
    blocked: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def _first_difference(a: torch.Tensor, b: torch.Tensor) -> int | None:
    """First index along the last-but-one (sequence) axis where (..., N, D) tensors differ, or None."""
    differs = (a != b).reshape(-1, a.shape[-2], a.shape[-1]).any(dim=-1).any(dim=0)
    hits = torch.nonzero(differs)
    return int(hits[0, 0]) if len(hits) else None


class TeacherForcer:
    """Scores the generated tokens of one output under the unablated input and under variants.

    Args:
        backend: a backend with ``lm_forward``, ``lm_logits`` and ``new_cache``.
        embeds, positions: the unablated decoder inputs (``backend.lm_inputs``): (1, N, hidden), (..., 1, N).
        prompt_length: L; row L - 1 + t predicts generated token t.
        generated: the T generated token ids (N = L + T - 1).
        batch_size: most variants per decoder call.
        max_batch_tokens: most (variants x recomputed positions) per decoder call.
    """

    def __init__(self, backend: Any, embeds: torch.Tensor, positions: torch.Tensor, prompt_length: int,
                 generated: Sequence[int], batch_size: int = 8, max_batch_tokens: int = 32768) -> None:
        self.backend = backend
        self.embeds = embeds
        self.positions = positions
        self.prompt_length = prompt_length
        self.length = embeds.shape[1]
        self.targets = torch.as_tensor(list(generated), dtype=torch.long, device=embeds.device)
        if self.length != prompt_length + len(self.targets) - 1:
            raise ValueError(f"decoder inputs of {self.length} positions do not hold a prompt of {prompt_length} and "
                             f"{len(self.targets)} generated tokens")
        self.batch_size = max(1, int(batch_size))
        self.max_batch_tokens = max(1, int(max_batch_tokens))
        self.cost = Cost()
        started = time.perf_counter()
        self.cache = backend.new_cache()
        hidden = backend.lm_forward(embeds, positions, None, self.cache)
        self.base = self._score_rows(hidden[0, prompt_length - 1:])
        self.cost.forwards += 1
        self.cost.batches += 1
        self.cost.seconds += time.perf_counter() - started
        # a prefix is reused only from plain key/value layers (not sliding windows, not recurrent states)
        self.reuse = all(type(layer).__name__ == "DynamicLayer" for layer in getattr(self.cache, "layers", [None]))

    def start(self, variant: Variant) -> int:
        """First position where the variant differs from the unablated input (N when it does not)."""
        starts = [self.length]
        if len(variant.blocked):
            starts.append(int(np.min(variant.blocked)))
        if variant.embeds is not None:
            at = _first_difference(variant.embeds, self.embeds)
            starts.append(self.length if at is None else at)
        if variant.positions is not None:
            at = _first_difference(variant.positions[..., None], self.positions[..., None])
            starts.append(self.length if at is None else at)
        return min(starts)

    def run(self, variants: Sequence[Variant], should_stop: Callable[[], bool] | None = None,
            on_batch: Callable[[int], None] | None = None) -> list[Scored]:
        """Score every variant, in batches; ``on_batch(n)`` after each batch of n; raises :class:`Stopped`."""
        starts = [self.start(v) for v in variants]
        out: list[Scored | None] = [None] * len(variants)
        pending = []
        for k, at in enumerate(starts):
            if at >= self.length:  # nothing changed: the unablated scores
                out[k] = self.base
            else:
                pending.append(k)
        batch: list[int] = []
        for k in pending:
            head = min(starts[j] for j in batch + [k]) if self.reuse else 0
            too_many = (len(batch) + 1) * (self.length - head) > self.max_batch_tokens
            if batch and (len(batch) == self.batch_size or too_many):
                self._flush(batch, variants, starts, out, should_stop, on_batch)
                batch = []
            batch.append(k)
        if batch:
            self._flush(batch, variants, starts, out, should_stop, on_batch)
        return out  # type: ignore[return-value]

    def _flush(self, batch: list[int], variants: Sequence[Variant], starts: Sequence[int], out: list,
               should_stop: Callable[[], bool] | None, on_batch: Callable[[int], None] | None) -> None:
        if should_stop is not None and should_stop():
            raise Stopped
        started = time.perf_counter()
        head = min(self.prompt_length - 1, min(starts[k] for k in batch)) if self.reuse else 0
        members = [variants[k] for k in batch]
        embeds = torch.cat([(v.embeds if v.embeds is not None else self.embeds)[:, head:] for v in members])
        positions = torch.cat([(v.positions if v.positions is not None else self.positions)[..., head:]
                               for v in members], dim=-2)
        mask = self._mask(members, head) if any(len(v.blocked) for v in members) else None
        hidden = self.backend.lm_forward(embeds, positions, mask, self._prefix(head, len(members)))
        for row, k in enumerate(batch):
            out[k] = self._score_rows(hidden[row, self.prompt_length - 1 - head:])
        self.cost.forwards += len(batch)
        self.cost.batches += 1
        self.cost.seconds += time.perf_counter() - started
        if on_batch is not None:
            on_batch(len(batch))

    def _mask(self, members: Sequence[Variant], head: int) -> torch.Tensor:
        """(B, 1, N - head, N) boolean: causal, minus each member's blocked keys; the diagonal always open."""
        device = self.embeds.device
        queries = torch.arange(head, self.length, device=device)[:, None]
        keys = torch.arange(self.length, device=device)[None, :]
        causal = keys <= queries
        rows = []
        for v in members:
            readable = torch.ones(self.length, dtype=torch.bool, device=device)
            readable[torch.as_tensor(v.blocked, dtype=torch.long, device=device)] = False
            rows.append(causal & (readable[None, :] | (keys == queries)))
        return torch.stack(rows)[:, None]

    def _prefix(self, head: int, count: int) -> Any:
        """A cache holding the unablated keys and values of positions [0, head), repeated ``count`` times."""
        cache = self.backend.new_cache()
        if head > 0:
            for index, layer in enumerate(self.cache.layers):
                size = (count, -1, -1, -1)
                cache.update(layer.keys[:, :, :head].expand(*size), layer.values[:, :, :head].expand(*size), index)
        return cache

    def _score_rows(self, hidden: torch.Tensor) -> Scored:
        """Log-probabilities and greedy choices of the generated tokens from their (T, hidden) predicting rows."""
        logp = torch.log_softmax(self.backend.lm_logits(hidden).float(), dim=-1)
        picked = logp.gather(-1, self.targets[:, None])[:, 0]
        return Scored(picked.double().cpu().numpy(), logp.argmax(dim=-1).cpu().numpy())
