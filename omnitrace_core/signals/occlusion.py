"""Occlusion: what each source unit does to each generated token when it is removed (post-hoc).

For every unit u and generated token t, the drop in log p(y_t) when u is removed (teacher forcing,
:mod:`omnitrace_core.verification`; ``input`` mode by default: the content is changed and
re-encoded). Its positive part, normalised over units per token, is the token's score: a share
of the evidence, comparable with the attention signals. It costs one teacher-forced forward per
unit after generation (batched, sharing the prompt prefix), and it is the causal reference
*Compare signals* and the faithfulness evaluation set the other signals against.

A unit's score is not split further: its atoms (an image's tiles, a video bin's two tracks) each
carry the unit's score as their maximum and an equal part of it as their sum, so unit totals
equal the unit's score and tile heat maps are flat (``Tracer.verify(units="tiles")`` measures
tiles).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from .base import Signal, register_signal


def occlusion_scores(drops: np.ndarray, atom_unit: np.ndarray) -> np.ndarray:
    """(T, U) per-token drops -> (T, 2A + 1) atom sums, atom maxima and outside mass (0).

    The positive part of each token's drops, normalised to sum to 1 over units (all zero when no
    removal lowers the token), each unit's share spread over its A atoms as described above.
    """
    drops = np.asarray(drops, dtype=np.float64)
    positive = np.clip(drops, 0.0, None)
    total = positive.sum(axis=1, keepdims=True)
    share = np.divide(positive, total, out=np.zeros_like(positive), where=total > 0)
    atoms = np.bincount(atom_unit, minlength=drops.shape[1]).astype(np.float64)
    atom_max = share[:, atom_unit]
    atom_sum = atom_max / atoms[atom_unit]
    return np.concatenate([atom_sum, atom_max, np.zeros((len(drops), 1))], axis=1)


@register_signal
class Occlusion(Signal):
    """Drop in log p(y_t) when each source unit is removed, positive part, normalised per token.

    Args:
        mode: the removal mode, "input" (default) or "knockout" (see
            :mod:`omnitrace_core.verification.ablation`).
    """

    name = "occlusion"
    description = "drop in log p(y_t) when each source unit is removed, positive part (post-hoc)"
    post_hoc = True

    def __init__(self, mode: str = "input") -> None:
        from ..verification import MODES

        if mode not in MODES:
            raise ValueError(f"unknown occlusion mode {mode!r}; modes: {', '.join(MODES)}")
        self.mode = mode

    def layers(self, num_layers: int) -> tuple[int, ...]:
        return ()

    def score(self, rows: Sequence[torch.Tensor], grads=None) -> torch.Tensor:
        raise RuntimeError("occlusion is post-hoc: the engine calls score_output once the output is complete")

    def score_output(self, backend: Any, items: Sequence[Any], prepared: Any, sources: Any,
                     generated: Sequence[int], source_config: Any, system_prompt: str | None) -> np.ndarray:
        from ..verification import Verifier

        verifier = Verifier(backend, items, prepared, sources, generated, [(0, len(generated))], mode=self.mode,
                            source_config=source_config, system_prompt=system_prompt)
        drops = verifier.token_drops(range(len(sources.units)))
        return occlusion_scores(drops, sources.atom_unit)
