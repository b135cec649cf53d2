"""The repaint benchmark runs in headless Chromium and checks what every click lit (no timing asserts)."""

from __future__ import annotations

import pytest

from tools.bench_repaint import build_trace, measure
from tests.components.app_harness import shared_browser


def test_build_trace_has_the_requested_shape(tracer):
    result = build_trace(tracer, sentences=12, units=20)
    assert len(result.spans) == 12
    assert len(result.units) == 20
    assert {u.modality for u in result.units} == {"text", "image", "audio", "video"}
    assert all(1 <= len(span.sources) <= 4 for span in result.spans)


@pytest.mark.browser
def test_every_click_lights_its_sentence_and_sources(tracer, request):
    # the session's one browser: a second sync playwright cannot start while that one is open
    figures = measure(build_trace(tracer, sentences=8, units=20), rounds=1, browser=shared_browser(request))
    assert figures.all_lit and figures.clicks == 8 and figures.sentences == 8
    assert 0 < figures.median_ms <= figures.p95_ms <= figures.max_ms
    assert "| 8 | 20 | 8 |" in figures.table()
