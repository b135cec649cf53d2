"""Plotly figures: per-token trace confidence, per-sentence agreement between signals, and a run's aggregates.

Pure (a result, comparison or run in, a figure out); plotly is imported where used.
"""

from __future__ import annotations

from typing import Any

from omnitrace_core import MODALITIES, TraceResult

from .compare import Comparison
from .runs import Run, mean_mass, task_f1

COLOURS = {"text": "#4c78a8", "image": "#f58518", "audio": "#54a24b", "video": "#b279a2", "none": "#9ca3af"}


def _plotly():
    try:
        import plotly.graph_objects as go
    except ImportError as exc:  # pragma: no cover - plotly is in requirements.txt
        raise ImportError("the explorer's plots need plotly: pip install plotly") from exc
    return go


def _layout(fig: Any, title: str, yaxis: str) -> Any:
    fig.update_layout(title=dict(text=title, font=dict(size=14)), height=300, margin=dict(l=50, r=20, t=40, b=40),
                      yaxis_title=yaxis, legend=dict(orientation="h", y=-0.2), template="plotly_white",
                      bargap=0.15)
    return fig


def token_confidence_figure(result: TraceResult | None) -> Any:
    """Bars: one per generated token, its trace confidence, coloured by its source's modality.

    Sentence boundaries are drawn as dotted lines.
    """
    go = _plotly()
    fig = go.Figure()
    if result is None or not result.tokens:
        return _layout(fig, "Token confidence (no trace yet)", "confidence")
    units, confidence = result.token_trace()
    groups: dict[str, list[int]] = {}
    for t, u in enumerate(units):
        groups.setdefault(result.units[u].modality if u >= 0 else "none", []).append(t)
    for modality, tokens in groups.items():
        hover = [f"{result.tokens[t].text!r} \u2192 {result.units[units[t]].label if units[t] >= 0 else 'none'}"
                 for t in tokens]
        fig.add_bar(x=tokens, y=[float(confidence[t]) for t in tokens], name=modality,
                    marker_color=COLOURS.get(modality, "#777"), hovertext=hover, hoverinfo="text+y")
    for span in result.spans[1:]:
        fig.add_vline(x=span.token_start - 0.5, line_dash="dot", line_color="#bbb")
    fig.update_xaxes(title_text="generated token")
    return _layout(fig, f"Token confidence ({result.signal})", "confidence")


def agreement_figure(comparison: Comparison | None) -> Any:
    """Bars: mean pairwise Jaccard of the curated unit sets, per sentence."""
    go = _plotly()
    fig = go.Figure()
    if comparison is None or len(comparison.signals) < 2:
        return _layout(fig, "Agreement between signals (trace with two or more)", "Jaccard")
    xs = [f"S{s.index + 1}" for s in comparison.sentences]
    ys = [s.mean if s.mean is not None else 0.0 for s in comparison.sentences]
    hover = [s.text[:80] for s in comparison.sentences]
    fig.add_bar(x=xs, y=ys, marker_color="#ea580c", hovertext=hover, hoverinfo="text+y", name="mean Jaccard")
    fig.update_yaxes(range=[0, 1])
    return _layout(fig, f"Per-sentence agreement: {', '.join(comparison.signals)}", "Jaccard")


def task_f1_figure(run: Run | None) -> Any:
    """Grouped bars: per task, the mean F1 against the ground truth of each modality."""
    go = _plotly()
    fig = go.Figure()
    scores = task_f1(run.rows) if run is not None else {}
    if not scores:
        return _layout(fig, "F1 per task (needs ground truth)", "F1")
    tasks = list(scores)
    for modality in MODALITIES:
        if any(modality in scores[t] for t in tasks):
            fig.add_bar(x=tasks, y=[scores[t].get(modality) for t in tasks], name=modality,
                        marker_color=COLOURS[modality])
    fig.update_yaxes(range=[0, 1])
    return _layout(fig, "F1 per task and modality", "F1")


def modality_mass_figure(run: Run | None) -> Any:
    """One stacked bar: the mean share of the attention mass on sources per modality, over traced samples."""
    go = _plotly()
    fig = go.Figure()
    split = mean_mass(run.rows) if run is not None else {}
    if not split:
        return _layout(fig, "Mass by modality (load a run)", "share")
    for modality, share in split.items():
        fig.add_bar(x=["mass"], y=[share], name=modality, marker_color=COLOURS[modality],
                    hovertemplate=f"{modality}: %{{y:.1%}}<extra></extra>")
    fig.update_layout(barmode="stack")
    fig.update_yaxes(range=[0, 1])
    return _layout(fig, "Attention mass by modality", "share")


def confidence_histogram(run: Run | None) -> Any:
    """Histogram of every output sentence's confidence over the run."""
    go = _plotly()
    fig = go.Figure()
    values = [c for row in run.rows for c in row.confidences] if run is not None else []
    if not values:
        return _layout(fig, "Sentence confidence (load a run)", "sentences")
    fig.add_histogram(x=values, nbinsx=30, marker_color="#ea580c", name="sentences")
    fig.update_xaxes(title_text="sentence confidence")
    return _layout(fig, f"Confidence, {len(values)} sentences", "sentences")
