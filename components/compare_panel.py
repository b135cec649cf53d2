"""The signal comparison panel: re-trace the last generation with more signals, compare, switch views."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import gradio as gr

from omnitrace_core import InputError, Tracer, list_signals

from . import alerts
from .compare import Comparison, compare_results, render_comparison
from .plots import agreement_figure
from .session import Session
from .trace_panel import gpu_wrap


def session_comparison(session: Session) -> Comparison | None:
    """The comparison of the session's traces under its current curation (None without a trace)."""
    if not session.results or session.base_signal not in session.results:
        return None
    curated = {s: r if r.curation == session.curation else r.recurate(session.curation)
               for s, r in session.results.items()}
    return compare_results(curated, session.base_signal)


def trace_signals(tracer: Tracer, session: Session, signals: Sequence[str],
                  trace_fn: Callable | None = None) -> Iterator[Comparison]:
    """Trace the session's last generation again with each new signal (greedy: same tokens).

    Yields:
        the updated comparison after each signal.
    """
    if not session.results:
        raise InputError("trace an input first; other signals then re-trace the same generation")
    if not session.run_items:
        raise InputError("this trace was loaded from a file: run it again to compare signals")
    unknown = [s for s in signals if s not in list_signals()]
    if unknown:
        raise InputError(f"unknown signal(s) {unknown}; choose from {', '.join(list_signals())}")
    settings = session.run_settings
    trace_fn = trace_fn or tracer.trace
    for signal in signals:
        if signal in session.results:
            continue
        # a traced given answer is traced again as given; head masses are captured again when they were
        options = {k: settings[k] for k in ("answer", "heads") if k in settings}
        result = trace_fn(session.run_items, signal=signal, generation=settings["generation"],
                          sources=settings["sources"], curation=session.curation, **options)
        session.results[signal] = result
        yield session_comparison(session)


def compare_outputs(session: Session, pending: Sequence[str] = ()) -> tuple[str, Any, Any]:
    """(comparison HTML, agreement figure, view-signal dropdown update)."""
    comparison = session_comparison(session)
    choices = list(session.results)
    dropdown = gr.update(choices=choices, value=session.view_signal if session.view_signal in choices else None)
    return render_comparison(comparison, pending), agreement_figure(comparison), dropdown


@dataclass
class ComparePanel:
    signals: gr.CheckboxGroup
    run: gr.Button
    table: gr.HTML
    plot: gr.Plot


def build_compare_panel() -> ComparePanel:
    gr.Markdown("Re-trace the last generation with more signals (greedy decoding, same inputs: the token ids "
                "are checked to match) and compare the curated sources sentence by sentence.")
    with gr.Row():
        signals = gr.CheckboxGroup(list_signals(), label="Signals to add", elem_id="ot-compare-signals", scale=3)
        run = gr.Button("Trace with these signals", elem_id="ot-compare-run", scale=1)
    table = gr.HTML(render_comparison(None), js_on_load=None, elem_id="ot-compare-table", padding=False)
    plot = gr.Plot(agreement_figure(None), label="Agreement", elem_id="ot-compare-plot")
    return ComparePanel(signals, run, table, plot)


def make_compare_handler(tracer: Tracer) -> Callable:
    def trace(items, **kwargs):
        return tracer.trace(items, **kwargs)

    trace_fn = gpu_wrap(trace)

    def handler(session: Session, signals: list[str]):
        todo = [s for s in (signals or []) if s not in session.results]
        try:
            yield compare_outputs(session, todo)
            for done, _ in enumerate(trace_signals(tracer, session, todo, trace_fn), start=1):
                yield compare_outputs(session, todo[done:])
        except InputError as exc:
            raise alerts.error(exc, title="Compare signals") from exc

    return handler
