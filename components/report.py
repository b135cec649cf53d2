"""The self-contained HTML report: the explorer view, its CSS and JS, media embedded as data URIs.

It opens offline in any browser, without the app or a GPU, and replays the same clicks
(sentence -> sources, source -> sentences, token drill-down, seeking the players). A
Content-Security-Policy admits only the report's own script (by hash) and data: media, so
even text that slipped through escaping could not run.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Mapping

from omnitrace_core import TraceResult

from .explorer_view import MediaPreview, esc, render_explorer
from .previews import PreviewCache
from .settings import CSS_DIR, STATIC_DIR

MOUNT = "\notMount(document.getElementById('ot-report'));\n"


@lru_cache(maxsize=1)
def explorer_js() -> str:
    """The explorer's client script (shared with the app's gr.HTML): highlighting, then what a verification measured."""
    return "\n".join((STATIC_DIR / name).read_text(encoding="utf-8") for name in ("explorer.js", "verification.js"))


@lru_cache(maxsize=1)
def explorer_css() -> str:
    return (CSS_DIR / "explorer.css").read_text(encoding="utf-8")


_PAGE_CSS = """
body { margin: 0; background: #f3f4f6; font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; }
.ot-page { max-width: 1320px; margin: 0 auto; padding: 20px 24px 40px; }
.ot-page > header h1 { font-size: 20px; margin: 0 0 4px; }
.ot-page > header p { color: #6b7280; margin: 0 0 16px; font-size: 13px; }
"""


def _csp(script: str) -> str:
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    return (f"default-src 'none'; img-src data:; media-src data:; style-src 'unsafe-inline'; "
            f"script-src 'sha256-{digest}'")


def _curation_summary(result: TraceResult) -> str:
    c = result.curation
    parts = [f"token rule {c.token_rule}", f"POS weights {'on' if c.use_pos_weights else 'off'}",
             f"\u03b3 {c.gamma:g}" if c.use_confidence else "confidence shaping off",
             f"p_min {c.p_min:g}" if c.use_p_min else "p_min off",
             f"coverage {c.coverage:g}" if c.use_coverage else "coverage off",
             f"run coherence {'on' if c.use_run_coherence else 'off'}"]
    return ", ".join(parts)


def trace_caption(result: TraceResult, model_name: str | None = None) -> str:
    """One line of where a trace comes from (plain text: callers escape it).

    Args:
        result: the trace.
        model_name: a display name for ``result.model_id`` (the app's name of its own model); by
            default the trace's own ``model_id``.
    """
    parts = [str(model_name or result.model_id), f"backend {result.backend}", f"signal {result.signal}",
             f"schema v{result.schema_version}", f"{len(result.tokens)} tokens", f"stop: {result.stop_reason}"]
    seconds = result.timings.get("total_s")
    if isinstance(seconds, (int, float)) and seconds > 0:
        parts.append(f"{seconds:.1f} s")
    return " \u00b7 ".join(parts)


def render_report(result: TraceResult, previews: Mapping[int, MediaPreview], *, title: str = "OmniTrace report",
                  model_name: str | None = None) -> str:
    """The report as one HTML string (pure apart from reading the shipped CSS and JS).

    ``model_name``: a display name for the trace's own ``model_id`` (see :func:`trace_caption`).
    """
    script = explorer_js() + MOUNT
    created = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    caption = trace_caption(result, model_name)
    body = render_explorer(result, previews, caption=caption)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{esc(_csp(script))}\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{esc(title)}</title><style>{explorer_css()}{_PAGE_CSS}</style></head><body>"
        f"<div class=\"ot-page\"><header><h1>{esc(title)}</h1><p>{esc(caption)} \u00b7 curation: "
        f"{esc(_curation_summary(result))} \u00b7 exported {esc(created)}. Click a sentence to light up its sources; "
        f"click a source to see which sentences draw on it.</p></header>"
        f"<div id=\"ot-report\">{body}</div></div>"
        f"<script>{script}</script></body></html>\n"
    )


def write_report(result: TraceResult, path: str | Path, roots, limits, *, model_name: str | None = None) -> Path:
    """Write the report, embedding the media found inside ``roots`` as data URIs."""
    cache = PreviewCache(roots, limits, file_url=None)
    html = render_report(result, cache.for_result(result), model_name=model_name)
    path = Path(path)
    path.write_text(html, encoding="utf-8")
    return path
