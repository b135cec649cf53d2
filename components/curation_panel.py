"""Curation knobs: re-curate the stored per-token traces instantly (``TraceResult.recurate``)."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from omnitrace_core import ConfigError, CurationConfig, list_token_rules

from . import alerts
from .rendering import ViewContext
from .session import Session

DEFAULTS = CurationConfig()


def curation_from_knobs(gamma: float, use_confidence: bool, p_min: float, use_p_min: bool, coverage: float,
                        use_coverage: bool, use_pos_weights: bool, use_run_coherence: bool,
                        token_rule: str, use_run_rescue: bool = True) -> CurationConfig:
    """The curation settings the knobs describe (paper defaults for everything not exposed).

    ``use_run_rescue`` comes last (with its default) so that the ``/recurate`` API keeps its earlier calls.
    """
    return CurationConfig(gamma=float(gamma), use_confidence=bool(use_confidence), p_min=float(p_min),
                          use_p_min=bool(use_p_min), coverage=float(coverage), use_coverage=bool(use_coverage),
                          use_pos_weights=bool(use_pos_weights), use_run_coherence=bool(use_run_coherence),
                          token_rule=token_rule, use_run_rescue=bool(use_run_rescue))


def recurate_view(ctx: ViewContext, session: Session, *knobs) -> str:
    """Apply new curation settings to the session's traces and re-render (no generation)."""
    try:
        session.curation = curation_from_knobs(*knobs)
    except ConfigError as exc:
        raise alerts.error(exc, title="Curation settings") from exc
    return ctx.explorer(session)


@dataclass
class CurationPanel:
    knobs: list


def build_curation_panel() -> CurationPanel:
    """The knobs, in the order curation_from_knobs takes them."""
    d = DEFAULTS
    with gr.Accordion("Curation (instant, no new generation)", open=False, elem_classes="ot-curation"):
        with gr.Row():
            gamma = gr.Slider(0, 4, value=d.gamma, step=0.1, label="Confidence exponent \u03b3", elem_id="ot-gamma")
            use_conf = gr.Checkbox(value=d.use_confidence, label="Confidence shaping", elem_id="ot-use-conf")
        with gr.Row():
            p_min = gr.Slider(0, 0.5, value=d.p_min, step=0.01, label="p_min (drop sources below this share)",
                              elem_id="ot-pmin")
            use_p_min = gr.Checkbox(value=d.use_p_min, label="p_min on", elem_id="ot-use-pmin")
        with gr.Row():
            coverage = gr.Slider(0.05, 1.0, value=d.coverage, step=0.01, label="Coverage", elem_id="ot-coverage")
            use_coverage = gr.Checkbox(value=d.use_coverage, label="Coverage on", elem_id="ot-use-coverage")
        with gr.Row():
            with gr.Column(min_width=130):  # stacked: three labels side by side do not fit the accordion
                use_pos = gr.Checkbox(value=d.use_pos_weights, label="POS weighting", elem_id="ot-use-pos")
                use_run = gr.Checkbox(value=d.use_run_coherence, label="Run coherence", elem_id="ot-use-run")
                use_rescue = gr.Checkbox(value=d.use_run_rescue, label="Run rescue", elem_id="ot-use-rescue")
            rules = list_token_rules()
            token_rule = gr.Dropdown(rules, value=d.token_rule, label="Token rule", elem_id="ot-token-rule",
                                     min_width=120)
    return CurationPanel([gamma, use_conf, p_min, use_p_min, coverage, use_coverage, use_pos, use_run, token_rule,
                          use_rescue])
