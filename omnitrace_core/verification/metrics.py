"""Faithfulness arithmetic on log-probability tables (pure: numbers in, numbers out).

Definitions, per output sentence s with curated units C and a scope P of units (every unit, or
the units of one modality), where drop(R) is the sentence's log-probability as generated minus
its log-probability with the units R removed (drop(empty set) = 0):

- comprehensiveness(P) = drop(C & P): what the citation holds (ERASER, DeYoung et al. 2020);
- sufficiency(P) = drop(P - C): what is lost when only the citation is kept (lower is better);
- top-k drop(P) = drop(the k units of P the method ranks highest, with a positive score)
  (ContextCite's top-k log-probability drop);
- a sentence *changes* under a removal when, given the output before it, some token of the
  sentence is no longer the model's greedy choice: greedy decoding would not write it again.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..sources import SourceUnit
from .records import ALL, SentenceCheck

Spans = Sequence[tuple[int, int]]  # token ranges [start, end) of the output sentences


def sentence_sums(token_values: np.ndarray, spans: Spans) -> np.ndarray:
    """Sum (..., T) per-token values over each sentence's tokens: (..., S)."""
    values = np.asarray(token_values, dtype=np.float64)
    return np.stack([values[..., a:b].sum(axis=-1) for a, b in spans], axis=-1) if len(spans) else \
        np.zeros(values.shape[:-1] + (0,))


def sentence_changed(choice: np.ndarray, base_choice: np.ndarray, spans: Spans) -> np.ndarray:
    """(..., T) greedy choices under a removal vs (T,) unablated ones -> (..., S) whether each sentence changes."""
    differs = np.asarray(choice) != np.asarray(base_choice)
    return np.stack([differs[..., a:b].any(axis=-1) for a, b in spans], axis=-1) if len(spans) else \
        np.zeros(differs.shape[:-1] + (0,), dtype=bool)


def scopes(units: Sequence[SourceUnit]) -> dict[str, tuple[int, ...]]:
    """``"all"`` -> every unit; each modality present -> its units (in unit order)."""
    out: dict[str, tuple[int, ...]] = {ALL: tuple(u.index for u in units)}
    for unit in units:
        out[unit.modality] = out.get(unit.modality, ()) + (unit.index,)
    return out


def top_ranked(ranking: Mapping[int, float], pool: Sequence[int], k: int) -> tuple[int, ...]:
    """The at most ``k`` units of ``pool`` with the highest positive scores (ties: the lower index first)."""
    scored = [(-float(ranking.get(u, 0.0)), u) for u in pool if float(ranking.get(u, 0.0)) > 0]
    return tuple(u for _, u in sorted(scored)[:k])


def check_sets(curated: Sequence[int] | None, pools: Mapping[str, Sequence[int]],
               ranking: Mapping[int, float] | None, ks: Sequence[int]) -> dict[tuple, frozenset[int]]:
    """The unit sets a sentence's checks remove: keys ("comprehensiveness", scope), ("sufficiency", scope)
    (only with a curated set) and ("top_k", scope, k) (only with a ranking)."""
    out: dict[tuple, frozenset[int]] = {}
    for scope, pool in pools.items():
        if curated is not None:
            cited = set(curated)
            out[("comprehensiveness", scope)] = frozenset(u for u in pool if u in cited)
            out[("sufficiency", scope)] = frozenset(u for u in pool if u not in cited)
        if ranking is not None:
            for k in ks:
                out[("top_k", scope, k)] = frozenset(top_ranked(ranking, pool, k))
    return out


def sentence_check(sentence: int, curated: Sequence[int] | None, sets: Mapping[tuple, frozenset[int]],
                   drop: Mapping[frozenset[int], float]) -> SentenceCheck:
    """The :class:`SentenceCheck` of one sentence from ``drop``: removed unit set -> drop of this sentence.

    The empty set needs no entry (its drop is 0).
    """
    def value(units: frozenset[int]) -> float:
        return 0.0 if not units else float(drop[units])

    comprehensiveness, sufficiency, top_k = {}, {}, {}
    for key, units in sets.items():
        if key[0] == "comprehensiveness":
            comprehensiveness[key[1]] = value(units)
        elif key[0] == "sufficiency":
            sufficiency[key[1]] = value(units)
        else:
            top_k.setdefault(key[1], {})[key[2]] = value(units)
    return SentenceCheck(sentence=sentence, curated=tuple(sorted(set(curated or ()))),
                         comprehensiveness=comprehensiveness, sufficiency=sufficiency, top_k=top_k)


def rank_average(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``values``, ties sharing their mean rank."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rank correlation (ties averaged); None with fewer than 2 values or a constant side."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return None
    return float(np.corrcoef(rank_average(a), rank_average(b))[0, 1])
