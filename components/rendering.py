"""Glue between a session and the pure explorer view: media previews, captions, the status line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from omnitrace_core import TraceResult

from .explorer_view import esc, render_explorer
from .previews import PreviewCache, gradio_file_url
from .report import trace_caption
from .session import ComposedItem, Session
from .settings import EXAMPLES_DIR, InputLimits


def upload_roots() -> list[Path]:
    """Folders whose files the app may read for previews and serve: Gradio's uploads, our examples."""
    from gradio.utils import get_upload_folder

    return [Path(get_upload_folder()), EXAMPLES_DIR]


@dataclass(frozen=True)
class ViewContext:
    """What every panel needs to render the explorer.

    Attributes:
        model_name: the app's display name of its model, shown in the captions of its traces.
        device: "cuda" or "cpu".
        limits: media guards for preview decoding.
        roots: folders whose media may be previewed and served.
        model_id: the ``model_id`` the app's traces carry ("" when unknown).
    """

    model_name: str
    device: str
    limits: InputLimits
    roots: Sequence[Path]
    model_id: str = ""

    def previews(self, session: Session) -> PreviewCache:
        return session.preview_cache(lambda s: PreviewCache(self.roots, self.limits.media_limits(),
                                                            file_url=gradio_file_url))

    def model_label(self, result: TraceResult) -> str | None:
        """The app's name for a trace of its own model; None for any other trace (a loaded one),
        which is captioned with its own ``model_id``."""
        return self.model_name if self.model_id and result.model_id == self.model_id else None

    def caption(self, result: TraceResult) -> str:
        """Where the trace comes from: its model, backend, signal, schema (plain text)."""
        return trace_caption(result, self.model_label(result))

    def explorer(self, session: Session, result: TraceResult | None = None, *, items: Sequence[ComposedItem] = (),
                 pending: str = "", progress: float | None = None) -> str:
        """The explorer HTML for ``result`` (default: the session's shown result; before a result
        exists, the composed ``items`` and the text written so far)."""
        result = result if result is not None else session.shown()
        cache = self.previews(session)
        if result is None:
            infos = [item.info(k) for k, item in enumerate(items)]
            return render_explorer(None, cache.previews(infos), items=infos, pending=pending, progress=progress)
        return render_explorer(result, cache.for_result(result), pending=pending, progress=progress,
                               caption=self.caption(result), gold=session.gold)


def status_html(state: str, message: str, detail: str = "") -> str:
    """The status line under the Trace button. ``state``: idle, running, done, stopped or error."""
    extra = f'<span class="ot-status-detail">{esc(detail)}</span>' if detail else ""
    return f'<div class="ot-status" data-state="{esc(state)}"><span class="ot-status-dot"></span>{esc(message)}{extra}</div>'
