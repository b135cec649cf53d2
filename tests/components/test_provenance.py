"""A trace is captioned with its own provenance (model, backend, signal, schema), escaped, in the page
and in the HTML report: a loaded trace of another model never carries the app's model name."""

from __future__ import annotations

import html
import re
from dataclasses import replace

import pytest

from components.export_panel import export_html
from components.rendering import ViewContext, upload_roots
from components.session import Session
from components.settings import InputLimits

APP_MODEL = "app's demo model"
FOREIGN = dict(model_id='Qwen/Qwen2.5-Omni-7B"><img src=x onerror=alert(1)>', backend="qwen2_5_omni<b>",
               signal="attgrads")


@pytest.fixture
def ctx(tracer):
    return ViewContext(model_name=APP_MODEL, device="cpu", limits=InputLimits(), roots=tuple(upload_roots()),
                       model_id=tracer.backend.model_id)


def captions(markup: str) -> list[str]:
    return re.findall(r'class="ot-caption">([^<]*)<', markup)


def shown(ctx: ViewContext, result) -> tuple[str, str]:
    """(explorer page, HTML report) of ``result`` loaded into a fresh session."""
    session = Session()
    session.adopt(result)
    try:
        page = ctx.explorer(session)
        with open(export_html(ctx, session), encoding="utf-8") as report:
            return page, report.read()
    finally:
        session.close()


def test_the_apps_own_trace_is_captioned_with_the_apps_model_name(ctx, gallery_result):
    page, report = shown(ctx, gallery_result)
    for markup in (page, report):
        caption = html.unescape(captions(markup)[0])
        assert caption.startswith(APP_MODEL)
        assert f"backend {gallery_result.backend}" in caption and f"signal {gallery_result.signal}" in caption
        assert f"schema v{gallery_result.schema_version}" in caption


def test_a_loaded_trace_of_another_model_shows_its_own_provenance_escaped(ctx, gallery_result):
    foreign = replace(gallery_result, **FOREIGN)
    page, report = shown(ctx, foreign)
    for markup in (page, report):
        assert "<img src=x" not in markup and "qwen2_5_omni<b>" not in markup
        assert APP_MODEL not in html.unescape(markup)
        caption = html.unescape(captions(markup)[0])
        assert caption.startswith(FOREIGN["model_id"])
        assert f"backend {FOREIGN['backend']}" in caption and "signal attgrads" in caption
        assert f"schema v{foreign.schema_version}" in caption
    header = re.search(r"<header>.*?</header>", report, flags=re.S).group(0)
    assert html.escape(FOREIGN["model_id"]) in header
