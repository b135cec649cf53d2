"""Verify: measure what each source really does to the clicked sentence, or to every sentence.

The Explore tab's *Verify* row runs ``Tracer.verify`` on the shown trace (its current curation):
one teacher-forced forward per removed unit scores every sentence, so after the first sentence the
others need only their own checks. It runs in the model queue like a trace, Stop cancels it while
it waits or ends it between decoder calls (what was measured is kept), and a failure keeps the last
good verification. The verification is stored with the shown signal's result, so the exported JSON
and the HTML report carry it; ``static/verification.js`` draws it in the detail panel.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from omnitrace_core import ConfigError, InputError, MediaError, TraceResult, Tracer
from omnitrace_core.verification import MODES, Verification, items_from_result

from . import alerts
from .previews import is_within
from .rendering import ViewContext, status_html
from .session import Session
from .trace_panel import gpu_wrap, leave_queue
from .verification_view import verification_summary

logger = logging.getLogger(__name__)

#: (phase, decoder calls done, decoder calls in the phase)
Progress = Callable[[str, int, int], None]
VerifyFn = Callable[..., Verification]

#: The Verify sentence button sends the sentence selected in the page (-1: none) as its last input.
SELECTED_SENTENCE_JS = """(...args) => {
  const sel = document.querySelector('#ot-explorer .ot-sent.ot-sel');
  args[args.length - 1] = sel ? Number(sel.dataset.span) : -1;
  return args;
}"""


def verify_items(ctx: ViewContext, session: Session, result: TraceResult) -> list[Any]:
    """The input items to verify ``result`` with: the session's own (in-memory media work), or, for a loaded
    trace, rebuilt from its item records when it is this model's and its media are files the app may read.

    Raises:
        InputError: another model's trace, or media that are not available to this app.
    """
    if session.run_items:
        return list(session.run_items)
    if ctx.model_id and result.model_id != ctx.model_id:
        raise InputError(f"this trace was made with {result.model_id}, and this app runs {ctx.model_name}: verify it "
                         f"with its own model (python -m omnitrace_core verify --traces FILE)")
    for info in result.items:
        if info.modality == "text":
            continue
        if not info.path or not Path(info.path).is_file() or not is_within(Path(info.path), ctx.roots):
            raise InputError(f"the {info.modality} of item {info.index + 1} ({info.label}) is not available to this "
                             "app (it reads only uploads, its examples and the data folder): trace the input here, or "
                             "open it from the Runs tab with its samples file, to verify it")
    return items_from_result(result)


def tile_images(result: TraceResult, sentence: int | None) -> list[int]:
    """The image units whose tile maps a Verify measures and the result does not hold yet.

    One forward per tile scores every sentence, so a map is measured for all sentences at once;
    Verify all measures every image, Verify sentence the images the sentence cites or strongly
    depends on.
    """
    v = result.verification
    images = [u.index for u in result.units if u.modality == "image" and result.items[u.item].grid]
    sentences = range(len(result.spans)) if sentence is None else [sentence]
    if sentence is not None:
        wanted = {s.unit for s in result.spans[sentence].sources} | set(v.strong(sentence) if v else ())
        images = [u for u in images if u in wanted]
    return [u for u in images if v is None or any(v.tile_map(k, u) is None for k in sentences)]


def run_verify(verify_fn: VerifyFn, ctx: ViewContext, session: Session, mode: str, sentence: int | None,
               tiles: bool, progress: Progress | None = None, stop_capable: bool = True) -> tuple[str, str, str]:
    """Verify the shown trace: ``sentence`` (its checks; every unit's effect comes with them) or, with None,
    every sentence; with ``tiles``, also the tile heat maps of its images (see :func:`tile_images`).

    Each finished measurement is stored at once, so Stop (between decoder calls) and a failure keep what
    was measured before them.

    Args:
        verify_fn: ``Tracer.verify`` (or its ZeroGPU wrapper).
        progress: ``progress(phase, done, total)`` after every decoder call.
        stop_capable: False where the stop switch cannot reach the model (ZeroGPU's worker process).

    Returns:
        (explorer HTML, status HTML, verification summary HTML).

    Raises:
        InputError / MediaError / ConfigError: nothing to verify, no sentence chosen, inputs not available.
    """
    def outputs(state: str, message: str, detail: str = "") -> tuple[str, str, str]:
        return ctx.explorer(session), status_html(state, message, detail), verification_summary(session.shown())

    if not leave_queue(session):
        return outputs("stopped", "Stopped before it started: nothing was measured.")
    if session.running:  # another run of this page holds the model (with a concurrency over 1)
        raise InputError("this page is still tracing: wait for it to finish, or press Stop, then verify")
    result = session.shown()
    if result is None or not result.spans:
        raise InputError("nothing to verify yet: trace an input (or load a trace) that has an output sentence")
    if mode not in MODES:
        raise InputError(f"unknown verification mode {mode!r}; choose {' or '.join(MODES)}")
    if sentence is not None and not 0 <= sentence < len(result.spans):
        raise InputError("click an output sentence first (Verify sentence verifies the selected one), "
                         "or press Verify all")
    items = verify_items(ctx, session, result)
    every = list(range(len(result.spans)))
    before = result.verification.cost.get("forwards", 0) if result.verification and result.verification.mode == mode else 0

    def phase(name: str):
        return None if progress is None else (lambda done, total: progress(name, done, total))

    stop = session.stop if stop_capable else None
    started = time.monotonic()
    session.running, session.activity = True, "verify"
    try:
        what = "every sentence" if sentence is None else f"sentence {sentence + 1}"
        v = verify_fn(result, mode, sentences=None if sentence is None else [sentence], items=items,
                      progress=phase(f"Verifying {what}: unit effects and checks"), stop=stop)
        session.store_verification(v)
        for image in (tile_images(session.shown(), sentence) if tiles and not v.stopped else []):
            label = result.units[image].label
            v = verify_fn(session.shown(), mode, units="tiles", image=image, sentences=every, items=items,
                          progress=phase(f"Verifying the tiles of {label}"), stop=stop)
            session.store_verification(v)
            if v.stopped:
                break
    finally:
        session.running = False
        session.stop.clear()
    forwards = int(v.cost.get("forwards", 0) - before)
    detail = f"{forwards} forwards \u00b7 {time.monotonic() - started:.1f} s \u00b7 {mode} mode"
    if v.stopped:
        return outputs("stopped", f"Stopped: kept what was measured ({len(v.units)} of {len(result.units)} units).",
                       detail)
    return outputs("done", f"Verified {what}: {len(v.units)} units measured.", detail)


def _tracer_verify(tracer: Tracer) -> VerifyFn:
    def verify(result: TraceResult, mode: str, **kwargs: Any) -> Verification:
        return tracer.verify(result, mode, **kwargs)

    return verify


@dataclass
class VerifyPanel:
    mode: gr.Radio
    tiles: gr.Checkbox
    one: gr.Button
    every: gr.Button
    sentence: gr.Number
    note: gr.HTML

    def inputs(self, session: Any, selected: bool) -> list[Any]:
        """The event inputs of Verify sentence (``selected``: the page's sentence last) and Verify all."""
        return [session, self.mode, self.tiles] + ([self.sentence] if selected else [])


def build_verify_panel() -> VerifyPanel:
    """The Verify row: the removal mode (and the question each answers), the buttons, tile maps, a summary."""
    with gr.Row(equal_height=False, elem_id="ot-verify-row"):
        mode = gr.Radio([("input: does its content matter?", "input"), ("knockout: does the model read it?",
                                                                        "knockout")],
                        value="input", label="Verify: remove each source and measure the sentence's log p",
                        info="input removes it from the input and re-encodes; knockout blocks attention to it "
                             "(cheaper). A verification in the other mode replaces the one shown.",
                        elem_id="ot-verify-mode", scale=3, min_width=300)
        with gr.Column(scale=2, min_width=240):
            with gr.Row():
                one = gr.Button("Verify sentence", elem_id="ot-verify-one", size="sm", min_width=110)
                every = gr.Button("Verify all", elem_id="ot-verify-all", size="sm", min_width=90)
            tiles = gr.Checkbox(label="Image tile maps", value=False, elem_id="ot-verify-tiles",
                                info="one forward per 28x28 tile: slow on large images")
    note = gr.HTML(verification_summary(None), js_on_load=None, elem_id="ot-verify-note", padding=False)
    sentence = gr.Number(-1, visible=False, precision=0)
    return VerifyPanel(mode, tiles, one, every, sentence, note)


def make_verify_handlers(tracer: Tracer, ctx: ViewContext) -> tuple[Callable, Callable]:
    """(Verify sentence, Verify all) event functions: a progress bar, errors as pop-ups, the last good state kept."""
    plain = _tracer_verify(tracer)
    verify_fn = gpu_wrap(plain)
    on_zero_gpu = verify_fn is not plain

    def run(session: Session, mode: str, tiles: bool, sentence: int | None, progress: gr.Progress):
        def report(phase: str, done: int, total: int) -> None:
            if total > 0:
                progress((done, total), desc=phase, unit="forwards")

        try:
            yield run_verify(verify_fn, ctx, session, mode, sentence, bool(tiles),
                             None if on_zero_gpu else report, stop_capable=not on_zero_gpu)
            return
        except (InputError, ConfigError, MediaError) as exc:
            title, message = "Verify", str(exc)
        except Exception as exc:  # a bug or a model failure: keep serving, say what happened
            logger.exception("verification failed")
            title, message = "Verification failed", f"verification failed: {type(exc).__name__}: {exc}"
        # what was measured before the failure stays with the trace
        yield (ctx.explorer(session), status_html("error", f"{title}: the last measurements that finished are kept.",
                                                  message),
               verification_summary(session.shown()))
        raise alerts.error(message, title=title)

    def on_one(session: Session, mode: str, tiles: bool, sentence: float | None, progress=gr.Progress()):
        chosen = int(sentence) if sentence is not None and sentence >= 0 else -1
        yield from run(session, mode, tiles, chosen, progress)

    def on_all(session: Session, mode: str, tiles: bool, progress=gr.Progress()):
        yield from run(session, mode, tiles, None, progress)

    return on_one, on_all
