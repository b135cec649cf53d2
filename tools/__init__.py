"""Developer tools, run from the checkout with requirements-dev.txt (not part of the app or the package).

- ``python -m tools.screenshot``: the README's screenshot of the explorer (headless Chromium);
- ``python -m tools.bench_repaint``: how fast the explorer repaints a click (headless Chromium);
- ``python -m tools.bench_runs``: the Runs tab on a 10,000-sample run;
- :mod:`tools.browser`: Debian's Chromium through the playwright package (also for the browser tests).
"""
