"""Attention-based signals: mean over all layers and heads (attmean), last layer (attraw)."""

from __future__ import annotations

from typing import Sequence

import torch

from .base import Signal, register_signal


@register_signal
class AttMean(Signal):
    """Attention of the decoding query, averaged over every layer and head."""

    name = "attmean"
    description = "mean attention over all layers and heads"
    selectable = ("layers", "heads")

    def layers(self, num_layers: int) -> tuple[int, ...]:
        return tuple(range(num_layers))

    def score(self, rows: Sequence[torch.Tensor], grads=None) -> torch.Tensor:
        return torch.stack([row.mean(dim=0) for row in rows]).mean(dim=0)


@register_signal
class AttRaw(Signal):
    """Attention of the decoding query in the last layer, averaged over heads."""

    name = "attraw"
    description = "last-layer attention, mean over heads"
    selectable = ("heads",)

    def layers(self, num_layers: int) -> tuple[int, ...]:
        return (num_layers - 1,)

    def score(self, rows: Sequence[torch.Tensor], grads=None) -> torch.Tensor:
        return rows[-1].mean(dim=0)
