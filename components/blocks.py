"""Assemble the explorer: panels side by side, events wired, queue configured.

``build_app(tracer, ...)`` returns a queued ``gr.Blocks``; ``launch_options(settings)`` gives the
launch arguments (CSS, the one served folder of assets, upload size limit). app.py and the tests
use both, so the tested app is the shipped app.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from omnitrace_core import InputError, Tracer

from . import alerts
from .compare_panel import build_compare_panel, compare_outputs, make_compare_handler
from .compose import build_compose_panel, build_gallery, gallery, load_gallery_example
from .curation_panel import build_curation_panel, recurate_view
from .explorer_view import esc
from .model_loading import MODEL_NOTES
from .export_panel import build_export_panel, make_export_handlers
from .heads_view import heads_state, render_heads
from .plots import token_confidence_figure
from .rendering import ViewContext, upload_roots
from .report import explorer_js
from .runs_panel import (build_runs_panel, folder_paths, load_files, loaded_outputs, open_sample, query,
                         show_sample, table_event)
from .session import Session, close_session, new_session
from .settings import CSS_DIR, EXAMPLES_DIR, AppSettings
from .trace_panel import build_trace_panel, make_run_handler, request_run, stop_trace
from .verify_panel import SELECTED_SENTENCE_JS, build_verify_panel, make_verify_handlers

MOUNT_JS = "\notMount(element);\nwatch('value', function () { otMount(element); });\n"


def _header(model_name: str, device: str) -> str:
    note = MODEL_NOTES.get(model_name)
    note = f'<span class="ot-note">{esc(note)}</span>' if note else ""
    return (f'<div class="ot-header"><div><h1>OmniTrace Explorer</h1><p>Trace each sentence an omni-modal model '
            f'writes back to the text, image tiles, audio and video segments it draws on.</p></div>'
            f'<div class="ot-modelchip"><b>{esc(model_name)}</b> &middot; {esc(device)}{note}</div></div>')


def heads_outputs(session: Session) -> tuple[Any, str]:
    """The layer x head panel for the session's last click: (unit dropdown update, heat map HTML)."""
    result = session.shown()
    choices, unit = heads_state(result, session.selection)
    heat = render_heads(result, session.selection.get("span"), session.selection.get("token"), unit)
    return gr.update(choices=choices, value=unit), heat


def select_in_explorer(session: Session, data: dict[str, Any]) -> tuple[Any, str]:
    """A click in the explorer (``{"span", "token", "unit"}``): the layer x head panel follows it."""
    def number(name: str) -> int | None:
        value = data.get(name)
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    session.selection = {"span": number("span"), "token": number("token"), "unit": number("unit")}
    return heads_outputs(session)


def _after_run(session: Session):
    table, plot, dropdown = compare_outputs(session)
    return (token_confidence_figure(session.shown()), table, plot, dropdown, *heads_outputs(session))


def build_app(tracer: Tracer, settings: AppSettings, model_name: str = "", device: str = "cpu") -> gr.Blocks:
    """The explorer app for ``tracer`` (queued; launch it with ``launch_options(settings)``)."""
    limits = settings.limits
    data_roots = [settings.data_dir] if settings.data_dir is not None else []
    ctx = ViewContext(model_name=model_name or tracer.backend.model_id, device=device, limits=limits,
                      roots=tuple(upload_roots() + data_roots), model_id=tracer.backend.model_id)
    # the demo model answers only its benchmark's examples: they lead the table on the default model
    examples = gallery(demo_first=settings.is_default_model)
    with gr.Blocks(title="OmniTrace Explorer", delete_cache=(1800, 3600)) as demo:
        # no time-to-live: Gradio drops (and close_session cleans) the state an hour after the tab closes
        session = gr.State(new_session, delete_callback=close_session)
        gr.HTML(_header(ctx.model_name, device), js_on_load=None, padding=False)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=340, elem_classes="ot-sidebar"):
                compose = build_compose_panel(limits, ctx.roots)
                trace = build_trace_panel(settings.default_new_tokens, limits, tracer.sources.video_fps)
            with gr.Column(scale=3, min_width=600):
                with gr.Tabs() as tabs:
                    with gr.Tab("Explore", id="explore"):
                        with gr.Row():
                            view_signal = gr.Dropdown(label="Signal shown", choices=[trace.signal.value],
                                                      value=trace.signal.value, elem_id="ot-view-signal",
                                                      scale=1, min_width=180)
                            with gr.Column(scale=4):
                                verify, curation = build_verify_panel(build_curation_panel)
                        explorer = gr.HTML(ctx.explorer(Session()), js_on_load=explorer_js() + MOUNT_JS,
                                           elem_id="ot-explorer", padding=False)
                        with gr.Row(equal_height=False):  # side by side: the examples stay in the first view
                            with gr.Accordion("Token confidence", open=False):
                                token_plot = gr.Plot(token_confidence_figure(None), show_label=False,
                                                     elem_id="ot-token-plot")
                            with gr.Accordion("Layers and heads", open=False, elem_id="ot-heads-panel"):
                                heads_unit = gr.Dropdown(label="Source unit", choices=[], elem_id="ot-heads-unit",
                                                         info="the heat map's unit: the sentence's sources come first")
                                heads_map = gr.HTML(render_heads(None), js_on_load=None, elem_id="ot-heads-map",
                                                    padding=False)
                    with gr.Tab("Runs", id="runs"):
                        runs = build_runs_panel(settings.data_dir)
                    with gr.Tab("Compare signals", id="compare"):
                        compare = build_compare_panel()
                    with gr.Tab("Export / load", id="export"):
                        export = build_export_panel()
                # under the (still small) explorer: in view when the page opens, whatever the tab
                gallery_table = build_gallery(examples)

        def on_run_signal(current: Session, signal: str):
            # until the first trace, "Signal shown" is the signal the next run will trace with
            return gr.skip() if current.results else gr.update(choices=[signal], value=signal)

        trace.signal.change(on_run_signal, [session, trace.signal], view_signal, show_progress="hidden",
                            api_visibility="private")

        def on_items(current: Session, items):
            # before the first trace, the explorer previews the composition (media decoded once, cached)
            return ctx.explorer(current, items=items) if current.shown() is None else gr.skip()

        compose.items.change(on_items, [session, compose.items], explorer, show_progress="hidden",
                             api_visibility="private")
        run_handler = make_run_handler(tracer, ctx, limits)
        model_events = dict(concurrency_limit=settings.concurrency, concurrency_id="model")
        run_inputs = [session, compose.items, *trace.settings]
        after = dict(fn=_after_run, inputs=session, outputs=[token_plot, compare.table, compare.plot, view_signal,
                                                             heads_unit, heads_map], api_visibility="private")
        # Trace first marks the run queued (instantly, outside the queue), so that Stop can cancel it before it starts
        queue_run = dict(fn=request_run, inputs=session, outputs=trace.status, queue=False, show_progress="hidden",
                         api_visibility="private")
        trace.run.click(**queue_run).then(run_handler, run_inputs, [explorer, trace.status], api_name="trace",
                                          trigger_mode="once", show_progress_on=trace.status,
                                          **model_events).then(**after)
        trace.stop.click(stop_trace, session, trace.status, queue=False, api_name="stop")

        # Verify runs in the model queue like a trace: marked queued first, so that Stop can cancel it while it waits
        on_verify_one, on_verify_all = make_verify_handlers(tracer, ctx)
        verify_outputs = [explorer, trace.status]
        verify_events = dict(trigger_mode="once", show_progress_on=trace.status, **model_events)
        verify.one.click(**queue_run).then(on_verify_one, verify.inputs(session, selected=True), verify_outputs,
                                           js=SELECTED_SENTENCE_JS, api_name="verify_sentence", **verify_events)
        verify.every.click(**queue_run).then(on_verify_all, verify.inputs(session, selected=False), verify_outputs,
                                             api_name="verify_all", **verify_events)

        def on_recurate(current: Session, *knobs):
            return recurate_view(ctx, current, *knobs)

        gr.on([k.change for k in curation.knobs], on_recurate, [session, *curation.knobs], explorer,
              trigger_mode="always_last", show_progress="hidden", api_name="recurate").then(**after)

        def on_view(current: Session, signal: str | None):
            if signal and signal in current.results:
                current.view_signal = signal
            return ctx.explorer(current), token_confidence_figure(current.shown())

        view_signal.input(on_view, [session, view_signal], [explorer, token_plot], api_name="view_signal").then(
            lambda current: heads_outputs(current), session, [heads_unit, heads_map], api_visibility="private")

        def on_explorer_click(current: Session, evt: gr.EventData):
            return select_in_explorer(current, dict(evt._data or {}))

        explorer.click(on_explorer_click, session, [heads_unit, heads_map], trigger_mode="always_last",
                       show_progress="hidden", api_visibility="private")

        def on_heads_unit(current: Session, unit: int | None):
            current.selection = {**current.selection, "unit": unit}
            return heads_outputs(current)[1]

        heads_unit.input(on_heads_unit, [session, heads_unit], heads_map, show_progress="hidden",
                         api_visibility="private")

        def on_run_files(current: Session, files: list[str] | None):
            try:
                load_files(current, list(files or []))
            except InputError as exc:
                raise alerts.error(exc, title="Runs") from exc
            return loaded_outputs(current)

        run_outputs = [runs.summary, runs.table, runs.task, runs.task_plot, runs.mass_plot, runs.confidence_plot]
        runs.files.upload(on_run_files, [session, runs.files], run_outputs, api_name="load_run")
        if runs.load is not None:
            def on_folder(current: Session, names: list[str] | None):
                try:
                    return on_run_files(current, folder_paths(settings.data_dir, list(names or [])))
                except InputError as exc:
                    raise alerts.error(exc, title="Runs") from exc

            runs.load.click(on_folder, [session, runs.folder], run_outputs, api_name="load_run_folder")

        def on_filter(current: Session, text: str, status: str, task: str):
            try:
                return query(current, text=text or "", status=status or "all", task=task or "all", page=0)
            except InputError as exc:
                raise alerts.error(exc, title="Runs") from exc

        filters = [session, runs.text, runs.status, runs.task]
        runs.text.submit(on_filter, filters, runs.table, api_name="filter_run", show_progress="hidden")
        gr.on([runs.status.input, runs.task.input], on_filter, filters, runs.table, show_progress="hidden",
              api_visibility="private")

        def on_table(current: Session, evt: gr.EventData):
            try:
                table, key = table_event(current, dict(evt._data or {}))
                if key is None:
                    return table, gr.skip(), gr.skip(), gr.skip()
                opened = open_sample(current.run, key, limits, ctx.roots)
            except InputError as exc:
                raise alerts.error(exc, title="Runs") from exc
            show_sample(current, opened)
            for note in opened.notes:
                alerts.warning(note, title="Runs")
            return table, ctx.explorer(current), gr.Tabs(selected="explore"), \
                (list(opened.items) if opened.items else gr.skip())

        runs.table.click(on_table, session, [runs.table, explorer, tabs, compose.items], trigger_mode="once",
                         show_progress="hidden", api_visibility="private").then(**after)
        compare.run.click(make_compare_handler(tracer), [session, compare.signals],
                          [compare.table, compare.plot, view_signal], api_name="compare", **model_events)

        on_json, on_html, on_load = make_export_handlers(ctx)
        export.json_btn.click(on_json, session, export.files, api_name="export_json")
        export.html_btn.click(on_html, session, export.files, api_name="export_html")
        export.load.upload(on_load, [session, export.load], explorer, api_name="load_trace").then(**after)

        if gallery_table is not None:
            def on_example(index: int):
                try:
                    return load_gallery_example(index, examples, limits)
                except InputError as exc:
                    raise alerts.error(exc, title="Example") from exc

            gallery_table.click(on_example, gallery_table, compose.items, api_visibility="private").success(
                **queue_run).success(run_handler, run_inputs, [explorer, trace.status], show_progress_on=trace.status,
                api_visibility="private", **model_events).then(**after)
    demo.queue(default_concurrency_limit=8, max_size=64)
    return demo


def app_css() -> str:
    return "\n".join((CSS_DIR / name).read_text(encoding="utf-8") for name in ("explorer.css", "app.css"))


def launch_options(settings: AppSettings) -> dict[str, Any]:
    """Arguments for ``demo.launch``: styling, and the only folder served besides uploads."""
    theme = gr.themes.Soft(primary_hue="orange", secondary_hue="slate", neutral_hue="slate")
    allowed = [str(EXAMPLES_DIR)] + ([str(settings.data_dir)] if settings.data_dir is not None else [])
    return dict(css=app_css(), theme=theme, allowed_paths=allowed, ssr_mode=False,
                max_file_size=int(settings.limits.max_file_mb * 1024 * 1024), server_name=settings.host,
                server_port=settings.port)
