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
from typing import Any, Callable, TypeVar

import gradio as gr

from omnitrace_core import ConfigError, InputError, MediaError, TraceResult, Tracer
from omnitrace_core.verification import MODES, Verification, items_from_result

from . import alerts
from .previews import is_within
from .rendering import ViewContext, status_html
from .session import Session
from .trace_panel import gpu_wrap, leave_queue, refuse_while_busy

logger = logging.getLogger(__name__)

#: (phase, decoder calls done, decoder calls in the phase)
Progress = Callable[[str, int, int], None]
VerifyFn = Callable[..., Verification]
T = TypeVar("T")

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
               tiles: bool, progress: Progress | None = None, stop_capable: bool = True) -> tuple[str, str]:
    """Verify the shown trace: ``sentence`` (its checks; every unit's effect comes with them) or, with None,
    every sentence; with ``tiles``, also the tile heat maps of its images (see :func:`tile_images`).

    Each finished measurement is stored at once, so Stop (between decoder calls) and a failure keep what
    was measured before them.

    Args:
        verify_fn: ``Tracer.verify`` (or its ZeroGPU wrapper).
        progress: ``progress(phase, done, total)`` after every decoder call.
        stop_capable: False where the stop switch cannot reach the model (ZeroGPU's worker process).

    Returns:
        (explorer HTML, status HTML).

    Raises:
        PageBusy: the page is tracing or verifying (with a concurrency over 1).
        InputError / MediaError / ConfigError: nothing to verify, no sentence chosen, inputs not available.
    """
    def outputs(state: str, message: str, detail: str = "") -> tuple[str, str]:
        return ctx.explorer(session), status_html(state, message, detail)

    refuse_while_busy(session, "verify")
    if not leave_queue(session):
        return outputs("stopped", "Stopped before it started: nothing was measured.")
    result = session.shown()
    if result is None or not result.spans:
        raise InputError("nothing to verify yet: trace an input (or load a trace) that has an output sentence")
    if mode not in MODES:
        raise InputError(f"unknown verification mode {mode!r}; choose {' or '.join(MODES)}")
    if sentence is not None and not 0 <= sentence < len(result.spans):
        raise InputError("click an output sentence first (Verify sentence verifies the selected one), "
                         "or press Verify all")
    items = verify_items(ctx, session, result)
    signal, stored = session.view_signal or "", session.results[session.view_signal or ""]
    every = list(range(len(result.spans)))
    held = result.verification_in(mode)
    before = held.cost.get("forwards", 0) if held is not None else 0

    def phase(name: str):
        return None if progress is None else (lambda done, total: progress(name, done, total))

    def keep(v: Verification) -> TraceResult:
        """Store ``v``; the shown trace (its current curation) now holding it."""
        nonlocal stored
        if session.results.get(signal) is not stored:  # a trace run or loaded meanwhile (concurrency over 1)
            raise InputError("the trace changed while it was verified: the new one is shown, nothing was stored")
        stored = session.store_verification(signal, v)
        return result.with_verification(v)

    stop = session.stop if stop_capable else None
    started = time.monotonic()
    session.running, session.activity = True, "verify"
    try:
        what = "every sentence" if sentence is None else f"sentence {sentence + 1}"
        v = verify_fn(result, mode, sentences=None if sentence is None else [sentence], items=items,
                      progress=phase(f"Verifying {what}: unit effects and checks"), stop=stop)
        result = keep(v)
        for image in (tile_images(result, sentence) if tiles and not v.stopped else []):
            v = verify_fn(result, mode, units="tiles", image=image, sentences=every, items=items,
                          progress=phase(f"Verifying the tiles of {result.units[image].label}"), stop=stop)
            result = keep(v)
            if v.stopped:
                break
    finally:
        session.running = False
        with session.stop_reply:  # a Stop pressed meanwhile has answered: the final status below comes after it
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

    def inputs(self, session: Any, selected: bool) -> list[Any]:
        """The event inputs of Verify sentence (``selected``: the page's sentence last) and Verify all."""
        return [session, self.mode, self.tiles] + ([self.sentence] if selected else [])


def build_verify_panel(beside: Callable[[], T]) -> tuple[VerifyPanel, T]:
    """The Verify controls in two lines: ``beside()`` (the curation accordion), tile maps and the two buttons;
    then the removal mode, each choice saying what it answers. Returns the panel and what ``beside`` built.

    The run's progress and outcome go to the status line under Trace and Stop; what it measured, to the
    explorer (a summary line under the output's caption, the rest in the clicked sentence's detail).
    """
    with gr.Row(equal_height=False, elem_id="ot-verify-row"):
        with gr.Column(scale=1, min_width=300):
            built = beside()
        tiles = gr.Checkbox(label="Tile maps", value=False, container=False, elem_id="ot-verify-tiles", scale=0,
                            min_width=100)
        one = gr.Button("Verify sentence", elem_id="ot-verify-one", size="sm", scale=0, min_width=112)
        every = gr.Button("Verify all", elem_id="ot-verify-all", size="sm", scale=0, min_width=76)
    mode = gr.Radio([("input: does its content matter?", "input"), ("knockout: does the model read it?", "knockout")],
                    value="input", show_label=False, container=False, elem_id="ot-verify-mode")
    sentence = gr.Number(-1, visible=False, precision=0)
    return VerifyPanel(mode, tiles, one, every, sentence), built


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
        yield ctx.explorer(session), status_html("error", f"{title}: the last measurements that finished are kept.",
                                                 message)
        raise alerts.error(message, title=title)

    def on_one(session: Session, mode: str, tiles: bool, sentence: float | None, progress=gr.Progress()):
        chosen = int(sentence) if sentence is not None and sentence >= 0 else -1
        yield from run(session, mode, tiles, chosen, progress)

    def on_all(session: Session, mode: str, tiles: bool, progress=gr.Progress()):
        yield from run(session, mode, tiles, None, progress)

    return on_one, on_all
