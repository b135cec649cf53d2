"""Per-token traces + output sentences -> spans with curated, described sources (and what lies behind them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .config import CurationConfig
from .curation import Decision, curate, explain, token_votes
from .result import Span, SpanSource

if TYPE_CHECKING:
    from .result import TraceResult


def _describe(result: "TraceResult", unit: int, share: float, rescued: bool,
              tokens: np.ndarray, weights: np.ndarray) -> SpanSource:
    """Build a SpanSource, with tile scores / track shares from the tokens traced to ``unit``."""
    u = result.units[unit]
    src = dict(unit=unit, modality=u.modality, item=u.item, label=u.label, share=float(share), rescued=rescued,
               char_start=u.char_start, char_end=u.char_end, time_start=u.time_start, time_end=u.time_end,
               text=u.text if u.modality in ("audio", "video") else None)
    atoms = np.flatnonzero(result.sources.atom_unit == unit)
    evidence = (weights[:, None] * result.atom_sum[np.ix_(tokens, atoms)]).sum(axis=0) if len(tokens) else np.zeros(len(atoms))
    if u.modality == "image":
        grid = result.items[u.item].grid
        tiles = np.zeros(grid[0] * grid[1])
        tiles[result.sources.atom_tile[atoms]] = evidence
        peak = tiles.max()
        src["grid"] = tuple(grid)
        src["tile_scores"] = tuple(np.round(tiles / peak if peak > 0 else tiles, 4).tolist())
    elif u.modality == "video":
        kinds = [result.sources.atom_kind[a] for a in atoms]
        total = evidence.sum()
        src["tracks"] = {kind: round(float(evidence[kinds.index(kind)] / total), 4) if total > 0 else 0.0
                         for kind in ("visual", "audio") if kind in kinds}
    return SpanSource(**src)


def curate_spans(spans: Sequence[Span], result: "TraceResult", config: CurationConfig) -> tuple[Span, ...]:
    """Curate the sources of each span of ``result`` under ``config``.

    Args:
        spans: the output sentences (their text and token ranges are kept; sources replaced).
        result: the trace holding per-token scores and POS tags.
        config: curation settings, including the token rule.
    """
    units, confidence = result.token_trace(config.token_rule)
    pos = [t.pos for t in result.tokens]
    out = []
    for span in spans:
        lo, hi = span.token_start, span.token_end
        span_units, span_pos, span_conf = units[lo:hi].tolist(), pos[lo:hi], confidence[lo:hi].tolist()
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
            sources.append(_describe(result, chosen.unit, chosen.share, chosen.rescued, tokens, weights))
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


def span_shares(result: "TraceResult", span: int, curation: CurationConfig | None = None) -> SpanShares:
    """Every unit's share of one output span before curation, with the curation thresholds (pure).

    Args:
        result: the trace.
        span: the span's index in ``result.spans``.
        curation: settings to explain (default: the result's own, which made its curated lists).

    Raises:
        IndexError: no such span.
    """
    if not 0 <= span < len(result.spans):
        raise IndexError(f"span {span} is not in 0..{len(result.spans) - 1}")
    config = curation or result.curation
    lo, hi = result.spans[span].token_start, result.spans[span].token_end
    units, confidence = result.token_trace(config.token_rule)
    decisions = explain(units[lo:hi].tolist(), [t.pos for t in result.tokens[lo:hi]],
                        confidence[lo:hi].tolist(), config)
    totals = result.sources.unit_totals(result.atom_sum[lo:hi]).sum(axis=0)
    whole = totals.sum()
    mass = totals / whole if whole > 0 else np.zeros_like(totals)
    return SpanShares(span=span, decisions=tuple(decisions), mass=mass,
                      p_min=config.p_min if config.use_p_min else None,
                      coverage=config.coverage if config.use_coverage else None,
                      run_min=config.run_min if config.use_run_coherence else None, curation=config)
