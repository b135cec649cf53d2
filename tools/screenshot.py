"""Screenshot of the explorer after a sentence is clicked (docs/explorer.png).

    python -m tools.screenshot [--out docs/explorer.png] [--signal attmean] [--example 3]

Launches the app on the default (demo) model, runs a gallery example in headless Chromium
(Debian's ``chromium`` through the playwright package), clicks the first sentence and saves a
full-page PNG. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

from components.settings import REPO_ROOT, AppSettings
from omnitrace_core import DEFAULT_SIGNAL

from .browser import chromium_path, launch_chromium


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def take_screenshot(out: Path, signal: str = DEFAULT_SIGNAL, example: int = 3, width: int = 1440) -> Path:
    """Run row ``example`` of the examples table (on the demo model, 3 is its video example) with ``signal``
    (p_min off), click sentence 1, save ``out``."""
    from playwright.sync_api import sync_playwright

    from components.blocks import build_app, launch_options
    from components.model_loading import load_tracer

    chromium = chromium_path()
    if chromium is None:
        raise SystemExit("Debian's chromium is needed: apt-get install chromium")
    settings = AppSettings(port=_free_port(), default_new_tokens=48)
    tracer, name, device = load_tracer(settings)
    demo = build_app(tracer, settings, model_name=name, device=device)
    demo.launch(prevent_thread_lock=True, quiet=True, **launch_options(settings))
    try:
        with sync_playwright() as pw:
            browser = launch_chromium(pw, chromium)
            page = browser.new_page(viewport={"width": width, "height": 1000})
            page.goto(f"http://127.0.0.1:{settings.port}/")
            page.wait_for_selector("#ot-explorer .ot-root", timeout=30_000)
            page.locator("#ot-signal input").click()
            page.get_by_role("option", name=signal, exact=True).click()
            page.get_by_text("Curation (instant").click()
            page.locator("#ot-use-pmin input").uncheck()
            page.get_by_text("Curation (instant").click()
            page.locator("#ot-gallery tr, #ot-gallery button").nth(example).click()
            page.wait_for_selector('#ot-status [data-state="done"]', timeout=120_000)
            page.locator('#ot-explorer .ot-sent[data-span="0"]').click()
            page.wait_for_selector("#ot-explorer .ot-sent.ot-sel")
            page.mouse.move(0, 0)
            page.wait_for_timeout(600)  # let images and transitions settle
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
            browser.close()
    finally:
        demo.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "explorer.png")
    parser.add_argument("--signal", default=DEFAULT_SIGNAL)
    parser.add_argument("--example", type=int, default=3)
    args = parser.parse_args()
    print(take_screenshot(args.out, args.signal, args.example))


if __name__ == "__main__":
    main()
