"""Export the shown trace (engine JSON, or the offline HTML report) and load a JSON trace back."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from omnitrace_core import InputError, TraceResult

from . import alerts
from .input_checks import check_loaded_trace
from .rendering import ViewContext
from .report import write_report
from .session import Session

logger = logging.getLogger(__name__)


def _file_part(text: Any) -> str:
    """A safe piece of a file name (a loaded trace's model id or signal may hold any text, '/' included)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip(".-")[:40]


def _stem(result: TraceResult) -> str:
    model = _file_part(Path(str(result.model_id)).name) or "model"
    return f"omnitrace_{model}_{_file_part(result.signal) or 'trace'}"


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
    return str(write_report(result, path, ctx.roots, ctx.limits.media_limits(), model_name=ctx.model_label(result)))


def read_trace(path: str | None) -> TraceResult:
    """Read and check a JSON trace written by the engine (or by Export JSON).

    Raises:
        InputError: the file is not UTF-8 JSON, not a trace, disagrees with itself, or is too large
            to show (see ``check_loaded_trace``); the message names the file and what is wrong.
    """
    if not path:
        raise InputError("choose a .json trace file to load")
    name = Path(path).name
    if Path(path).suffix.lower() != ".json":
        raise InputError(f"'{name}' is not a .json trace file")
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"'{name}' is not UTF-8 text (byte {exc.start} cannot be read): a trace is the UTF-8 "
                         "JSON that Export trace JSON writes") from exc
    try:
        result = TraceResult.from_json(text)
        check_loaded_trace(result)
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError) as exc:  # InputError too
        raise InputError(f"'{name}' is not a trace this explorer can show: {exc}") from exc
    return result


def load_trace(session: Session, path: str | None) -> TraceResult:
    """Read a JSON trace (see ``read_trace``) and make it the shown trace."""
    result = read_trace(path)
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


def _reported(title: str, action: Callable[[], Any]) -> Any:
    """Run ``action``; any failure becomes a pop-up (unexpected ones are logged with their traceback)."""
    try:
        return action()
    except InputError as exc:
        raise alerts.error(exc, title=title) from exc
    except Exception as exc:  # a bug, or a file the checks let through: say so, keep serving
        logger.exception("%s failed", title)
        raise alerts.error(f"{title.lower()} failed: {type(exc).__name__}: {exc}", title=title) from exc


def make_export_handlers(ctx: ViewContext) -> tuple[Callable, Callable, Callable]:
    def on_json(session: Session):
        return _reported("Export", lambda: [export_json(session)])

    def on_html(session: Session):
        return _reported("Export", lambda: [export_html(ctx, session)])

    def on_load(session: Session, path: str | None):
        result = _reported("Load trace", lambda: read_trace(path))
        previous = session.adopt(result)
        try:
            return _reported("Load trace", lambda: ctx.explorer(session))
        except gr.Error:
            session.restore(previous)  # the trace shown before stays
            raise

    return on_json, on_html, on_load
