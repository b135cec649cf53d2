"""The Runs tab and the research views in headless Chromium, checked against the stored traces.

A real batch run (tiny model, the CLI's loop: two signals, head masses, one errored sample) and its
ground truth are uploaded with the samples file and media; the table is sorted and filtered, a row
opens its sample in the explorer, and its highlights, the expected-source outlines, the layer x head
heat map and the view behind the curated list are compared with the stored ``TraceResult``.
"""

from __future__ import annotations

import json
import os
from html import unescape

import pytest

from components.runs_panel import read_run
from tests.components.app_harness import shared_app, shared_browser
from tests.components.run_files import write_run
from tests.test_app_browser import LIT, assert_lights_match, click_sentence, open_page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TABLE_KEYS = "() => Array.from(document.querySelectorAll('#ot-runs-table tr[data-key]')).map(r => r.dataset.key)"
SCREENSHOTS = os.environ.get("OMNITRACE_SCREENSHOTS")  # a folder: save 1280 px screenshots there


@pytest.fixture(scope="module")
def browser(request):
    return shared_browser(request)


@pytest.fixture(scope="module")
def app(browser, tracer, request):
    return shared_app(tracer, request)


@pytest.fixture(scope="module")
def run_files(tracer, tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("browser_run"), tracer)


def wait_keys(page, keys: list[str]) -> None:
    page.wait_for_function(f"keys => JSON.stringify(({TABLE_KEYS})()) === JSON.stringify(keys)", arg=keys,
                           timeout=20_000)


def shot(page, name: str) -> None:
    if SCREENSHOTS:
        page.mouse.move(0, 0)
        page.wait_for_timeout(400)
        page.screenshot(path=os.path.join(SCREENSHOTS, name), full_page=True)


@pytest.fixture(scope="module")
def loaded(app, browser, run_files):
    page = open_page(browser, app, width=1280)
    page.get_by_role("tab", name="Runs").click()
    page.set_input_files("#ot-run-files input[type=file]", [str(p) for p in run_files.upload])
    wait_keys(page, ["a:caption", "b:qa", "c:caption", "d:qa", "e:qa"])
    yield page
    page.context.close()


def test_the_table_sorts_and_filters(loaded, run_files):
    page = loaded
    run = read_run(run_files.upload)
    summary = page.inner_text("#ot-run-summary")
    assert "5 samples, 4 traced" in summary and "ground truth loaded" in summary
    assert "absent.png" in page.inner_text('#ot-runs-table tr[data-key="d:qa"]')
    shot(page, "runs_table.png")
    page.click('#ot-runs-table [data-sort="f1"]')  # numbers sort largest first
    wait_keys(page, [r.key for r in run.query(sort="f1", descending=True).rows])
    page.click('#ot-runs-table [data-sort="f1"]')
    wait_keys(page, [r.key for r in run.query(sort="f1", descending=False).rows])
    page.fill("#ot-run-filter input, #ot-run-filter textarea", "caption")
    page.press("#ot-run-filter input, #ot-run-filter textarea", "Enter")
    wait_keys(page, [r.key for r in run.query(text="caption", sort="f1").rows])
    assert "2 of 5 samples" in page.inner_text("#ot-runs-table .ot-pager")
    page.fill("#ot-run-filter input, #ot-run-filter textarea", "")
    page.press("#ot-run-filter input, #ot-run-filter textarea", "Enter")
    wait_keys(page, [r.key for r in run.query(sort="f1").rows])


def test_a_row_opens_its_sample_with_the_stored_trace(loaded, run_files):
    page = loaded
    stored = run_files.results()["e:qa"]
    page.click('#ot-runs-table tr[data-key="e:qa"]')
    page.wait_for_function("() => document.querySelector('#ot-explorer .ot-root') && "
                           "document.querySelector('#ot-explorer .ot-root').offsetParent !== null", timeout=20_000)
    page.wait_for_selector("#ot-explorer .ot-sent", timeout=20_000)
    payload = json.loads(unescape(page.get_attribute("#ot-explorer .ot-root", "data-payload")))
    assert payload["signal"] == "attmean" and len(payload["spans"]) == len(stored.spans)
    # the sample's image, found through the uploaded samples file, is shown
    assert page.locator("#ot-explorer .ot-imgwrap img").first.get_attribute("src").startswith("data:image/jpeg")
    image_unit = next(u.index for u in stored.units if u.modality == "image")
    for span in stored.spans:
        click_sentence(page, span.index)
        assert_lights_match(page, stored, span.index)
        gold = page.eval_on_selector_all("#ot-explorer .ot-inputs .ot-gold",
                                         "els => els.map(e => Number(e.dataset.unit))")
        assert gold == [image_unit]  # the labels expect the image, outlined
        marks = page.eval_on_selector_all("#ot-explorer .ot-goldlist li", "els => els.map(e => e.textContent)")
        traced = image_unit in {s.unit for s in span.sources}
        assert len(marks) == 1 and marks[0].endswith("traced" if traced else "missed")
    # Signal shown offers the run's other file
    assert "attraw" in page.inner_text("#ot-view-signal") or page.locator("#ot-view-signal").count() == 1


def test_the_layer_and_head_map_follows_the_clicked_sentence(loaded, run_files):
    page = loaded
    stored = run_files.results()["e:qa"]
    page.get_by_role("button", name="Layers and heads").click()
    click_sentence(page, 0)
    unit = stored.spans[0].sources[0].unit if stored.spans[0].sources else None
    page.wait_for_selector("#ot-heads-map .ot-hcell", timeout=20_000)
    shown = int(page.get_attribute("#ot-heads-map .ot-heads", "data-unit"))
    if unit is not None:
        assert shown == unit
    grid = stored.head_map(shown, span=0)
    cells = page.eval_on_selector_all("#ot-heads-map .ot-hcell", """els => els.map(e => [Number(e.dataset.layer),
        Number(e.dataset.head), Number(e.dataset.v)])""")
    assert len(cells) == grid.size
    for layer, head, value in cells:
        assert value == pytest.approx(grid[stored.heads.layers.index(layer), head], abs=1e-5)


def test_behind_the_curated_list(loaded, run_files):
    page = loaded
    stored = run_files.results()["e:qa"]
    click_sentence(page, 0)
    page.locator("#ot-explorer details.ot-behind summary").click()
    rows = page.eval_on_selector_all("#ot-explorer .ot-behindtable tr[data-behind-unit]", """els => els.map(e =>
        [Number(e.dataset.behindUnit), e.dataset.outcome])""")
    shares = stored.span_shares(0)
    assert rows[:len(shares.decisions)] == [[d.unit, d.outcome] for d in shares.decisions]
    assert page.locator("#ot-explorer .ot-behindtable .ot-bpmin").count() == len(rows)  # p_min drawn on each bar
    lit = page.evaluate(LIT)
    assert sorted(e["unit"] for e in lit) == sorted(s.unit for s in stored.spans[0].sources)
    shot(page, "runs_opened.png")
