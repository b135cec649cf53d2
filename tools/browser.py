"""Headless Debian Chromium through the playwright package (never ``playwright install``)."""

from __future__ import annotations

import shutil

# no background networking: this machine's closed network refuses those connections noisily
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--force-device-scale-factor=1"]


def chromium_path() -> str | None:
    """Debian's chromium binary, or None when it is not installed."""
    return shutil.which("chromium")


def launch_chromium(playwright, executable: str | None = None):
    """A headless browser with a fresh temporary profile (``playwright.chromium.launch``)."""
    executable = executable or chromium_path()
    if executable is None:
        raise RuntimeError("Debian's chromium is needed: apt-get install chromium")
    return playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
