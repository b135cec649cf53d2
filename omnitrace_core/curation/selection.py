"""Source selection for one output span: its token traces -> a concise set of sources.

This module has one responsibility. Given, for every token of one generated span, the source
unit it was traced to, its universal POS tag and its trace confidence, it decides which source
units support the span (OmniTrace, Algorithm 1 line 19 and appendix A.1). Everything it needs
is in :class:`~omnitrace_core.config.CurationConfig`; nothing here knows about models, media or
how the traces were produced.

With ``use_run_rescue`` off this is the paper's ``curate_sources_with_conf`` (appendix A.1),
operation for operation, so it selects exactly what that code selects, in its order (a test
holds it to an independent transcription on arbitrary traces):

1. ``vote_t = pos_weight(pos_t) * max(c_t, 0) ** gamma`` (see :func:`token_votes`).
2. ``share[u]`` = the vote mass of ``u`` over the span's total vote. A total <= 0 selects nothing.
3. Run coherence (``use_run_coherence``): ``run_vote_share[u]`` is the vote mass of the heaviest
   contiguous run of tokens traced to ``u`` over the total, and the ranking score is
   ``alpha * share + (1 - alpha) * run_vote_share``; otherwise the score is ``share``.
4. Units are ranked by score, descending; equal scores keep the order in which the units first
   appear in the span (the appendix's stable sort). Walking that ranking, a unit below ``p_min``
   is skipped unless strongly run (``use_p_min``), kept units are appended, and the walk stops
   once the kept units hold ``coverage`` of the vote (``use_coverage``). The paper's code calls
   a unit strongly run when ``run_vote_share >= run_min``; as that share never exceeds the
   unit's own share, its rescue never fires while ``run_min >= p_min`` (the defaults).

Unit ``-1`` ("traced to no source") is handled as the appendix handles any id: its tokens
vote, count in the total (so a span mostly traced to nothing gets small shares), form and
break runs, and it takes its place in the ranking, where a kept ``-1`` adds its share to the
coverage walk. It names no source, so it is never returned.

The one deliberate difference, ``use_run_rescue`` (on by default): the rescue counts tokens,
implementing the stated intent. A unit is also strongly run when its longest run has at least
``run_min_tokens`` tokens and covers at least ``run_min`` of the span's tokens; a unit without
vote mass, and unit ``-1``, are never rescued this way.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, replace
from itertools import groupby
from operator import itemgetter
from typing import Sequence

from ..config import CurationConfig
from ..errors import InputError

__all__ = ["CuratedSource", "Decision", "ablation_configs", "curate", "explain", "token_votes"]

NO_SOURCE = -1
"""Unit index of a token traced to no source unit."""


@dataclass(frozen=True)
class CuratedSource:
    """One selected source unit of a span, with the numbers that got it selected.

    Attributes:
        unit: source unit index.
        share: the unit's share of the span's total vote, in [0, 1].
        run_share: tokens in the unit's longest contiguous run / tokens of the span (the
            quantity the token-count run rescue tests).
        score: the ranking score (``alpha * share + (1 - alpha) * run_vote_share`` with run
            coherence on, else ``share``).
        rescued: kept below ``p_min`` only because of a strong run.
    """

    unit: int
    share: float
    run_share: float
    score: float
    rescued: bool


@dataclass(frozen=True)
class Decision:
    """What curation decided about one unit of a span, and the numbers it decided on (see :func:`explain`).

    Attributes:
        unit: source unit index, or -1 for the tokens traced to no source.
        share, run_share, score, rescued: as in :class:`CuratedSource`.
        run_vote_share: vote mass of the unit's heaviest run / the span's total vote.
        cumulative: the kept shares up to and including this unit, in ranking order.
        outcome: ``"kept"``, ``"rescued"`` (kept below p_min for a strong run), ``"below p_min"``,
            ``"after coverage"`` (the walk stopped before reaching it) or ``"no vote"`` (the span's
            tokens carry no vote at all).
    """

    unit: int
    share: float
    run_vote_share: float
    run_share: float
    score: float
    cumulative: float
    outcome: str

    @property
    def kept(self) -> bool:
        return self.outcome in ("kept", "rescued")


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
            try:
                weight *= max(c, 0.0) ** config.gamma
            except OverflowError:
                raise InputError(
                    f"confidence {c} of token {t} raised to gamma {config.gamma} overflows"
                ) from None
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

    Returns:
        The selected units (never ``-1``), in the order the walk kept them.

    Raises:
        InputError (a ``ValueError``): the three sequences differ in length, a unit is below
            -1 or not an integer, a confidence is not finite, or the votes overflow.
    """
    return [CuratedSource(unit=d.unit, share=d.share, run_share=d.run_share, score=d.score,
                          rescued=d.outcome == "rescued")
            for d in explain(units, pos, confidence, config) if d.kept and d.unit != NO_SOURCE]


def explain(
    units: Sequence[int],
    pos: Sequence[str],
    confidence: Sequence[float],
    config: CurationConfig = CurationConfig(),
) -> list[Decision]:
    """Every unit of one span with its numbers and what curation decided about it, in ranking order.

    The same walk as :func:`curate` (which keeps the ``kept`` units other than -1), continued past
    the point where coverage stops it, so a view can show what was left out and why. Arguments and
    errors as in :func:`curate`; a span whose votes sum to 0 gives its units with outcome "no vote".
    """
    if not len(units) == len(pos) == len(confidence):
        raise InputError(
            "units, pos and confidence must have one entry per token, got lengths "
            f"{len(units)}, {len(pos)} and {len(confidence)}"
        )
    unit_seq = _check_units(units)
    votes = token_votes(pos, confidence, config)
    if not unit_seq:
        return []
    # Every sum below is taken in the appendix's order with its operations (sum(), then +=
    # token by token): float rounding, and so which scores tie, come out as there.
    total = float(sum(votes))
    if not math.isfinite(total):
        raise InputError(f"the votes of this span sum to {total}: confidences are too large for gamma "
                         f"{config.gamma}")
    if total <= 0:
        return [Decision(unit=u, share=0.0, run_vote_share=0.0, run_share=0.0, score=0.0, cumulative=0.0,
                         outcome="no vote") for u in dict.fromkeys(unit_seq)]

    # Runs are maximal groups of consecutive tokens traced to one unit (-1 included). The
    # dicts fill in order of first appearance, the order the stable ranking keeps for ties.
    mass: dict[int, float] = {}
    heaviest_run: dict[int, float] = {}  # in vote mass (the appendix's run)
    longest_run: dict[int, int] = {}  # in tokens (the run rescue's run)
    for u, group in groupby(zip(unit_seq, votes), key=itemgetter(0)):
        run_mass, run_length = 0.0, 0
        for _, v in group:
            mass[u] = mass.get(u, 0.0) + v
            run_mass += v
            run_length += 1
        heaviest_run[u] = max(heaviest_run.get(u, 0.0), run_mass)
        longest_run[u] = max(longest_run.get(u, 0), run_length)

    share = {u: m / total for u, m in mass.items()}
    run_vote_share = {u: heaviest_run[u] / total for u in mass}
    run_share = {u: longest_run[u] / len(unit_seq) for u in mass}
    if config.use_run_coherence:
        score = {u: config.alpha * share[u] + (1.0 - config.alpha) * run_vote_share[u] for u in mass}
    else:
        score = share

    def strongly_run(u: int) -> bool:
        if not config.use_run_coherence:
            return False
        if run_vote_share[u] >= config.run_min:  # the appendix's rescue
            return True
        return (
            config.use_run_rescue
            and u != NO_SOURCE
            and share[u] > 0.0
            and longest_run[u] >= config.run_min_tokens
            and run_share[u] >= config.run_min
        )

    ranking = sorted(mass, key=score.__getitem__, reverse=True)
    decisions: list[Decision] = []
    cumulative = 0.0
    stopped = False
    for u in ranking:
        below_p_min = config.use_p_min and share[u] < config.p_min
        if stopped:
            outcome = "after coverage"
        elif below_p_min and not strongly_run(u):
            outcome = "below p_min"
        else:
            outcome = "rescued" if below_p_min else "kept"
            cumulative += share[u]
            stopped = config.use_coverage and cumulative >= config.coverage
        decisions.append(Decision(unit=u, share=share[u], run_vote_share=run_vote_share[u], run_share=run_share[u],
                                  score=score[u], cumulative=cumulative, outcome=outcome))
    return decisions


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
