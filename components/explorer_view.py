"""The explorer view: a TraceResult (+ media previews) -> escaped HTML carrying a JSON payload.

Pure: no gradio, no file access. The same HTML is the value of the app's ``gr.HTML`` and the
body of the offline report; ``components/static/explorer.js`` reads the payload and does every
highlight in the browser. Every piece of model or user text passes through ``html.escape``;
the payload is JSON with ``</`` escaped, stored in an escaped attribute, and the script only
ever writes it back with ``textContent``.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from omnitrace_core import MODALITIES, Span, TraceResult
from omnitrace_core.result import ItemInfo
from omnitrace_core.sources import SourceUnit

from .verification_view import span_verification, verification_payload, verification_summary

#: "Behind the curated list" shows at most this many units per sentence (the strongest).
BEHIND_ROWS = 40


@dataclass(frozen=True)
class MediaPreview:
    """What the view shows of one media item (all values already safe to put in attributes).

    Attributes:
        kind: "image", "audio" or "video".
        src: URL or data URI of the image / playable file; None when it cannot be shown.
        width, height: pixel size of the image (for its aspect ratio).
        duration: seconds (audio, video).
        peaks: waveform envelope, one value in [0, 1] per column (audio, video's audio track).
        thumbs: (seconds, data URI) frame thumbnails along a video.
        note: a short message shown instead of missing media.
    """

    kind: str
    src: str | None = None
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    peaks: tuple[float, ...] = ()
    thumbs: tuple[tuple[float, str], ...] = ()
    note: str = ""


def esc(text: Any) -> str:
    """HTML-escape any value (quotes included, so the result is safe inside attributes)."""
    return html.escape(str(text), quote=True)


def _finite(data: Any) -> Any:
    """Replace NaN / infinity (which JSON.parse rejects) by null, recursively."""
    if isinstance(data, float):
        return data if np.isfinite(data) else None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    return data


def json_for_html(data: Any) -> str:
    """JSON that cannot end an enclosing <script> or comment: ``</`` and ``<!--`` are escaped."""
    text = json.dumps(_finite(data), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("</", "<\\/").replace("<!--", "<\\u0021--")


def modality_split(span: Span) -> dict[str, float]:
    """How a sentence's curated support splits across modalities: modality -> fraction (sums to 1)."""
    totals: dict[str, float] = {}
    for source in span.sources:
        totals[source.modality] = totals.get(source.modality, 0.0) + source.share
    whole = sum(totals.values())
    return {m: round(v / whole, 4) for m, v in totals.items()} if whole > 0 else {}


def is_weak(span: Span) -> bool:
    """A sentence with no curated source has no strong support in the input."""
    return not span.sources


def unit_where(unit: SourceUnit) -> tuple[str, str]:
    """(where, name): what tells a unit from its neighbours, and the rest of its label.

    Narrow columns cut labels; the view shows ``where`` first and never cuts it: the time range
    of an audio or video unit, the item number of an image. A text unit's label begins with its
    sentence, which is what tells it apart (``where`` is empty).
    """
    if unit.time_start is not None and unit.time_end is not None:
        engine_form = f"{unit.time_start:.1f}-{unit.time_end:.1f}s"  # as the engine writes times into labels
        name = " ".join(unit.label.replace(engine_form, " ", 1).split())
        return f"{unit.time_start:.1f}\u2013{unit.time_end:.1f} s", name
    if unit.modality == "image":
        return f"#{int(unit.item) + 1}", unit.label
    return "", unit.label


def _tile_where(item: ItemInfo, tile: int) -> str:
    """A tile of an image as "tile row,column" (1-based), or "" without a grid."""
    if not item.grid:
        return ""
    cols = max(1, int(item.grid[1]))
    return f"tile {tile // cols + 1},{tile % cols + 1}"


def _token_rows(result: TraceResult) -> list[dict[str, Any]]:
    """Per generated token: its source unit, confidence, POS tag and POS vote weight, top-3 units, and
    ``where`` (as ``unit_where``; for an image, also the tile the token draws on most)."""
    if not result.tokens:
        return []
    units, confidence = result.token_trace()
    atom_tile = result.sources.atom_tile
    tile_atoms = {u.index: np.flatnonzero((result.sources.atom_unit == u.index) & (atom_tile >= 0))
                  for u in result.units if u.modality == "image"}
    rows = []
    for t, token in enumerate(result.tokens):
        unit = result.units[units[t]] if units[t] >= 0 else None
        where = unit_where(unit)[0] if unit is not None else ""
        if unit is not None and unit.modality == "image":
            atoms = tile_atoms[unit.index]
            if atoms.size:
                tile = _tile_where(result.items[unit.item], int(atom_tile[atoms[np.argmax(result.atom_sum[t, atoms])]]))
                where = f"{where} \u00b7 {tile}" if tile else where
        row = {
            "text": token.text, "unit": int(units[t]), "conf": round(float(confidence[t]), 4), "pos": token.pos,
            "w": round(float(result.curation.pos_weight(token.pos)), 3), "where": where,
            "top": [[unit, round(mass, 4)] for unit, mass in result.top_sources(t)],
        }
        if token.logprob is not None:
            row["lp"] = round(token.logprob, 3)
        if token.top_id is not None:  # the model's own choice was another token
            row.update(alt=token.top_text or "", altlp=round(token.top_logprob, 3))
        rows.append(row)
    return rows


def behind_curation(result: TraceResult, span: int) -> dict[str, Any]:
    """Every unit's share of one sentence before curation, with the thresholds (see ``TraceResult.span_shares``).

    ``rows``: [unit (-1: no source), vote share, mass share, outcome, cumulative kept share]: the units
    curation ranked, in its order, then the units holding mass that no token was traced to ("no token"),
    strongest first; at most ``BEHIND_ROWS`` of them (``more``: how many were left out).
    """
    shares = result.span_shares(span)
    rows = [[d.unit, round(d.share, 4), round(float(shares.mass[d.unit]), 4) if d.unit >= 0 else 0.0, d.outcome,
             round(d.cumulative, 4)] for d in shares.decisions]
    ranked = {d.unit for d in shares.decisions}
    rest = [u for u in np.argsort(-shares.mass, kind="stable").tolist() if u not in ranked and shares.mass[u] > 0]
    rows += [[int(u), 0.0, round(float(shares.mass[u]), 4), "no token", None] for u in rest]
    return {"rows": rows[:BEHIND_ROWS], "more": max(0, len(rows) - BEHIND_ROWS), "p_min": shares.p_min,
            "coverage": shares.coverage}


def build_payload(result: TraceResult, gold: Mapping[int, Sequence[int]] | None = None) -> dict[str, Any]:
    """The data explorer.js needs: units, spans with curated sources (and, with ``gold``, the sources the
    ground truth expects: span index -> units), what lies behind each curated list, tokens, and a verified
    result's measurements (``verification``, and per sentence ``ver``: see ``verification_view``)."""
    units = []
    for u in result.units:
        where, name = unit_where(u)
        units.append({"label": u.label, "where": where, "name": name, "modality": u.modality, "item": u.item,
                      "t0": u.time_start, "t1": u.time_end})
    spans = []
    for span in result.spans:
        sources = []
        for s in span.sources:
            entry: dict[str, Any] = {"unit": s.unit, "modality": s.modality, "item": s.item, "label": s.label,
                                     "share": round(s.share, 4), "rescued": s.rescued}
            entry["where"], entry["name"] = unit_where(result.units[s.unit])
            if s.time_start is not None:
                entry.update(t0=s.time_start, t1=s.time_end)
            if s.tile_scores is not None:
                entry.update(grid=list(s.grid), tiles=list(s.tile_scores))
                if s.tile_scores:  # the tile that supports this sentence most
                    tile = _tile_where(result.items[s.item], int(np.argmax(s.tile_scores)))
                    entry["where"] = f"{entry['where']} \u00b7 {tile}" if tile else entry["where"]
            if s.tracks is not None:
                entry["tracks"] = dict(s.tracks)
            sources.append(entry)
        entry = {"index": span.index, "sources": sources, "mods": modality_split(span), "weak": is_weak(span),
                 "conf": round(span.confidence, 4), "tokens": [span.token_start, span.token_end],
                 "behind": behind_curation(result, span.index)}
        if gold is not None and span.index in gold:
            entry["gold"] = [int(u) for u in gold[span.index]]
        if result.verification is not None:
            entry["ver"] = span_verification(result, span.index)
        spans.append(entry)
    return {"signal": result.signal, "units": units, "spans": spans, "tokens": _token_rows(result),
            "modalities": list(MODALITIES), "forced": result.forced, "heads": result.heads is not None,
            "gold": gold is not None, "verification": verification_payload(result)}


# -- HTML pieces -------------------------------------------------------------------------------
def _modality_bar(split: Mapping[str, float], cls: str = "ot-mbar") -> str:
    if not split:
        return f'<span class="{cls} ot-mbar-empty" aria-hidden="true"></span>'
    parts = "".join(f'<i class="ot-m-{esc(m)}" style="width:{100 * split[m]:.1f}%"></i>' for m in MODALITIES if m in split)
    title = ", ".join(f"{m} {100 * split[m]:.0f}%" for m in MODALITIES if m in split)
    return f'<span class="{cls}" title="{esc(title)}">{parts}</span>'


def _sentence_text(result: TraceResult, span: Span) -> str:
    """A sentence's text, escaped, with the tokens the model would not have written marked (the model's
    own choice in their title)."""
    out, cursor = [], span.char_start
    for token in result.tokens[span.token_start:span.token_end]:
        if token.top_id is None or token.char_end <= token.char_start:
            continue
        start, end = max(token.char_start, cursor), min(token.char_end, span.char_end)
        if end <= start:
            continue
        out.append(esc(result.text[cursor:start]))
        title = f"log p {token.logprob:.2f}; the model would write {token.top_text!r} (log p {token.top_logprob:.2f})"
        out.append(f'<mark class="ot-disagree" data-tok="{int(token.index)}" title="{esc(title)}">'
                   f'{esc(result.text[start:end])}</mark>')
        cursor = end
    out.append(esc(result.text[cursor:span.char_end]))
    return "".join(out)


def _output_html(result: TraceResult | None, text: str, pending: str) -> str:
    out, cursor = [], 0
    if result is not None:
        if result.forced:
            out.append('<p class="ot-forced">Given answer, teacher-forced. Marked tokens are where the model would '
                       'have written another token (click a sentence: its token table gives each log p).</p>')
        for span in result.spans:
            out.append(esc(text[cursor:span.char_start]))
            weak = is_weak(span)
            cls = "ot-sent ot-weak" if weak else "ot-sent"
            flag = '<span class="ot-flag" title="no strong source">&#9888;</span>' if weak else ""
            label = "no strong source" if weak else f"{len(span.sources)} source(s)"
            out.append(f'<span class="{cls}" data-span="{int(span.index)}" tabindex="0" role="button" '
                       f'title="{esc(label)}"><span class="ot-stext">{_sentence_text(result, span)}</span>{flag}'
                       f'{_modality_bar(modality_split(span))}</span>')
            cursor = span.char_end
        out.append(esc(text[cursor:]))
    if pending:
        out.append(f'<span class="ot-pending">{esc(pending)}</span><span class="ot-caret"></span>')
    if not out or not "".join(out).strip():
        return '<p class="ot-empty">No output yet. Compose an input and press <b>Trace</b>.</p>'
    return f'<div class="ot-sentences">{"".join(out)}</div>'


def _text_item(item: ItemInfo, units: Sequence[Any]) -> str:
    text = item.text or ""
    own = sorted((u for u in units if u.item == item.index and u.modality == "text"), key=lambda u: u.char_start)
    out, cursor = [], 0
    for u in own:
        out.append(esc(text[cursor:u.char_start]))
        out.append(f'<span class="ot-unit" data-unit="{int(u.index)}" data-item="{int(item.index)}">'
                   f'{esc(text[u.char_start:u.char_end])}</span>')
        cursor = u.char_end
    out.append(esc(text[cursor:]))
    return f'<div class="ot-textbody">{"".join(out)}</div>'


def _image_item(item: ItemInfo, units: Sequence[Any], preview: MediaPreview | None) -> str:
    unit = next((u.index for u in units if u.item == item.index and u.modality == "image"), None)
    # sizes may come from a loaded trace file: only numbers reach the style attribute
    w = float((preview.width if preview and preview.width else None) or item.media.get("width") or 4)
    h = float((preview.height if preview and preview.height else None) or item.media.get("height") or 3)
    if preview and preview.src:
        picture = f'<img src="{esc(preview.src)}" alt="{esc(item.label)}" loading="lazy">'
    else:
        note = preview.note if preview and preview.note else "image not available"
        picture = f'<div class="ot-missing">{esc(note)}</div>'
    tiles = ""
    if item.grid:
        rows, cols = (int(n) for n in item.grid)
        cells = "".join(f'<i class="ot-tile" data-tile="{k}"></i>' for k in range(rows * cols))
        tiles = (f'<div class="ot-tiles" style="grid-template-rows:repeat({rows},1fr);'
                 f'grid-template-columns:repeat({cols},1fr)">{cells}</div>')
    attr = f' data-unit="{int(unit)}"' if unit is not None else ""
    return (f'<div class="ot-imgwrap"{attr} data-item="{int(item.index)}" style="aspect-ratio:{w:g}/{h:g}">'
            f'{picture}{tiles}</div>')


def _waveform_svg(peaks: Sequence[float]) -> str:
    if not peaks:
        return ""
    n = len(peaks)
    bars = "".join(f'<rect x="{i}" y="{50 - 48 * p:.1f}" width="0.8" height="{max(0.5, 96 * p):.1f}"/>'
                   for i, p in enumerate(peaks))
    return f'<svg class="ot-wave" viewBox="0 0 {n} 100" preserveAspectRatio="none" aria-hidden="true">{bars}</svg>'


def _segments(item: ItemInfo, units: Sequence[Any], duration: float) -> str:
    out = []
    for u in units:
        if u.item != item.index or u.time_start is None or duration <= 0:
            continue
        left, width = 100 * u.time_start / duration, 100 * (u.time_end - u.time_start) / duration
        out.append(f'<button class="ot-seg" data-unit="{int(u.index)}" data-item="{int(item.index)}" '
                   f'data-t0="{u.time_start:.3f}" '
                   f'data-t1="{u.time_end:.3f}" style="left:{left:.3f}%;width:{width:.3f}%" '
                   f'title="{esc(u.label)}"></button>')
    return f'<div class="ot-segs">{"".join(out)}</div>'


def _time_axis(duration: float) -> str:
    if duration <= 0:
        return ""
    return f'<div class="ot-axis"><span>0 s</span><span>{duration:.1f} s</span></div>'


def _audio_item(item: ItemInfo, units: Sequence[Any], preview: MediaPreview | None) -> str:
    duration = float(item.media.get("duration") or (preview.duration if preview else 0) or 0)
    player = (f'<audio class="ot-player" controls preload="metadata" src="{esc(preview.src)}"></audio>'
              if preview and preview.src else "")
    note = f'<div class="ot-missing">{esc(preview.note)}</div>' if preview and preview.note else ""
    wave = _waveform_svg(preview.peaks if preview else ())
    return (f'<div class="ot-track ot-audiotrack">{wave}{_segments(item, units, duration)}</div>'
            f'{_time_axis(duration)}{player}{note}')


def _video_item(item: ItemInfo, units: Sequence[Any], preview: MediaPreview | None) -> str:
    duration = float(item.media.get("duration") or (preview.duration if preview else 0) or 0)
    player = (f'<video class="ot-player" controls preload="metadata" src="{esc(preview.src)}"></video>'
              if preview and preview.src else "")
    note = f'<div class="ot-missing">{esc(preview.note)}</div>' if preview and preview.note else ""
    thumbs = "".join(f'<img src="{esc(src)}" alt="frame at {t:.1f} s" data-t="{t:.3f}">'
                     for t, src in (preview.thumbs if preview else ()))
    strip = f'<div class="ot-strip">{thumbs}</div>' if thumbs else '<div class="ot-strip ot-strip-empty"></div>'
    wave = _waveform_svg(preview.peaks if preview else ())
    audio_row = f'<div class="ot-track ot-vaudio">{wave}</div>' if wave else ""
    return (f'{player}{note}<div class="ot-track ot-videotrack">{strip}{_segments(item, units, duration)}</div>'
            f'{audio_row}{_time_axis(duration)}')


def _item_header(item: ItemInfo) -> str:
    extra = ""
    if item.modality == "image" and item.grid:
        extra = f" &middot; {int(item.grid[0])}&times;{int(item.grid[1])} tiles"
    elif item.modality in ("audio", "video") and item.media.get("duration"):
        extra = f" &middot; {float(item.media['duration']):.1f} s"
    role = "instruction" if item.is_prompt else item.modality
    return (f'<div class="ot-itemhead"><span class="ot-badge ot-m-{esc(item.modality)}">{esc(role)}</span>'
            f'<span class="ot-itemlabel">#{item.index + 1} {esc(item.label)}</span>{extra}</div>')


def _inputs_html(items: Sequence[ItemInfo], units: Sequence[Any], media: Mapping[int, MediaPreview]) -> str:
    cards = []
    for item in items:
        preview = media.get(item.index)
        if item.modality == "text":
            body = _text_item(item, units)
        elif item.modality == "image":
            body = _image_item(item, units, preview)
        elif item.modality == "audio":
            body = _audio_item(item, units, preview)
        else:
            body = _video_item(item, units, preview)
        cls = "ot-item ot-prompt" if item.is_prompt else "ot-item"
        cards.append(f'<div class="{cls} ot-kind-{esc(item.modality)}" data-item="{int(item.index)}">'
                     f'{_item_header(item)}{body}</div>')
    return "".join(cards) or '<p class="ot-empty">No input items.</p>'


def _legend() -> str:
    return "".join(f'<span class="ot-legend-item"><i class="ot-m-{m}"></i>{m}</span>' for m in MODALITIES)


def render_explorer(result: TraceResult | None, media: Mapping[int, MediaPreview] | None = None, *,
                    items: Sequence[ItemInfo] | None = None, pending: str = "", progress: float | None = None,
                    caption: str = "", gold: Mapping[int, Sequence[int]] | None = None) -> str:
    """The explorer's HTML.

    Args:
        result: the trace to show (a streaming snapshot or a finished result); None before the
            first snapshot, when only ``items`` and ``pending`` text are shown.
        media: per item index, its preview (image data, waveform, thumbnails, player URL).
        items: the input items to show when there is no result yet.
        pending: generated text after the last finished sentence (still being written).
        progress: fraction of the generation budget used while streaming; None when done.
        caption: one line above the output (model, signal, timings).
        gold: span index -> the units its ground-truth labels name (outlined beside the traced sources).
    """
    media = media or {}
    shown = result.items if result is not None else tuple(items or ())
    units = result.units if result is not None else ()
    text = result.text if result is not None else ""
    payload = build_payload(result, gold) if result is not None else {"units": [], "spans": [], "tokens": []}
    bar = ""
    if progress is not None:
        bar = (f'<div class="ot-progress" role="progressbar" aria-valuenow="{100 * progress:.0f}" aria-valuemin="0" '
               f'aria-valuemax="100"><i style="width:{100 * min(1.0, progress):.1f}%"></i></div>')
    head = f'<div class="ot-caption">{esc(caption)}</div>' if caption else ""
    verified = verification_summary(result) if result is not None else ""
    if verified:
        head += f'<div class="ot-caption ot-vcaption">{esc(verified)}</div>'
    streaming = " ot-streaming" if progress is not None else ""
    return (
        f'<div class="ot-root{streaming}" data-payload="{esc(json_for_html(payload))}">'
        f'<div class="ot-col ot-left">'
        f'<section class="ot-card ot-output"><div class="ot-cardhead"><h3>Output</h3>'
        f'<span class="ot-legend">{_legend()}</span></div>{head}{bar}{_output_html(result, text, pending)}</section>'
        f'<section class="ot-card ot-detail" aria-live="polite"><div class="ot-detail-body">'
        f'<p class="ot-hint">Click a sentence to light up its sources; click a source (a text sentence, an image, '
        f'an audio or video segment) to see which sentences draw on it.</p></div></section>'
        f'</div>'
        f'<section class="ot-col ot-inputs"><div class="ot-cardhead"><h3>Inputs</h3></div>'
        f'{_inputs_html(shown, units, media)}</section>'
        f'</div>'
    )
