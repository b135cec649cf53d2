"""Glue between a session and the pure explorer view: media previews, captions, the status line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from omnitrace_core import TraceResult

from .explorer_view import esc, render_explorer
from .previews import PreviewCache, gradio_file_url
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
        model_name: shown in captions.
        device: "cuda" or "cpu".
        limits: media guards for preview decoding.
        roots: folders whose media may be previewed and served.
    """

    model_name: str
    device: str
    limits: InputLimits
    roots: Sequence[Path]

    def previews(self, session: Session) -> PreviewCache:
        return session.preview_cache(lambda s: PreviewCache(self.roots, self.limits.media_limits(),
                                                            file_url=gradio_file_url))

    def caption(self, result: TraceResult) -> str:
        timing = result.timings.get("total_s")
        parts = [self.model_name, f"signal {result.signal}", f"{len(result.tokens)} tokens", f"stop: {result.stop_reason}"]
        if timing:
            parts.append(f"{timing:.1f} s")
        return " \u00b7 ".join(parts)

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
                               caption=self.caption(result))


def status_html(state: str, message: str, detail: str = "") -> str:
    """The status line under the Trace button. ``state``: idle, running, done, stopped or error."""
    extra = f'<span class="ot-status-detail">{esc(detail)}</span>' if detail else ""
    return f'<div class="ot-status" data-state="{esc(state)}"><span class="ot-status-dot"></span>{esc(message)}{extra}</div>'
