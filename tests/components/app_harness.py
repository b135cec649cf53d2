"""One in-process explorer per test session, shared by the gradio_client and browser tests.

The app is the shipped one (``build_app`` + ``launch_options``) on the session's tiny tracer,
launched with ``prevent_thread_lock=True`` on a free localhost port and closed at the end of the
session. Browser helpers launch Debian's chromium through the playwright package (never
``playwright install``); without chromium the browser tests skip locally and fail when CI=true.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tools.browser import chromium_path, launch_chromium

_SHARED: dict[str, Any] = {}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningApp:
    demo: Any
    url: str
    settings: Any


def shared_app(tracer, request: pytest.FixtureRequest) -> RunningApp:
    """Launch the explorer once per test session (closed when pytest finishes)."""
    if "app" not in _SHARED:
        from components.blocks import build_app, launch_options
        from components.settings import AppSettings, InputLimits

        limits = InputLimits(max_new_tokens=512, max_audio_seconds=30, max_video_seconds=30, max_file_mb=20)
        settings = AppSettings(default_new_tokens=6, limits=limits, concurrency=2, port=free_port())
        demo = build_app(tracer, settings, model_name="tiny test model", device="cpu")
        demo.launch(prevent_thread_lock=True, quiet=True, **launch_options(settings))
        _SHARED["app"] = RunningApp(demo=demo, url=f"http://127.0.0.1:{settings.port}/", settings=settings)
        request.config.add_cleanup(_close)
    return _SHARED["app"]


def _close() -> None:
    app = _SHARED.pop("app", None)
    if app is not None:
        app.demo.close()
    browser = _SHARED.pop("browser", None)
    if browser is not None:
        browser.close()
        _SHARED.pop("playwright").stop()


def require_chromium() -> str:
    """Path of Debian's chromium: skip without it, but fail on CI (which installs it)."""
    path = chromium_path()
    if path is None:
        message = "Debian's chromium is not installed (apt-get install chromium); browser tests need it"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " and CI=true")
        pytest.skip(message)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("the playwright package is missing (pip install playwright) and CI=true")
        pytest.skip("the playwright package is not installed")
    return path


def shared_browser(request: pytest.FixtureRequest):
    """One headless chromium per test session (each test opens its own context = its own session)."""
    executable = require_chromium()
    if "browser" not in _SHARED:
        from playwright.sync_api import sync_playwright

        pw = sync_playwright().start()
        # launch() gives the browser a fresh temporary user-data-dir of its own
        browser = launch_chromium(pw, executable)
        _SHARED.update(playwright=pw, browser=browser)
        request.config.add_cleanup(_close)
    return _SHARED["browser"]


def media_path(name: str) -> Path:
    from components.settings import EXAMPLES_DIR

    return EXAMPLES_DIR / "media" / name
