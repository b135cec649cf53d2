"""Attention x gradient (attgrads): how much each position's attention raises log p(y_t)."""

from __future__ import annotations

from typing import Sequence

import torch

from .base import Signal, register_signal


@register_signal
class AttGrads(Signal):
    """Last-layer attention times its gradient of log p(y_t), summed over heads, clamped at 0.

    The positive part is normalised to sum to 1 over the context, so confidences are shares of
    the positive evidence and comparable with the attention signals. With layers selected
    (``attgrads[layers=-4:]``) the products are summed over the selected layers before clamping.
    """

    name = "attgrads"
    description = "last-layer attention x d log p(y_t)/dA, positive part"
    needs_gradients = True
    selectable = ("layers", "heads")

    def layers(self, num_layers: int) -> tuple[int, ...]:
        return (num_layers - 1,)

    def score(self, rows: Sequence[torch.Tensor], grads: Sequence[torch.Tensor] | None) -> torch.Tensor:
        if grads is None:
            raise ValueError("attgrads needs the gradients of the captured rows")
        contribution = sum((row.detach() * grad).sum(dim=0) for row, grad in zip(rows, grads)).clamp_min(0.0)
        total = contribution.sum()
        return contribution / total if total > 0 else contribution
