"""Span-level source curation: the token traces of one output span -> a concise set of sources.

This module has one responsibility. Given, for every token of one generated span, the source
unit it was traced to, its universal POS tag and its trace confidence, it decides which source
units support the span (OmniTrace, Algorithm 1 line 19 and appendix A.1). Everything it needs
is in :class:`~omnitrace_core.config.CurationConfig`; nothing here knows about models, media or
how the traces were produced.

The procedure, for the tokens traced to some unit (unit ``-1``, "traced to no source", is
ignored entirely: it casts no vote, is not counted and breaks runs):

1. ``vote_t = pos_weight(pos_t) * max(c_t, 0) ** gamma`` (see :func:`token_votes`).
2. ``share[u]`` = the vote mass of ``u`` over the span's total vote. A total <= 0 selects nothing.
3. Run coherence (``use_run_coherence``): ``run_vote_share[u]`` is the vote mass of the heaviest
   contiguous run of tokens traced to ``u`` over the total, and the ranking score is
   ``alpha * share + (1 - alpha) * run_vote_share``; otherwise the score is ``share``.
   The run *rescue* counts tokens, not votes: ``u`` is "strongly run" when its longest run
   has at least ``run_min_tokens`` tokens and covers at least ``run_min`` of the counted tokens.
   (The paper's code measures that run in vote mass, which can never exceed ``share``, so
   with ``run_min >= p_min`` its rescue never fires.)
4. Units are ranked by score, descending, ties going to the lower unit index. Walking that
   ranking, a unit below ``p_min`` is skipped unless strongly run (``use_p_min``), kept units
   are appended, and the walk stops once the kept units hold ``coverage`` of the vote
   (``use_coverage``). A unit with no vote mass at all is never selected.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, replace
from itertools import groupby
from operator import itemgetter
from typing import Sequence

from .config import CurationConfig
from .errors import InputError

__all__ = ["CuratedSource", "ablation_configs", "curate", "token_votes"]

NO_SOURCE = -1
"""Unit index of a token traced to no source unit."""

# Cumulative shares are sums of floats; a coverage met "exactly" by construction must not be
# missed by one rounding step.
_COVERAGE_TOL = 1e-9


@dataclass(frozen=True)
class CuratedSource:
    """One selected source unit of a span, with the numbers that got it selected.

    Attributes:
        unit: source unit index.
        share: the unit's share of the span's total vote, in [0, 1].
        run_share: tokens in the unit's longest contiguous run / tokens of the span traced to
            any unit (the quantity the run rescue tests).
        score: the ranking score (``alpha * share + (1 - alpha) * run_vote_share`` with run
            coherence on, else ``share``).
        rescued: kept below ``p_min`` only because of a strong run.
    """

    unit: int
    share: float
    run_share: float
    score: float
    rescued: bool


def token_votes(
    pos: Sequence[str], confidence: Sequence[float], config: CurationConfig
) -> list[float]:
    """Vote of every token: ``pos_weight(pos_t) * max(c_t, 0) ** gamma``.

    The POS factor is 1 when ``config.use_pos_weights`` is off (see
    :meth:`CurationConfig.pos_weight`) and the confidence factor is 1 when
    ``config.use_confidence`` is off. Raises :class:`InputError` (a ``ValueError``) when the
    two sequences differ in length or a confidence is not a finite number.
    """
    if len(pos) != len(confidence):
        raise InputError(
            f"pos and confidence must have one entry per token, got {len(pos)} POS tags "
            f"and {len(confidence)} confidences"
        )
    votes: list[float] = []
    for t, (tag, conf) in enumerate(zip(pos, confidence)):
        c = float(conf)
        if not math.isfinite(c):
            raise InputError(f"confidence of token {t} must be a finite number, got {conf!r}")
        weight = config.pos_weight(tag)
        if config.use_confidence:
            weight *= max(c, 0.0) ** config.gamma
        votes.append(weight)
    return votes


def _check_units(units: Sequence[int]) -> list[int]:
    checked: list[int] = []
    for t, u in enumerate(units):
        try:
            idx = operator.index(u)
        except TypeError:
            raise InputError(
                f"units[{t}] must be an integer unit index, got {u!r}"
            ) from None
        if idx < NO_SOURCE:
            raise InputError(
                f"units[{t}] = {idx} is not a unit index (use -1 for a token traced to no source)"
            )
        checked.append(idx)
    return checked


def curate(
    units: Sequence[int],
    pos: Sequence[str],
    confidence: Sequence[float],
    config: CurationConfig = CurationConfig(),
) -> list[CuratedSource]:
    """Select the source units that support one span, in ranking order.

    Args:
        units: per token, the source unit it was traced to, or -1 for none.
        pos: per token, its universal POS tag.
        confidence: per token, the confidence of its trace.
        config: the curation settings.

    Raises:
        InputError (a ``ValueError``): the three sequences differ in length, a unit is below
            -1 or not an integer, or a confidence is not finite.
    """
    if not len(units) == len(pos) == len(confidence):
        raise InputError(
            "units, pos and confidence must have one entry per token, got lengths "
            f"{len(units)}, {len(pos)} and {len(confidence)}"
        )
    unit_seq = _check_units(units)
    votes = token_votes(pos, confidence, config)

    # Per-unit vote lists and runs (maximal groups of consecutive tokens traced to one unit);
    # -1 tokens take no part, so they also separate runs.
    unit_votes: dict[int, list[float]] = {}
    run_tokens: dict[int, int] = {}  # longest run, in tokens
    run_votes: dict[int, float] = {}  # heaviest run, in vote mass
    counted = 0
    for u, group in groupby(zip(unit_seq, votes), key=itemgetter(0)):
        if u == NO_SOURCE:
            continue
        run = [v for _, v in group]
        counted += len(run)
        unit_votes.setdefault(u, []).extend(run)
        run_tokens[u] = max(run_tokens.get(u, 0), len(run))
        run_votes[u] = max(run_votes.get(u, 0.0), math.fsum(run))

    # fsum makes equal multisets of votes give bit-identical masses, so ties stay ties.
    total = math.fsum(v for vs in unit_votes.values() for v in vs)
    if counted == 0 or total <= 0:
        return []

    share = {u: math.fsum(vs) / total for u, vs in unit_votes.items()}
    run_share = {u: run_tokens[u] / counted for u in unit_votes}
    if config.use_run_coherence:
        score = {
            u: config.alpha * share[u] + (1.0 - config.alpha) * (run_votes[u] / total)
            for u in unit_votes
        }
    else:
        score = dict(share)

    def strongly_run(u: int) -> bool:
        return (
            config.use_run_coherence
            and run_tokens[u] >= config.run_min_tokens
            and run_share[u] >= config.run_min
        )

    ranking = sorted(unit_votes, key=lambda u: (-score[u], u))
    selected: list[CuratedSource] = []
    cumulative = 0.0
    for u in ranking:
        if share[u] <= 0.0:
            continue  # no evidence at all; a run of zero-vote tokens rescues nothing
        rescued = False
        if config.use_p_min and share[u] < config.p_min:
            if not strongly_run(u):
                continue
            rescued = True
        selected.append(
            CuratedSource(
                unit=u, share=share[u], run_share=run_share[u], score=score[u], rescued=rescued
            )
        )
        cumulative += share[u]
        if config.use_coverage and cumulative >= config.coverage - _COVERAGE_TOL:
            break
    return selected


def ablation_configs(base: CurationConfig = CurationConfig()) -> dict[str, CurationConfig]:
    """The paper's Table 3 ablations of ``base``: each switches one component off.

    Keys: ``"full"`` (``base`` itself), ``"no_pos_weights"``, ``"no_confidence"``,
    ``"no_run_coherence"``, ``"no_p_min"`` and, beyond the paper, ``"no_coverage"``.
    """
    return {
        "full": base,
        "no_pos_weights": replace(base, use_pos_weights=False),
        "no_confidence": replace(base, use_confidence=False),
        "no_run_coherence": replace(base, use_run_coherence=False),
        "no_p_min": replace(base, use_p_min=False),
        "no_coverage": replace(base, use_coverage=False),
    }
