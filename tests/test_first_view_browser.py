"""What a new user sees first, in headless Chromium at 1440x900 and 1280x800: the examples table in
view, led by the demo model's examples, and "Signal shown" naming the signal a run will use."""

from __future__ import annotations

import pytest

from tests.components.app_harness import shared_app, shared_browser

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def browser(request):
    return shared_browser(request)  # first: without chromium, skip before launching anything


@pytest.fixture(scope="module")
def app(browser, tracer, request):
    return shared_app(tracer, request)


@pytest.mark.parametrize("width, height", [(1440, 900), (1280, 800)])
def test_the_first_view_shows_the_examples_and_the_signal(app, browser, width, height):
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.goto(app.url)
    page.wait_for_selector("#ot-explorer .ot-root", timeout=30_000)
    rows = page.locator("#ot-gallery tbody tr")
    # the examples table fills its rows after the explorer appears: wait until the first four have text
    page.wait_for_function("n => { const r = document.querySelectorAll('#ot-gallery tbody tr');"
                           " return r.length >= n && Array.from(r).slice(0, n).every(x => x.innerText.trim()); }",
                           arg=4, timeout=20_000)
    assert [rows.nth(k).inner_text().split(":")[0] for k in range(4)] == ["Text", "Image", "Audio", "Video"]
    for k in range(4):
        box = rows.nth(k).bounding_box()
        assert box is not None and box["y"] + box["height"] <= height, f"example row {k + 1} is below the fold"

    shown = page.locator("#ot-view-signal input")
    assert shown.input_value() == "attmean"
    page.locator("#ot-signal input").click()
    page.get_by_role("option", name="attraw", exact=True).click()
    page.wait_for_function("() => document.querySelector('#ot-view-signal input').value === 'attraw'",
                           timeout=10_000)
    context.close()
