"""Output sentences with curated, described sources: a trace's arrays in, spans out (pure).

The engine calls :func:`curate_spans` once to build a result, ``TraceResult.recurate`` calls it
again under other settings, and :func:`span_shares` shows what lies behind one span's curated
list. Everything they read of a trace is a :class:`TokenScores` (per-token scores over the
source atoms, POS tags, image grids): nothing here knows the result type, a model or media.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from ..config import CurationConfig
from ..sources import SourceSet
from .selection import Decision, curate, explain, token_votes
from .token_rules import get_token_rule


@dataclass(frozen=True)
class SpanSource:
    """A curated source of a span.

    ``share`` is the source's share of the span's vote. Text sources carry character offsets in
    their item; image sources carry ``tile_scores`` (row-major, max 1) over ``grid``; audio and
    video sources carry times in seconds (and ``text``, the words said, when the unit is a speech
    segment); video sources carry ``tracks`` (visual/audio shares).
    """

    unit: int
    modality: str
    item: int
    label: str
    share: float
    rescued: bool = False
    char_start: int | None = None
    char_end: int | None = None
    time_start: float | None = None
    time_end: float | None = None
    text: str | None = None
    grid: tuple[int, int] | None = None
    tile_scores: tuple[float, ...] | None = None
    tracks: Mapping[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if v is not None}
        if self.grid is not None:
            out["grid"] = list(self.grid)
        if self.tile_scores is not None:
            out["tile_scores"] = list(self.tile_scores)
        if self.tracks is not None:
            out["tracks"] = dict(self.tracks)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SpanSource":
        data = dict(data)
        if data.get("grid") is not None:
            data["grid"] = tuple(data["grid"])
        if data.get("tile_scores") is not None:
            data["tile_scores"] = tuple(data["tile_scores"])
        return cls(**data)


@dataclass(frozen=True)
class Span:
    """An output sentence, its token range and its curated sources.

    ``confidence`` is the vote-weighted mean trace confidence of its tokens (0 when nothing
    votes); a span with no sources has no strong support.
    """

    index: int
    text: str
    char_start: int
    char_end: int
    token_start: int
    token_end: int
    sources: tuple[SpanSource, ...]
    confidence: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["sources"] = [s.to_dict() for s in self.sources]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Span":
        data = dict(data)
        data["sources"] = tuple(SpanSource.from_dict(s) for s in data["sources"])
        return cls(**data)


@dataclass(frozen=True, eq=False)
class TokenScores:
    """What curation reads of a trace: every generated token's signal mass on the source atoms.

    Attributes:
        sources: the source units and their atoms (A atoms, U units).
        atom_sum, atom_max: (T, A) per generated token, the summed / maximal score of the input
            positions in each atom.
        pos: (T,) each generated token's universal POS tag.
        grids: item index -> (rows, cols) tile grid, for every image item.
    """

    sources: SourceSet
    atom_sum: np.ndarray
    atom_max: np.ndarray
    pos: Sequence[str]
    grids: Mapping[int, tuple[int, int]]

    def unit_scores(self) -> tuple[np.ndarray, np.ndarray]:
        """(unit_sum, unit_max), each (T, U)."""
        return self.sources.unit_totals(self.atom_sum), self.sources.unit_maxima(self.atom_max)

    def token_trace(self, rule: str) -> tuple[np.ndarray, np.ndarray]:
        """(unit (T,) with -1 for none, confidence (T,)) of every token under a token rule."""
        unit_sum, unit_max = self.unit_scores()
        return get_token_rule(rule)(unit_sum, unit_max)


def _describe(scores: TokenScores, unit: int, share: float, rescued: bool, tokens: np.ndarray,
              weights: np.ndarray) -> SpanSource:
    """A SpanSource, with tile scores / track shares from the tokens traced to ``unit``."""
    sources = scores.sources
    u = sources.units[unit]
    src = dict(unit=unit, modality=u.modality, item=u.item, label=u.label, share=float(share), rescued=rescued,
               char_start=u.char_start, char_end=u.char_end, time_start=u.time_start, time_end=u.time_end,
               text=u.text if u.modality in ("audio", "video") else None)
    atoms = np.flatnonzero(sources.atom_unit == unit)
    evidence = ((weights[:, None] * scores.atom_sum[np.ix_(tokens, atoms)]).sum(axis=0) if len(tokens)
                else np.zeros(len(atoms)))
    if u.modality == "image":
        grid = scores.grids[u.item]
        tiles = np.zeros(grid[0] * grid[1])
        tiles[sources.atom_tile[atoms]] = evidence
        peak = tiles.max()
        src["grid"] = tuple(grid)
        src["tile_scores"] = tuple(np.round(tiles / peak if peak > 0 else tiles, 4).tolist())
    elif u.modality == "video":
        kinds = [sources.atom_kind[a] for a in atoms]
        total = evidence.sum()
        src["tracks"] = {kind: round(float(evidence[kinds.index(kind)] / total), 4) if total > 0 else 0.0
                         for kind in ("visual", "audio") if kind in kinds}
    return SpanSource(**src)


def curate_spans(spans: Sequence[Span], scores: TokenScores, config: CurationConfig) -> tuple[Span, ...]:
    """Curate the sources of each span under ``config``.

    Args:
        spans: the output sentences (their text and token ranges are kept; sources replaced).
        scores: the trace's per-token scores and POS tags.
        config: curation settings, including the token rule.
    """
    units, confidence = scores.token_trace(config.token_rule)
    out = []
    for span in spans:
        lo, hi = span.token_start, span.token_end
        span_units, span_pos, span_conf = units[lo:hi].tolist(), list(scores.pos[lo:hi]), confidence[lo:hi].tolist()
        votes = np.asarray(token_votes(span_pos, span_conf, config))
        counted = units[lo:hi] >= 0
        weight_total = votes[counted].sum()
        mean_conf = float((votes * confidence[lo:hi])[counted].sum() / weight_total) if weight_total > 0 else 0.0
        sources = []
        for chosen in curate(span_units, span_pos, span_conf, config):
            mask = units[lo:hi] == chosen.unit
            tokens = np.arange(lo, hi)[mask]
            # A unit without vote mass is selected where the appendix selects it (p_min off):
            # describe it by its tokens' unweighted evidence rather than by nothing.
            weights = votes[mask] if votes[mask].sum() > 0 else np.ones(len(tokens))
            sources.append(_describe(scores, chosen.unit, chosen.share, chosen.rescued, tokens, weights))
        out.append(Span(index=span.index, text=span.text, char_start=span.char_start, char_end=span.char_end,
                        token_start=lo, token_end=hi, sources=tuple(sources), confidence=round(mean_conf, 6)))
    return tuple(out)


@dataclass(frozen=True)
class SpanShares:
    """Behind one span's curated list: every unit's share before curation, and the thresholds curation applied.

    Attributes:
        span: the span's index.
        decisions: curation's view (:func:`omnitrace_core.curation.explain`): every unit some token of
            the span was traced to (-1: no source), with its vote share, ranking score, cumulative
            kept share and outcome, in ranking order.
        mass: (U,) every unit's share of the span's attention mass on source units (the tokens' unit
            masses summed, then normalised): units no token was traced to have a share here too.
        p_min, coverage: the thresholds (None where the curation switches them off).
        run_min: the run share above which a unit below p_min is rescued (None without run coherence).
        curation: the settings explained.
    """

    span: int
    decisions: tuple[Decision, ...]
    mass: np.ndarray
    p_min: float | None
    coverage: float | None
    run_min: float | None
    curation: CurationConfig


def span_shares(span: Span, scores: TokenScores, config: CurationConfig) -> SpanShares:
    """Every unit's share of one output span before curation, with the curation thresholds (pure).

    Args:
        span: the output span.
        scores: the trace's per-token scores and POS tags.
        config: the curation settings explained.
    """
    lo, hi = span.token_start, span.token_end
    units, confidence = scores.token_trace(config.token_rule)
    decisions = explain(units[lo:hi].tolist(), list(scores.pos[lo:hi]), confidence[lo:hi].tolist(), config)
    totals = scores.sources.unit_totals(scores.atom_sum[lo:hi]).sum(axis=0)
    whole = totals.sum()
    mass = totals / whole if whole > 0 else np.zeros_like(totals)
    return SpanShares(span=span.index, decisions=tuple(decisions), mass=mass,
                      p_min=config.p_min if config.use_p_min else None,
                      coverage=config.coverage if config.use_coverage else None,
                      run_min=config.run_min if config.use_run_coherence else None, curation=config)
