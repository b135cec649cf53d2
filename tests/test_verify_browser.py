"""Verify in headless Chromium: what the page shows is the exported trace's ``result.verification``.

A sentence is clicked and verified, then every sentence with the image's tile maps; the effects
beside the sources, the effect chart, the flags, the checks and the tile-effect map are read from
the page and compared with the exported JSON; the offline report replays them; Stop during
Verify all keeps what was measured. ``OMNITRACE_SCREENSHOTS=DIR`` saves 1280 px screenshots.
"""

from __future__ import annotations

import os
import time

import pytest

from tests import media_files
from tests.components.app_harness import shared_app, shared_browser
from tests.test_app_browser import INJECTION, add_media, add_text, click_sentence, export_json, open_page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREENSHOTS = os.environ.get("OMNITRACE_SCREENSHOTS")
TEXT = (f"The kite is red. The drum is blue. A note says {INJECTION} twice. The sky is grey. The cat sleeps. "
        "The boat floats.")
ANSWER = "A red kite flies. A blue drum plays."
STATUS = "() => document.querySelector('#ot-status').textContent"
EFFECTS = """() => Array.from(document.querySelectorAll(
    '#ot-explorer .ot-srclist .ot-eff[data-effect-unit]')).map(e => ({
    unit: Number(e.dataset.effectUnit), v: e.dataset.effect === undefined ? null : Number(e.dataset.effect)}))"""
CHART = """() => Array.from(document.querySelectorAll('#ot-explorer .ot-vrow')).map(r => ({
    unit: Number(r.dataset.vunit), v: Number(r.dataset.v), cited: r.classList.contains('ot-vcited'),
    label: r.querySelector('.ot-srcname') ? r.querySelector('.ot-srcname').title : ''}))"""
FLAGS = """kind => Array.from(document.querySelectorAll(
    `#ot-explorer .ot-vflag[data-flag="${kind}"] .ot-vchip`)).map(c => Number(c.dataset.unit))"""
TILE_EFFECTS = """unit => Array.from(document.querySelectorAll(
    `#ot-explorer .ot-vpair[data-tilemap-unit="${unit}"] .ot-vtile`)).map(t => Number(t.dataset.v))"""


@pytest.fixture(scope="module")
def browser(request):
    return shared_browser(request)


@pytest.fixture(scope="module")
def app(browser, tracer, request):
    return shared_app(tracer, request)


def shot(page, name: str) -> None:
    if SCREENSHOTS:
        page.mouse.move(0, 0)
        page.wait_for_timeout(400)
        page.screenshot(path=os.path.join(SCREENSHOTS, name), full_page=True)


def traced_page(browser, app, image=None):
    """A 1280 px page with text and an image (default: the examples' scene.png, 6x8 tiles; or the file
    ``image``) composed and a two-sentence answer traced (as given)."""
    page = open_page(browser, app, width=1280)
    add_text(page, TEXT)
    if image is None:
        add_media(page, "scene.png")
    else:
        page.get_by_role("tab", name="Media").click()
        page.set_input_files("#ot-media-in input[type=file]", str(image))
        page.wait_for_function("() => document.querySelectorAll('.ot-row[data-kind]').length === 2", timeout=20_000)
    page.fill("#ot-answer textarea", ANSWER)
    page.click("#ot-run")
    page.wait_for_selector('#ot-status [data-state="done"]', timeout=90_000)
    return page


def verify(page, button: str, expect: str) -> None:
    page.click(button)
    page.wait_for_function(f"t => ({STATUS})().includes(t)", arg=expect, timeout=180_000)


def assert_page_shows(page, result, k: int) -> None:
    """The clicked sentence's detail panel shows exactly what ``result.verification`` holds for it."""
    v = result.verification
    curated = [s.unit for s in result.spans[k].sources]
    shown = page.evaluate(EFFECTS)
    assert [e["unit"] for e in shown] == curated
    for entry in shown:
        assert entry["v"] == pytest.approx(v.effect(k, entry["unit"]), abs=1e-3)
    chart = page.evaluate(CHART)
    assert sorted(r["unit"] for r in chart) == sorted(v.units)
    assert [r["v"] for r in chart] == sorted((r["v"] for r in chart), reverse=True)
    for row in chart:
        assert row["v"] == pytest.approx(v.effect(k, row["unit"]), abs=1e-3)
        assert row["cited"] == (row["unit"] in curated)
        assert row["label"] == result.units[row["unit"]].label
    flags = v.flags(k, curated)
    for kind in ("cited_no_effect", "uncited_strong"):
        assert page.evaluate(FLAGS, kind) == list(flags[kind])
    check = v.check(k)
    comprehensiveness = page.locator('#ot-explorer dd[data-check="comprehensiveness"]')
    if check is None:
        assert comprehensiveness.count() == 0
    else:
        assert float(comprehensiveness.inner_text()) == pytest.approx(check.comprehensiveness["all"], abs=0.006)


def test_verify_the_clicked_sentence_then_all_with_tile_maps(app, browser, tmp_path):
    page = traced_page(browser, app)
    click_sentence(page, 1)
    assert "Not verified yet" in page.inner_text("#ot-explorer .ot-detail")
    verify(page, "#ot-verify-one", "Verified sentence 2")
    result = export_json(page, app)
    v = result.verification
    assert v.mode == "input" and [c.sentence for c in v.sentences] == [1] and len(v.units) == len(result.units)
    click_sentence(page, 1)
    assert_page_shows(page, result, 1)
    # the injected markup in a source label is shown as text in the chart, never run
    assert any("<script>window.__pwned" in r["label"] for r in page.evaluate(CHART))
    assert page.evaluate("() => window.__pwned") is None
    assert page.locator("#ot-explorer .ot-verify img[src='x'], #ot-explorer .ot-verify script").count() == 0
    shot(page, "verify_sentence.png")

    page.locator("#ot-verify-tiles input").check()
    verify(page, "#ot-verify-all", "Verified every sentence")
    result = export_json(page, app)
    v = result.verification
    image = next(u.index for u in result.units if u.modality == "image")
    assert [c.sentence for c in v.sentences] == [0, 1] and {t.sentence for t in v.tiles} == {0, 1}
    for k in (0, 1):
        click_sentence(page, k)
        assert_page_shows(page, result, k)
        assert page.evaluate(TILE_EFFECTS, image) == pytest.approx(list(v.tile_map(k, image).effects), abs=1e-3)
        assert page.locator(f'#ot-explorer .ot-vpair[data-tilemap-unit="{image}"] .ot-vfig').count() == 2
    assert "Verified (input mode)" in page.inner_text("#ot-explorer .ot-vcaption")
    flagged = [span.index for span in result.spans if any(v.flags(span.index, [s.unit for s in span.sources]).values())]
    marked = page.eval_on_selector_all("#ot-explorer .ot-sent.ot-vflagged",
                                       "els => els.map(e => Number(e.dataset.span))")
    assert marked == flagged
    shot(page, "verify_all_tiles.png")

    # the report replays it offline
    page.get_by_role("tab", name="Export / load").click()
    page.click("#ot-export-html")
    link = page.wait_for_selector("#ot-exports a[href$='.html']", timeout=20_000)
    report = tmp_path / "report.html"
    report.write_text(page.request.get(link.get_attribute("href")).text(), encoding="utf-8")
    page.context.close()
    offline = browser.new_context(viewport={"width": 1280, "height": 900})
    offline.set_offline(True)
    view = offline.new_page()
    view.goto(report.as_uri())
    view.wait_for_selector("#ot-report .ot-sent")
    view.locator('#ot-report .ot-sent[data-span="0"]').click()
    chart = view.evaluate(CHART.replace("#ot-explorer", "#ot-report"))
    assert {r["unit"]: r["v"] for r in chart} == {u: pytest.approx(v.effect(0, u), abs=1e-3) for u in v.units}
    tiles = view.evaluate(TILE_EFFECTS.replace("#ot-explorer", "#ot-report"), image)
    assert tiles == pytest.approx(list(v.tile_map(0, image).effects), abs=1e-3)
    assert "Not verified yet" not in view.inner_text("#ot-report")
    offline.close()


def test_a_loaded_verified_trace_shows_its_verification(app, browser, tracer, tmp_path):
    page = traced_page(browser, app)
    page.click("#ot-verify-mode label:has-text('knockout')")
    verify(page, "#ot-verify-all", "Verified every sentence")
    result = export_json(page, app)
    path = tmp_path / "verified.json"
    result.save(path)
    page.context.close()
    fresh = open_page(browser, app, width=1280)
    fresh.get_by_role("tab", name="Export / load").click()
    fresh.set_input_files("#ot-load-trace input[type=file]", str(path))
    fresh.get_by_role("tab", name="Explore").click()
    fresh.wait_for_selector("#ot-explorer .ot-vcaption:has-text('knockout mode')", timeout=20_000)
    click_sentence(fresh, 0)
    assert_page_shows(fresh, result, 0)
    fresh.context.close()


def test_stop_during_verify_all_keeps_what_was_measured(app, browser, tmp_path):
    # 8x8 tiles: 8 decoder calls; Stop is pressed in the first half of them
    page = traced_page(browser, app, media_files.write_image(tmp_path / "big.png", 448, 448, seed=5))
    page.locator("#ot-verify-tiles input").check()
    page.click("#ot-verify-all")
    # the unit effects are measured first; stop while the image's tiles are measured
    page.wait_for_function(f"""() => {{ const text = ({STATUS})(), done = /(\\d+)\\/(\\d+) forwards/.exec(text);
        return text.includes('tiles of') && done && 2 * Number(done[1]) < Number(done[2]); }}""", timeout=120_000)
    shot(page, "verify_progress.png")
    page.click("#ot-stop")
    page.wait_for_function(f"() => ({STATUS})().includes('Stopped: kept what was measured')", timeout=120_000)
    time.sleep(2.5)  # nothing overwrites the final status (Stop's own reply)
    assert "Stopped: kept what was measured" in page.evaluate(STATUS)
    result = export_json(page, app)
    v = result.verification
    assert result.items[1].grid == (8, 8)
    assert v.stopped and len(v.units) == len(result.units) and not v.tiles
    assert "stopped: what was measured is kept" in page.inner_text("#ot-explorer .ot-vcaption")
    click_sentence(page, 0)
    assert_page_shows(page, result, 0)
    assert page.locator("#ot-explorer .ot-vpair").count() == 0
    shot(page, "verify_stopped.png")
    page.context.close()
