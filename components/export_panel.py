"""Export the shown trace (engine JSON, or the offline HTML report) and load a JSON trace back."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import gradio as gr

from omnitrace_core import InputError, TraceResult

from .rendering import ViewContext
from .report import write_report
from .session import Session


def _stem(result: TraceResult) -> str:
    model = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(result.model_id).name)[:40] or "model"
    return f"omnitrace_{model}_{result.signal}"


def export_json(session: Session) -> str:
    """Write the shown trace (engine format, current curation) to the session folder; return its path."""
    result = session.shown()
    if result is None:
        raise InputError("nothing to export yet: trace an input first")
    return str(result.save(session.workdir / f"{_stem(result)}.json"))


def export_html(ctx: ViewContext, session: Session) -> str:
    """Write the self-contained HTML report of the shown trace; return its path."""
    result = session.shown()
    if result is None:
        raise InputError("nothing to export yet: trace an input first")
    path = session.workdir / f"{_stem(result)}.html"
    return str(write_report(result, path, ctx.roots, ctx.limits.media_limits(), model_name=ctx.model_name))


def load_trace(session: Session, path: str | None) -> TraceResult:
    """Read a JSON trace written by the engine (or by Export JSON) and make it the shown trace."""
    if not path:
        raise InputError("choose a .json trace file to load")
    if Path(path).suffix.lower() != ".json":
        raise InputError(f"'{Path(path).name}' is not a .json trace file")
    result = TraceResult.load(path)
    session.adopt(result)
    return result


@dataclass
class ExportPanel:
    json_btn: gr.Button
    html_btn: gr.Button
    files: gr.File
    load: gr.File


def build_export_panel() -> ExportPanel:
    with gr.Row():
        json_btn = gr.Button("Export trace JSON", elem_id="ot-export-json")
        html_btn = gr.Button("Export HTML report", elem_id="ot-export-html")
    files = gr.File(label="Exported files", file_count="multiple", interactive=False, elem_id="ot-exports")
    load = gr.File(label="Load a JSON trace (as exported) to explore it", file_types=[".json"],
                   elem_id="ot-load-trace", height=110)
    return ExportPanel(json_btn, html_btn, files, load)


def make_export_handlers(ctx: ViewContext) -> tuple[Callable, Callable, Callable]:
    def on_json(session: Session):
        try:
            return [export_json(session)]
        except InputError as exc:
            raise gr.Error(str(exc), title="Export") from exc

    def on_html(session: Session):
        try:
            return [export_html(ctx, session)]
        except InputError as exc:
            raise gr.Error(str(exc), title="Export") from exc

    def on_load(session: Session, path: str | None):
        try:
            load_trace(session, path)
        except InputError as exc:
            raise gr.Error(str(exc), title="Load trace") from exc
        return ctx.explorer(session)

    return on_json, on_html, on_load
