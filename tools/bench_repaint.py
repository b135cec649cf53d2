"""Browser benchmark: how fast the explorer repaints when a sentence is clicked.

    python -m tools.bench_repaint [--sentences 50] [--units 30] [--rounds 3]

Builds a trace of ``--sentences`` output sentences over ``--units`` source units of every
modality (a real tiny-model trace of the example media, re-scored so each sentence cites one to
four units), renders it as the self-contained report (the same ``explorer.js`` and CSS the app
uses), opens it in headless Chromium and clicks every sentence ``--rounds`` times. Each click is
timed in the page, from just before the click to the frame after it is painted (two
``requestAnimationFrame`` callbacks), and checked to have lit its sentence. Prints median, 95th
percentile and maximum against the 150 ms target. No server round trip is involved.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from components.previews import PreviewCache
from components.report import render_report
from components.settings import EXAMPLES_DIR
from omnitrace_core import AudioItem, GenerationConfig, ImageItem, TextItem, TraceResult, Tracer, VideoItem
from omnitrace_core.testing.synthetic import trace_with_sources

from .browser import launch_chromium

TARGET_MS = 150.0
_IMAGES = ("262_0.jpg", "262_1.jpg", "-288980723939800020.jpg", "8846049217870534914.jpg",
           "-4402135406098345009.jpg", "scene.png")
_CLICK_JS = """async (i) => {
  const el = document.querySelector(`.ot-sent[data-span="${i}"]`);
  const t0 = performance.now();
  el.click();
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  return [performance.now() - t0, el.classList.contains('ot-sel'),
          document.querySelectorAll('.ot-inputs .ot-lit').length];
}"""


@dataclass(frozen=True)
class RepaintFigures:
    sentences: int
    units: int
    clicks: int
    median_ms: float
    p95_ms: float
    max_ms: float
    all_lit: bool

    def table(self) -> str:
        verdict = "✓" if self.p95_ms <= TARGET_MS else f"✗ (+{(self.p95_ms / TARGET_MS - 1) * 100:.0f}%)"
        return ("| sentences | source units | clicks | median ms | p95 ms | max ms | target p95 < 150 ms |\n"
                "|---:|---:|---:|---:|---:|---:|---|\n"
                f"| {self.sentences} | {self.units} | {self.clicks} | {self.median_ms:.1f} | {self.p95_ms:.1f} | "
                f"{self.max_ms:.1f} | {verdict} |")


def _base_trace(tracer: Tracer, text_sentences: int) -> TraceResult:
    media = EXAMPLES_DIR / "media"
    facts = "\n".join(f"Fact number {k + 1} is about the painting in room {k + 2}." for k in range(text_sentences))
    items = [TextItem(facts)] + [ImageItem(str(media / name)) for name in _IMAGES]
    items += [AudioItem(str(media / "chirp.wav")), VideoItem(str(media / "traffic.mp4"))]
    return tracer.trace(items, generation=GenerationConfig(max_new_tokens=1))


def build_trace(tracer: Tracer, sentences: int = 50, units: int = 30, seed: int = 0) -> TraceResult:
    """A trace of ``sentences`` sentences citing 1-4 of (about) ``units`` units, seeded."""
    probe = _base_trace(tracer, 1)
    media_units = len(probe.units) - 1
    base = _base_trace(tracer, max(1, units - media_units))
    rng = random.Random(seed)
    unit_ids = [u.index for u in base.units]
    plan = []
    for k in range(sentences):
        cited = rng.sample(unit_ids, rng.randint(1, 4))
        plan.append((f"Sentence {k + 1} draws on {len(cited)} of the inputs.", cited))
    return trace_with_sources(base, plan)


def measure(result: TraceResult, rounds: int = 3, browser=None) -> RepaintFigures:
    """Open the report of ``result`` in headless Chromium and time every sentence click.

    ``browser``: an open playwright browser to use (a test session's shared one); without it one is
    launched and closed here.
    """
    if browser is None:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            own = launch_chromium(pw)
            try:
                return measure(result, rounds, own)
            finally:
                own.close()
    previews = PreviewCache([EXAMPLES_DIR], file_url=None).for_result(result)
    with tempfile.TemporaryDirectory() as folder:
        page_path = Path(folder) / "report.html"
        page_path.write_text(render_report(result, previews), encoding="utf-8")
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        try:
            page.goto(page_path.as_uri())
            page.wait_for_selector(".ot-sent[data-span]")
            page.evaluate(_CLICK_JS, 0)  # warm-up: first layout, JIT
            times, lit = [], True
            for _ in range(rounds):
                for span in result.spans:
                    ms, selected, sources_lit = page.evaluate(_CLICK_JS, span.index)
                    times.append(ms)
                    lit &= selected and (sources_lit > 0 or not span.sources)
        finally:
            page.close()
    times.sort()
    return RepaintFigures(sentences=len(result.spans), units=len(result.units), clicks=len(times),
                          median_ms=statistics.median(times), p95_ms=times[int(0.95 * (len(times) - 1))],
                          max_ms=times[-1], all_lit=lit)


def main(argv: list[str] | None = None) -> int:
    import os

    from components.model_loading import tiny_model_folder

    parser = argparse.ArgumentParser(prog="python -m tools.bench_repaint", description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=50)
    parser.add_argument("--units", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tracer = Tracer.from_pretrained(tiny_model_folder(), device="cpu", dtype="float32")
    figures = measure(build_trace(tracer, args.sentences, args.units), args.rounds)
    print(figures.table())
    if not figures.all_lit:
        print("error: some clicks did not light their sentence and sources")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
