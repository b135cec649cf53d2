"""A decode step's scores over the context, reduced to the source set's atoms and units on the model's device.

Only the reductions cross to the host: per atom the summed and the largest score and the mass
outside every source (:class:`AtomReducer`); per layer and head the mass on each unit
(:class:`HeadReducer`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .builder import SourceSet


class AtomReducer:
    """Reduce a step's scores over the context to per-atom sums and maxima, on device."""

    def __init__(self, sources: SourceSet, prompt_length: int, device: torch.device) -> None:
        self.atoms = sources.num_atoms
        index = torch.as_tensor(sources.position_atom, dtype=torch.long)
        self.index = torch.where(index < 0, torch.full_like(index, self.atoms), index).to(device)
        self.length = prompt_length
        self.device = device

    def __call__(self, scores: torch.Tensor) -> np.ndarray:
        """scores (context,) -> host array [atom_sum (A), atom_max (A), outside (1)]."""
        scores = scores.to(self.device, torch.float32)
        prompt = scores[: self.length]
        sums = torch.zeros(self.atoms + 1, device=self.device).index_add_(0, self.index, prompt)
        maxima = torch.zeros(self.atoms + 1, device=self.device).scatter_reduce_(
            0, self.index, prompt, reduce="amax", include_self=True)
        outside = scores.sum() - sums[: self.atoms].sum()
        return torch.cat([sums[: self.atoms], maxima[: self.atoms], outside[None]]).cpu().numpy()


class HeadReducer:
    """Reduce a step's attention rows to each layer's and head's mass on each source unit, on device."""

    def __init__(self, sources: SourceSet, prompt_length: int, device: torch.device, layers: Sequence[int]) -> None:
        self.units = len(sources.units)
        position_atom = np.asarray(sources.position_atom)
        unit = np.where(position_atom >= 0, np.asarray(sources.atom_unit)[np.maximum(position_atom, 0)], self.units)
        self.index = torch.as_tensor(unit, dtype=torch.long, device=device)
        self.length = prompt_length
        self.device = device
        self.layers = tuple(layers)

    def __call__(self, rows: Sequence[torch.Tensor]) -> np.ndarray:
        """rows: per layer (heads, context) -> (layers, heads, U) float32 on the host."""
        out = torch.zeros(len(rows), rows[0].shape[0], self.units + 1, device=self.device)
        for k, row in enumerate(rows):
            out[k].index_add_(1, self.index, row.detach()[:, : self.length].to(self.device, torch.float32))
        return out[:, :, : self.units].cpu().numpy()
