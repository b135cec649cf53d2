"""The layer x head heat map of a clicked sentence or token and a chosen source unit (pure, escaped HTML).

It reads a trace's head masses (``TraceResult.heads``, captured with ``heads=True``): each decoder
layer's and attention head's share of the decoding query's attention on the unit, for one token or
averaged over a sentence's tokens. A cell's shade is its share relative to the map's largest; its
title gives the number.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from omnitrace_core import TraceResult

from .explorer_view import esc, unit_where

NO_HEADS = ("This trace has no layer and head masses: tick <b>Capture layers and heads</b> in Run settings and "
            "trace again (batch CLI: <code>--heads</code>).")


def selection_units(result: TraceResult, span: int | None, token: int | None) -> list[tuple[str, int]]:
    """(label, unit) choices for the map, strongest first on the selection (the sentence's curated
    sources lead); every unit of the trace is offered."""
    tokens = _tokens(result, span, token)
    mass = (result.sources.unit_totals(result.atom_sum[tokens]).sum(axis=0) if len(tokens)
            else np.zeros(len(result.units)))
    curated = [s.unit for s in result.spans[span].sources] if span is not None and token is None else []
    order = curated + [int(u) for u in np.argsort(-mass, kind="stable") if int(u) not in curated]
    return [(_label(result, u), u) for u in order]


def _label(result: TraceResult, unit: int) -> str:
    where, name = unit_where(result.units[unit])
    modality = result.units[unit].modality
    return f"{modality} {where} {name}".replace("  ", " ").strip()


def _tokens(result: TraceResult, span: int | None, token: int | None) -> np.ndarray:
    if token is not None and 0 <= token < len(result.tokens):
        return np.array([token])
    if span is not None and 0 <= span < len(result.spans):
        chosen = result.spans[span]
        return np.arange(chosen.token_start, chosen.token_end)
    return np.zeros(0, dtype=int)


def render_heads(result: TraceResult | None, span: int | None = None, token: int | None = None,
                 unit: int | None = None) -> str:
    """The heat map's HTML for a sentence (``span``) or one token, and ``unit``.

    A prompt to click a sentence when nothing is selected; :data:`NO_HEADS` when the trace has no head masses.
    """
    if result is None:
        return '<div class="ot-heads"><p class="ot-empty">Trace an input or open a run sample first.</p></div>'
    if result.heads is None:
        return f'<div class="ot-heads"><p class="ot-empty">{NO_HEADS}</p></div>'
    tokens = _tokens(result, span, token)
    if not len(tokens) or unit is None or not 0 <= unit < len(result.units):
        return ('<div class="ot-heads"><p class="ot-empty">Click an output sentence (or a token in its table) to see '
                'each layer\u2019s and head\u2019s attention on a source.</p></div>')
    grid = result.heads.mass[tokens, :, :, unit].mean(axis=0)
    peak = float(grid.max()) if grid.size else 0.0
    what = (f'token {int(token) + 1} {esc(repr(result.tokens[int(token)].text))}' if token is not None
            else f'sentence {int(span) + 1}')
    heads = grid.shape[1]
    head_row = "".join(f"<th>{h}</th>" for h in range(heads))
    rows = []
    for k, layer in enumerate(result.heads.layers):
        cells = "".join(
            f'<td class="ot-hcell" data-layer="{int(layer)}" data-head="{h}" data-v="{grid[k, h]:.6f}" '
            f'style="--ot-h:{(grid[k, h] / peak if peak > 0 else 0):.4f}" '
            f'title="layer {int(layer)}, head {h}: {grid[k, h]:.4f}"></td>' for h in range(heads))
        rows.append(f'<tr><th>{int(layer)}</th>{cells}<td class="ot-hmean">{grid[k].mean():.3f}</td></tr>')
    mean = float(grid.mean())
    return (f'<div class="ot-heads" data-unit="{int(unit)}" data-tokens="{int(tokens[0])}-{int(tokens[-1]) + 1}">'
            f'<p class="ot-sub">{what} \u2192 <b>{esc(_label(result, unit))}</b>: each layer\u2019s and head\u2019s '
            f'share of the attention on this source (mean {mean:.3f}, the <code>attmean</code> mass; largest '
            f'{peak:.3f}). Rows: layers; columns: heads; last column: the layer\u2019s mean.</p>'
            f'<table class="ot-htable"><thead><tr><th>layer \\ head</th>{head_row}<th>mean</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def heads_state(result: TraceResult | None, selection: dict[str, Any]) -> tuple[list[tuple[str, int]], int | None]:
    """The unit choices and the unit shown for a selection ``{"span", "token", "unit"}`` (a clicked unit wins;
    else the sentence's strongest curated source, or the token's strongest unit)."""
    if result is None or result.heads is None:
        return [], None
    span, token = selection.get("span"), selection.get("token")
    if span is None and token is None:
        return [], None
    choices = selection_units(result, span, token)
    unit = selection.get("unit")
    if unit is None or not any(u == unit for _, u in choices):
        unit = choices[0][1] if choices else None
    return choices, unit
