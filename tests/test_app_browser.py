"""The real UI in headless Chromium: compose, run, click, reverse lookup, export, injection, isolation.

Every highlight is checked against the engine's own result (the exported JSON, i.e. the
TraceResult the page shows). Chromium is Debian's, driven by the playwright package.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from omnitrace_core import TraceResult
from tests.components.app_harness import media_path, shared_app, shared_browser
from tests.components.synthetic import gallery_trace, synthetic_trace

pytestmark = [pytest.mark.browser, pytest.mark.slow]

INJECTION = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 1">'
LIT = """() => Array.from(document.querySelectorAll('#ot-explorer .ot-inputs .ot-lit')).map(e => ({
    unit: Number(e.dataset.unit), kind: e.className, s: Number(e.style.getPropertyValue('--ot-s'))}))"""
TILES = """item => Array.from(document.querySelectorAll(
    `#ot-explorer .ot-imgwrap[data-item="${item}"] .ot-tile`)).map(e => Number(e.style.getPropertyValue('--ot-h') || 0))"""
CITING = """() => Array.from(document.querySelectorAll('#ot-explorer .ot-sent.ot-cite')).map(e => Number(e.dataset.span))"""


@pytest.fixture(scope="module")
def browser(request):
    return shared_browser(request)  # first: without chromium, skip before launching anything


@pytest.fixture(scope="module")
def app(browser, tracer, request):
    return shared_app(tracer, request)


@pytest.fixture(scope="module")
def gallery_result(tracer):
    return gallery_trace(tracer)


def open_page(browser, app, width: int = 1400):
    context = browser.new_context(viewport={"width": width, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.goto(app.url)
    page.wait_for_selector("#ot-explorer .ot-root", timeout=30_000)
    return page


def rows(page) -> list[str]:
    return page.eval_on_selector_all(".ot-row[data-kind]", "els => els.map(e => e.dataset.kind)")


def wait_rows(page, count: int) -> None:
    page.wait_for_function("n => document.querySelectorAll('.ot-row[data-kind]').length === n", arg=count,
                           timeout=20_000)


def add_text(page, text: str) -> None:
    page.get_by_role("tab", name="Text").click()
    count = len(rows(page))
    page.fill("#ot-text-in textarea", text)
    page.click("#ot-add-text")
    wait_rows(page, count + 1)


def add_media(page, *names: str) -> None:
    page.get_by_role("tab", name="Media").click()
    count = len(rows(page))
    page.set_input_files("#ot-media-in input[type=file]", [str(media_path(n)) for n in names])
    wait_rows(page, count + len(names))


def set_p_min_off(page) -> None:
    page.get_by_text("Curation (instant").click()
    page.locator("#ot-use-pmin input").uncheck()


def run(page, tokens: int = 6) -> None:
    page.fill("#ot-max-new input[type=number]", str(tokens))
    page.press("#ot-max-new input[type=number]", "Enter")
    page.click("#ot-run")
    page.wait_for_selector('#ot-status [data-state="done"]', timeout=90_000)


def export_json(page, app) -> TraceResult:
    page.get_by_role("tab", name="Export / load").click()
    page.locator("#ot-exports a").evaluate_all("els => els.forEach(e => e.remove())")
    page.click("#ot-export-json")
    link = page.wait_for_selector("#ot-exports a[href$='.json']", timeout=20_000)
    response = page.request.get(link.get_attribute("href"))
    page.get_by_role("tab", name="Explore").click()
    return TraceResult.from_json(response.text())


def load_trace(page, path) -> None:
    page.get_by_role("tab", name="Export / load").click()
    page.set_input_files("#ot-load-trace input[type=file]", str(path))
    page.get_by_role("tab", name="Explore").click()


def click_sentence(page, index: int) -> None:
    page.locator(f'#ot-explorer .ot-sent[data-span="{index}"]').click()
    page.wait_for_selector(f'#ot-explorer .ot-sent.ot-sel[data-span="{index}"]', timeout=5_000)


def assert_lights_match(page, result: TraceResult, index: int) -> None:
    """What is lit after clicking sentence ``index`` equals its curated sources."""
    span = result.spans[index]
    lit = page.evaluate(LIT)
    assert sorted(e["unit"] for e in lit) == sorted(s.unit for s in span.sources)
    expected_class = {"text": "ot-unit", "image": "ot-imgwrap", "audio": "ot-seg", "video": "ot-seg"}
    for source in span.sources:
        element = next(e for e in lit if e["unit"] == source.unit)
        assert expected_class[source.modality] in element["kind"]
        assert element["s"] == pytest.approx(source.share, abs=1e-3)
        if source.tile_scores is not None:
            assert page.evaluate(TILES, source.item) == pytest.approx(list(source.tile_scores), abs=1e-3)


@pytest.fixture(scope="module")
def traced(app, browser):
    """A page where an interleaved input was composed through the UI and traced (p_min off)."""
    page = open_page(browser, app)
    add_text(page, "A red house stands in a field. The sun shines.")
    add_media(page, "scene.png")
    add_text(page, "Remove me.")
    add_text(page, "Listen to the clicks, then watch the car.")
    add_media(page, "chirp.wav", "traffic.mp4")
    assert rows(page) == ["text", "image", "text", "text", "audio", "video"]
    page.locator(".ot-itemrow").nth(2).locator(".ot-rm").click()
    wait_rows(page, 5)
    page.locator(".ot-itemrow").nth(4).locator(".ot-up").click()  # video before audio
    page.wait_for_function("() => document.querySelectorAll('.ot-row[data-kind]')[3].dataset.kind === 'video'")
    assert rows(page) == ["text", "image", "text", "video", "audio"]
    set_p_min_off(page)
    run(page)
    result = export_json(page, app)
    yield page, result
    page.context.close()


def test_composed_input_is_traced_in_order(traced):
    page, result = traced
    assert [i.modality for i in result.items] == ["text", "image", "text", "video", "audio"]
    assert not result.curation.use_p_min
    assert page.locator("#ot-explorer .ot-sent").count() == len(result.spans) >= 1


def test_clicking_a_sentence_lights_its_sources(traced):
    page, result = traced
    for span in result.spans:
        click_sentence(page, span.index)
        assert_lights_match(page, result, span.index)
        detail = page.inner_text("#ot-explorer .ot-detail")
        assert f"Sentence {span.index + 1}" in detail
        assert page.locator("#ot-explorer .ot-detail tr[data-token]").count() == span.token_end - span.token_start


def test_token_drill_down(traced):
    page, result = traced
    span = result.spans[0]
    click_sentence(page, 0)
    units, confidence = result.token_trace()
    cells = page.eval_on_selector_all("#ot-explorer .ot-detail tr[data-token]",
                                      "rows => rows.map(r => Array.from(r.cells).map(c => c.textContent.trim()))")
    sources = page.eval_on_selector_all("#ot-explorer .ot-detail td.ot-toksrc", """cells => cells.map(c => {
        const name = c.querySelector('.ot-srcname'); return name ? name.title : c.textContent.trim(); })""")
    for t, cells_of, source in zip(range(span.token_start, span.token_end), cells, sources):
        token = result.tokens[t]
        assert cells_of[1] == token.pos
        assert float(cells_of[2]) == pytest.approx(result.curation.pos_weight(token.pos), abs=0.01)
        assert source == (result.units[units[t]].label if units[t] >= 0 else "(none)")
        assert float(cells_of[4]) == pytest.approx(confidence[t], abs=1e-3)
    page.locator("#ot-explorer .ot-detail tr[data-token]").first.click()
    assert page.locator("#ot-explorer .ot-detail tr.ot-tokfocus").count() == 1


def test_reverse_lookup_from_a_source(traced):
    page, result = traced
    cited = {s.unit for span in result.spans for s in span.sources}
    unit = min(cited)
    page.locator(f'#ot-explorer .ot-inputs [data-unit="{unit}"]').first.click()
    expected = sorted(span.index for span in result.spans if unit in {s.unit for s in span.sources})
    assert sorted(page.evaluate(CITING)) == expected
    assert f"Drawn on by {len(expected)} sentence" in page.inner_text("#ot-explorer .ot-detail")
    uncited = [u.index for u in result.units if u.index not in cited]
    if uncited:
        page.locator(f'#ot-explorer .ot-inputs [data-unit="{uncited[0]}"]').first.click()
        assert page.evaluate(CITING) == []
        assert "No output sentence draws on this source" in page.inner_text("#ot-explorer .ot-detail")


def test_all_modalities_light_up_and_segments_seek(app, browser, gallery_result, tmp_path):
    synthetic = synthetic_trace(gallery_result)
    path = tmp_path / "synthetic.json"
    synthetic.save(path)
    page = open_page(browser, app)
    set_p_min_off(page)  # the synthetic trace is curated with p_min off too
    load_trace(page, path)
    page.wait_for_selector('#ot-explorer .ot-sent[data-span="4"]', timeout=20_000)
    for span in synthetic.spans:
        click_sentence(page, span.index)
        assert_lights_match(page, synthetic, span.index)
    modalities = {s.modality for span in synthetic.spans for s in span.sources}
    assert modalities == {"text", "image", "audio", "video"}
    weak = page.locator("#ot-explorer .ot-sent.ot-weak")
    assert weak.count() == 1 and weak.get_attribute("data-span") == "4"
    click_sentence(page, 4)
    assert "No strong source" in page.inner_text("#ot-explorer .ot-detail")
    # clicking an audio / a video segment seeks its player and shows the sentences using it
    for modality in ("audio", "video"):
        unit = next(s for span in synthetic.spans for s in span.sources if s.modality == modality)
        segment = page.locator(f'#ot-explorer .ot-seg[data-unit="{unit.unit}"]')
        segment.click()
        player = page.locator(f'#ot-explorer .ot-item[data-item="{unit.item}"] .ot-player')
        assert float(player.get_attribute("data-seeked")) == pytest.approx(unit.time_start)
        page.wait_for_function("el => Math.abs(el.currentTime - Number(el.dataset.seeked)) < 0.05",
                               arg=player.element_handle(), timeout=10_000)
        expected = [span.index for span in synthetic.spans if unit.unit in {s.unit for s in span.sources}]
        assert sorted(page.evaluate(CITING)) == expected
    page.context.close()


def test_export_round_trip_and_offline_report(app, browser, gallery_result, tmp_path):
    synthetic = synthetic_trace(gallery_result)
    path = tmp_path / "in.json"
    synthetic.save(path)
    page = open_page(browser, app)
    set_p_min_off(page)
    load_trace(page, path)
    page.wait_for_selector('#ot-explorer .ot-sent[data-span="4"]', timeout=20_000)
    exported = export_json(page, app)
    assert exported.to_dict()["spans"] == synthetic.to_dict()["spans"]
    assert exported.to_dict()["atom_sum"] == synthetic.to_dict()["atom_sum"]
    page.get_by_role("tab", name="Export / load").click()
    page.click("#ot-export-html")
    link = page.wait_for_selector("#ot-exports a[href$='.html']", timeout=20_000)
    report = tmp_path / "report.html"
    report.write_text(page.request.get(link.get_attribute("href")).text(), encoding="utf-8")
    page.context.close()

    offline = browser.new_context(viewport={"width": 1300, "height": 900})
    offline.set_offline(True)
    view = offline.new_page()
    view.goto(report.as_uri())
    view.wait_for_selector("#ot-report .ot-sent")
    for span in synthetic.spans:
        view.locator(f'#ot-report .ot-sent[data-span="{span.index}"]').click()
        lit = view.evaluate(LIT.replace("#ot-explorer", "#ot-report"))
        assert sorted(e["unit"] for e in lit) == sorted(s.unit for s in span.sources)
    assert view.locator("#ot-report .ot-imgwrap img").first.get_attribute("src").startswith("data:image/jpeg")
    offline.close()


def test_html_in_user_text_and_model_output_is_shown_not_run(app, browser, gallery_result, tmp_path):
    page = open_page(browser, app)
    add_text(page, f"User says {INJECTION} here.")
    assert "<script>window.__pwned = 1</script>" in page.inner_text(".ot-itemlist")
    run(page, tokens=2)
    assert INJECTION in page.inner_text("#ot-explorer .ot-inputs")
    # a model output with markup: a synthetic trace whose sentences carry it
    poisoned = synthetic_trace(gallery_result, sentences=((f"Model says {INJECTION} loudly.", "text"),
                                                          (f"And {INJECTION}!", "image")))
    path = tmp_path / "poisoned.json"
    poisoned.save(path)
    load_trace(page, path)
    page.wait_for_selector('#ot-explorer .ot-sent[data-span="1"]', timeout=20_000)
    click_sentence(page, 0)
    assert f"Model says {INJECTION} loudly." in page.inner_text("#ot-explorer .ot-output")
    assert f"Model says {INJECTION} loudly." in page.inner_text("#ot-explorer .ot-detail")
    time.sleep(0.3)  # give an injected handler every chance to fire
    assert page.evaluate("() => window.__pwned") is None
    assert page.locator("#ot-explorer script, #ot-explorer img[src='x']").count() == 0
    page.context.close()


def test_two_browser_sessions_do_not_see_each_other(app, browser):
    first, second = open_page(browser, app), open_page(browser, app)
    add_text(first, "Marker one: a field of red tulips.")
    add_text(second, "Marker two: a harbour full of boats.")
    first.fill("#ot-max-new input[type=number]", "3")
    second.fill("#ot-max-new input[type=number]", "3")
    first.click("#ot-run")
    second.click("#ot-run")
    for page in (first, second):
        page.wait_for_selector('#ot-status [data-state="done"]', timeout=90_000)
    one, two = first.inner_text("#ot-explorer"), second.inner_text("#ot-explorer")
    assert "Marker one" in one and "Marker two" not in one
    assert "Marker two" in two and "Marker one" not in two
    assert rows(first) == ["text"] and rows(second) == ["text"]
    first.context.close()
    second.context.close()


def test_gallery_example_runs_in_one_click(app, browser):
    page = open_page(browser, app)
    page.locator("#ot-gallery").get_by_text("MMAU").click()
    page.wait_for_selector('#ot-status [data-state="done"]', timeout=90_000)
    assert rows(page) == ["text", "text", "audio"]
    assert page.locator("#ot-explorer .ot-kind-audio .ot-seg").count() >= 2
    payload = json.loads(page.get_attribute("#ot-explorer .ot-root", "data-payload"))
    assert payload["signal"] == "attmean" and payload["tokens"]
    assert re.search(r"\d+ tokens traced", page.inner_text("#ot-status"))
    page.context.close()


def _set_speech_units(page, item: str, units: str, listed: str) -> None:
    """In the Speech tab, give ``item`` the ``units`` option and wait for the item list to say ``listed``."""
    page.locator("#ot-speech-item input").click()
    page.get_by_role("option", name=item, exact=False).click()
    page.get_by_label(units).check()
    page.click("#ot-speech-apply")
    page.wait_for_function(f"() => document.querySelector('.ot-itemlist').innerText.includes({listed!r})",
                           timeout=20_000)


def test_speech_tab_sets_an_items_source_units(app, browser, tmp_path):
    page = open_page(browser, app)
    add_text(page, "What do you hear?")
    add_media(page, "chirp.wav")
    page.get_by_role("tab", name="Speech").click()
    _set_speech_units(page, "#2 chirp.wav", "Speech recognition (ASR)", "speech (ASR)")
    srt = tmp_path / "chirp.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:02,500\nTwo clicks.\n")
    page.set_input_files("#ot-transcript-in input[type=file]", str(srt))
    _set_speech_units(page, "#2 chirp.wav", "Transcript file", "transcript chirp.srt")
    page.context.close()


PROBE = ('<a href="https://evil.example/">Session expired: sign in</a><input type=password placeholder=pw>'
         '<img src=x onerror="window.__pwned = 1">')
TOASTS = "() => Array.from(document.querySelectorAll('[data-testid=toast-text]')).map(e => e.textContent)"


def toast_with(page, text: str) -> str:
    page.wait_for_function("t => Array.from(document.querySelectorAll('[data-testid=toast-text]'))"
                           ".some(e => e.textContent.includes(t))", arg=text, timeout=20_000)
    return next(t for t in page.evaluate(TOASTS) if text in t)


def test_popups_show_untrusted_text_literally(app, browser, gallery_result, tmp_path):
    """A trace field and a sample id echoed into error pop-ups stay text: no link, form field or image."""
    page = open_page(browser, app)
    trace = gallery_result.to_dict() | {"schema_version": PROBE}
    path = tmp_path / "probe.json"
    path.write_text(json.dumps(trace), encoding="utf-8")
    load_trace(page, path)
    assert PROBE in toast_with(page, "schema_version")
    samples = tmp_path / "samples.json"
    samples.write_text(json.dumps([{"id": PROBE, "task": "qa", "question": [{"text": "What is shown?"},
                                                                          {"image": "media/missing.png"}]}]))
    page.get_by_role("tab", name="Sample file").click()
    page.set_input_files("#ot-sample-in input[type=file]", str(samples))
    page.wait_for_function("() => document.querySelector('#ot-sample-key input').value.includes('evil')",
                           timeout=20_000)
    page.click("#ot-load-sample")
    assert f"sample {PROBE}:qa" in toast_with(page, "missing.png")
    time.sleep(0.3)  # give an injected handler every chance to fire
    assert page.locator("[data-testid=toast-body] :is(a, input, img, form)").count() == 0
    assert page.evaluate("() => window.__pwned") is None
    page.context.close()


def test_a_rejected_upload_leaves_the_media_box_and_is_reported_once(app, browser, tmp_path):
    page = open_page(browser, app)
    page.get_by_role("tab", name="Media").click()
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really" * 10)
    page.set_input_files("#ot-media-in input[type=file]", str(broken))
    toast_with(page, "broken.png")
    page.wait_for_function("() => !document.querySelector('#ot-media-in').innerText.includes('broken')",
                           timeout=10_000)
    add_media(page, "scene.png")  # a later upload does not send the rejected file again
    assert rows(page) == ["image"]
    time.sleep(1.0)
    assert sum("broken.png" in text for text in page.evaluate(TOASTS)) == 1  # one message, not a warning and an error
    assert "scene" not in page.inner_text("#ot-media-in")
    page.context.close()


def test_stop_pressed_while_a_run_waits_in_the_queue_cancels_it(app, browser):
    """Both model slots busy (concurrency 2): a third run waits; Stop there means it never starts."""
    waiting = open_page(browser, app)
    add_text(waiting, "Marker: this run must not start.")
    busy = [open_page(browser, app) for _ in range(app.settings.concurrency)]
    for page in busy:
        add_text(page, "Tell a long story about a house.")
        page.fill("#ot-max-new input[type=number]", str(app.settings.limits.max_new_tokens))
        page.press("#ot-max-new input[type=number]", "Enter")
    for page in busy:
        page.click("#ot-run")
    status = "() => document.querySelector('#ot-status').textContent"
    for page in busy:
        page.wait_for_function(f"() => ({status})().includes('Writing')", timeout=60_000)
    waiting.click("#ot-run")
    waiting.wait_for_function(f"() => ({status})().includes('Waiting')", timeout=10_000)
    waiting.click("#ot-stop")
    waiting.wait_for_function(f"() => ({status})().includes('will not start')", timeout=10_000)
    assert all("Writing" in page.evaluate(status) for page in busy), "the busy runs ended before Stop: inconclusive"
    for page in busy:
        page.click("#ot-stop")
    waiting.wait_for_function(f"() => ({status})().includes('before it started')", timeout=90_000)
    assert waiting.locator('#ot-status [data-state="stopped"]').count() == 1
    assert waiting.locator("#ot-explorer .ot-sent").count() == 0  # nothing was generated
    for page in busy + [waiting]:
        page.context.close()


WHERE_VISIBLE = """sel => Array.from(document.querySelectorAll(sel)).map(e => {
    const cell = e.closest('td, .ot-src'), r = e.getBoundingClientRect(), c = cell.getBoundingClientRect();
    return {text: e.textContent, inside: r.left >= c.left - 0.5 && r.right <= c.right + 0.5,
            whole: e.scrollWidth <= e.clientWidth + 1};
})"""


def test_sources_show_what_tells_them_apart_at_1280_px(app, browser, gallery_result, tmp_path):
    synthetic = synthetic_trace(gallery_result)
    path = tmp_path / "synthetic.json"
    synthetic.save(path)
    page = open_page(browser, app, width=1280)
    set_p_min_off(page)
    load_trace(page, path)
    page.wait_for_selector('#ot-explorer .ot-sent[data-span="4"]', timeout=20_000)
    units, _ = synthetic.token_trace()
    for span in synthetic.spans[:4]:
        click_sentence(page, span.index)
        listed = page.evaluate(WHERE_VISIBLE, "#ot-explorer .ot-srclist .ot-where")
        expected = [f"{s.time_start:.1f}\u2013{s.time_end:.1f} s" for s in span.sources if s.time_start is not None]
        assert [e["text"] for e in listed if "\u2013" in e["text"]] == expected
        in_table = page.evaluate(WHERE_VISIBLE, "#ot-explorer .ot-toktable .ot-where")
        timed = [synthetic.units[units[t]] for t in range(span.token_start, span.token_end)
                 if units[t] >= 0 and synthetic.units[units[t]].time_start is not None]
        assert [e["text"] for e in in_table if "\u2013" in e["text"]] == [
            f"{u.time_start:.1f}\u2013{u.time_end:.1f} s" for u in timed]
        for entry in listed + in_table:  # shown whole, inside its button or cell
            assert entry["inside"] and entry["whole"], entry
    video = [s for s in synthetic.spans[3].sources if s.modality == "video"]
    assert len({f"{s.time_start}-{s.time_end}" for s in video}) == len(video) >= 2
    page.context.close()


def test_sample_picker_and_file_list_fit_the_column_at_1280_px(app, browser, tmp_path):
    from PIL import Image

    names = [f"slide-{k}.png" for k in range(9)]
    for name in names:
        Image.new("RGB", (32, 24), (40 * (int(name[6]) % 6), 90, 160)).save(tmp_path / name)
    samples = tmp_path / "deck.json"
    samples.write_text(json.dumps([{"id": 1, "task": "summarization", "source_dataset": "MMDialog",
                                    "question": [{"text": "Summarise."}, *({"image": f"media/{n}"} for n in names)]}]))
    page = open_page(browser, app, width=1280)
    page.get_by_role("tab", name="Sample file").click()
    page.set_input_files("#ot-sample-in input[type=file]", [str(samples)] + [str(tmp_path / n) for n in names])
    page.wait_for_function("() => document.querySelector('#ot-sample-key input').value.startsWith('1:')",
                           timeout=20_000)
    listed = page.evaluate("""() => { const box = document.querySelector('#ot-sample-in');
        const rows = Array.from(box.querySelectorAll('tr')), b = box.getBoundingClientRect();
        return rows.filter(r => { const q = r.getBoundingClientRect(); return q.height > 0 && q.top >= b.top - 1
                                  && q.bottom <= b.bottom + 1; }).length; }""")
    assert listed == 1 + len(names)  # every uploaded file is in view, none scrolled away
    key_fits = page.evaluate("""() => { const input = document.querySelector('#ot-sample-key input');
        const probe = document.createElement('span');
        probe.style.cssText = 'position:absolute; display:inline-block; visibility:hidden; white-space:pre';
        probe.style.font = getComputedStyle(input).font; probe.textContent = input.value.split(' ')[0];
        document.body.appendChild(probe);
        const fits = probe.getBoundingClientRect().width < input.clientWidth; probe.remove(); return fits; }""")
    assert key_fits  # the sample's key (id:task) is shown whole
    page.context.close()
