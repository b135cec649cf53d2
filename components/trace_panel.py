"""Tracing: run settings, the streaming run handler, the stop switch.

``run_trace`` is a plain generator: it yields (explorer HTML, status HTML) while the model
writes; each finished sentence arrives as a curated snapshot and is clickable at once.

A run's life in a session: Trace marks it queued (``request_run``); Stop cancels it while it
waits, or ends its generation after the current token while it runs (``stop_trace``); a run that
fails puts the previous trace back and says so in the status line.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Sequence

import gradio as gr

from omnitrace_core import (DEFAULT_SIGNAL, ConfigError, GenerationConfig, InputError, SourceConfig, TraceResult,
                            Tracer, UnknownNameError, get_signal, list_signals)

from . import alerts
from .input_checks import check_run
from .rendering import ViewContext, status_html
from .session import ComposedItem, Session
from .settings import InputLimits

logger = logging.getLogger(__name__)

UPDATE_EVERY_S = 0.5  # between two yields that carry no new sentence


def gpu_wrap(fn: Callable) -> Callable:
    """On Hugging Face ZeroGPU hardware, wrap the generation function with ``spaces.GPU``."""
    try:
        import spaces  # only present on Spaces
    except ImportError:
        return fn
    return spaces.GPU(duration=180)(fn)


def model_stream(tracer: Tracer) -> Callable[..., Iterator[Any]]:
    """The model-bound part of a run (the only part that needs the GPU), over picklable arguments."""

    def stream(items: tuple, signal: str, generation: GenerationConfig, sources: SourceConfig, curation,
               stop, **options: Any) -> Iterator[Any]:
        # options: answer= (trace a given answer), heads=True (capture layer and head masses)
        yield from tracer.stream(items, signal=signal, generation=generation, sources=sources, curation=curation,
                                 stop=stop, partial_results=True, **options)

    return stream


def run_settings(max_new_tokens: float, audio_bin: float, video_bin: float, include_prompt: bool,
                 limits: InputLimits | None = None, base: SourceConfig = SourceConfig(),
                 video_fps: float | None = None) -> tuple[GenerationConfig, SourceConfig]:
    """Greedy decoding (deterministic, so other signals can re-trace the same generation).

    The engine refuses a prompt over ``limits.max_prompt_tokens`` before the model runs. Source
    settings the panel has no control for (e.g. the speech recogniser) come from ``base``, and so
    does the video frame rate when ``video_fps`` is None.
    """
    generation = GenerationConfig(max_new_tokens=int(max_new_tokens),
                                  max_prompt_tokens=limits.max_prompt_tokens if limits else None)
    fps = base.video_fps if video_fps is None else float(video_fps)
    sources = replace(base, audio_bin_seconds=float(audio_bin), video_bin_seconds=float(video_bin),
                      include_prompt=bool(include_prompt), video_fps=fps)
    return generation, sources


def run_trace(tracer: Tracer, ctx: ViewContext, limits: InputLimits, session: Session, items: Sequence[ComposedItem],
              signal: str, max_new_tokens: float, audio_bin: float, video_bin: float, include_prompt: bool,
              video_fps: float | None = None, answer: str = "", heads: bool = False,
              stream_fn: Callable | None = None) -> Iterator[tuple[str, str]]:
    """Generate and trace, streaming the explorer.

    A run whose Stop was pressed while it waited in the queue does not start. A run that fails
    (or is abandoned) puts the session's previous trace back before the error propagates.
    ``signal`` may select layers or heads (``attmean[4:8]``); a non-blank ``answer`` is traced
    (teacher-forced) instead of a generated one; ``heads`` captures layer and head masses.

    Yields:
        (explorer HTML, status HTML): first the inputs, then after each finished sentence (and at
        most every UPDATE_EVERY_S with the text written so far), then the final result.

    Raises:
        PageBusy: the page is verifying (with a concurrency over 1).
        InputError / ConfigError / MediaError: bad input (the caller shows them as gr.Error).
    """
    items = list(items or [])
    refuse_while_busy(session, "trace")
    if not leave_queue(session):
        yield ctx.explorer(session, items=items), status_html("stopped", "Stopped before it started: nothing was "
                                                              "traced, the previous trace is kept.")
        return
    check_run(items, limits, getattr(tracer.backend, "modalities", None))
    try:
        signal = get_signal(signal).name  # the canonical name: attmean[4:8] is attmean[layers=4:8]
    except (UnknownNameError, ConfigError) as exc:
        raise InputError(f"{exc}; or choose one of {', '.join(list_signals())}") from None
    if not 1 <= int(max_new_tokens) <= limits.max_new_tokens:
        raise InputError(f"generation length must be between 1 and {limits.max_new_tokens} tokens")
    generation, sources = run_settings(max_new_tokens, audio_bin, video_bin, include_prompt, limits, tracer.sources,
                                       video_fps)
    engine_items = tuple(item.to_engine() for item in items)
    options: dict[str, Any] = {}
    if answer and answer.strip():
        options["answer"] = answer
    if heads:
        options["heads"] = True
    previous = session.new_generation(signal, engine_items, {"generation": generation, "sources": sources, **options})
    session.running, session.activity = True, "trace"
    try:
        yield from _generate(ctx, session, items, signal, generation, sources, stream_fn or model_stream(tracer),
                             options)
    except BaseException:  # a failure, or the page went away mid-run: the last good trace stays
        session.restore(previous)
        raise
    finally:
        session.running = False
        session.stop.clear()


def _generate(ctx: ViewContext, session: Session, items: list[ComposedItem], signal: str,
              generation: GenerationConfig, sources: SourceConfig, stream_fn: Callable,
              options: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """The streaming part of ``run_trace``, after the checks."""
    engine_items = session.run_items
    budget = generation.max_new_tokens
    forced = "answer" in options
    yield (ctx.explorer(session, None, items=items, pending="", progress=0.0),
           status_html("running", "Preparing the prompt...", f"signal {signal}"))

    snapshot: TraceResult | None = None
    last_yield = time.monotonic()
    started = time.monotonic()
    final: TraceResult | None = None
    for step in stream_fn(engine_items, signal, generation, sources, session.curation, session.stop, **options):
        if step.done:
            final = step.result
            break
        fresh = step.result is not None
        if fresh:
            snapshot = step.result
            session.results[signal] = snapshot  # the knobs may re-curate it while the model writes
        now = time.monotonic()
        if not fresh and now - last_yield < UPDATE_EVERY_S:
            continue
        last_yield = now
        done_text = snapshot.text if snapshot is not None else ""
        pending = step.text[len(done_text):] if step.text.startswith(done_text) else step.text
        count = step.index + 1
        rate = count / max(now - started, 1e-6)
        sentences = len(snapshot.spans) if snapshot is not None else 0
        doing = f"Tracing the given answer... {count} tokens" if forced else f"Writing... {count} / {budget} tokens"
        yield (ctx.explorer(session, items=items, pending=pending, progress=None if forced else count / budget),
               status_html("running", doing, f"{sentences} sentence(s) ready \u00b7 {rate:.1f} tokens/s"))
    if final is None:  # the stream always ends with a done step; be explicit if it did not
        raise RuntimeError("the generation ended without a result")
    session.results[signal] = final
    state = "stopped" if final.stop_reason == "stopped" else "done"
    verb = "Stopped" if state == "stopped" else "Done"
    detail = (f"{len(final.spans)} sentence(s) \u00b7 {final.timings.get('total_s', 0):.1f} s \u00b7 "
              f"prompt {final.prompt_tokens} tokens \u00b7 end: {final.stop_reason}")
    what = "given answer's tokens" if final.forced else "tokens"
    yield ctx.explorer(session), status_html(state, f"{verb}: {len(final.tokens)} {what} traced with {signal}.", detail)


def request_run(session: Session) -> Any:
    """Trace (or Verify) was pressed: mark the run queued, so that Stop can cancel it before it starts."""
    if session.running:  # Stop belongs to the running run; this one waits for it or is refused (refuse_while_busy)
        return gr.skip()
    session.queued = True
    return status_html("running", "Waiting for the model...")


class PageBusy(InputError):
    """Another run of the page (a trace or a verification) holds the model: this one is refused."""


BUSY = {"trace": "tracing", "verify": "verifying"}


def refuse_while_busy(session: Session, action: str) -> None:
    """Raise :class:`PageBusy` if a run of the session is tracing or verifying (only possible with a concurrency
    over 1): one run at a time per page. Checked before ``leave_queue``, so that a Stop meant for the running
    run stays set for it."""
    if session.running:
        session.queued = False
        raise PageBusy(f"this page is still {BUSY.get(session.activity, 'running')}: wait for it to finish, or "
                       f"press Stop, then {action}")


def leave_queue(session: Session) -> bool:
    """A run of the session leaves the queue: False (the stop switch cleared) if Stop was pressed while it waited."""
    session.queued = False
    if session.stop.is_set():
        session.stop.clear()
        return False
    return True


STOP_SETTLE_S = 2.0  # how long Stop waits for the run to end before it says "Stopping..."
STOPPING = {"trace": "Stopping after the current token...",
            "verify": "Stopping after the current decoder call: what was measured is kept..."}


def stop_trace(session: Session) -> Any:
    """Cancel a queued run, or end the running generation after its current token (it keeps what it wrote),
    or a running verification after its current decoder call (it keeps what it measured).

    With nothing queued or running, Stop does nothing: it must not cancel the next run. A run that ends
    within ``STOP_SETTLE_S`` keeps the status line to itself: its own final status (sent by its event) could
    otherwise arrive before this reply and be overwritten by "Stopping...".
    """
    if session.running:
        with session.stop_reply:
            session.stop.set()
            deadline = time.monotonic() + STOP_SETTLE_S
            while session.running and time.monotonic() < deadline:
                time.sleep(0.05)
            if not session.running:
                return gr.skip()
            return status_html("stopped", STOPPING.get(session.activity, STOPPING["trace"]))
    if session.queued:
        session.stop.set()
        return status_html("stopped", "Stopping: the queued run will not start.")
    return gr.skip()


# -- builder ------------------------------------------------------------------------------------
@dataclass
class TracePanel:
    signal: gr.Dropdown
    max_new_tokens: gr.Slider
    audio_bin: gr.Slider
    video_bin: gr.Slider
    include_prompt: gr.Checkbox
    video_fps: gr.Slider
    answer: gr.Textbox
    heads: gr.Checkbox
    run: gr.Button
    stop: gr.Button
    status: gr.HTML

    @property
    def settings(self) -> list[gr.components.Component]:
        return [self.signal, self.max_new_tokens, self.audio_bin, self.video_bin, self.include_prompt, self.video_fps,
                self.answer, self.heads]


def build_trace_panel(default_new_tokens: int, limits: InputLimits,
                      default_video_fps: float = SourceConfig().video_fps) -> TracePanel:
    """Run settings, the Trace / Stop buttons and the status line (events are wired in wire_trace)."""
    with gr.Accordion("Run settings", open=True, elem_classes="ot-settings"):
        signals = list_signals()
        signal = gr.Dropdown(label="Signal", choices=signals, value=DEFAULT_SIGNAL,
                             elem_id="ot-signal", allow_custom_value=True,
                             info="how each generated token scores the input; type e.g. attmean[4:8] or "
                                  "attmean[heads=0:2] for chosen layers or heads")
        max_new_tokens = gr.Slider(1, limits.max_new_tokens, value=default_new_tokens, step=1,
                                   label="Generation length (new tokens)", elem_id="ot-max-new")
        with gr.Row():
            audio_bin = gr.Slider(0.25, 10, value=1.0, step=0.25, label="Audio bin (s)", elem_id="ot-audio-bin")
            video_bin = gr.Slider(0.25, 10, value=1.0, step=0.25, label="Video bin (s)", elem_id="ot-video-bin")
        video_fps = gr.Slider(0.25, 8, value=default_video_fps, step=0.25, label="Video frame rate (frames/s)",
                              info="frames read per second of video: fewer frames make a shorter prompt",
                              elem_id="ot-video-fps")
        include_prompt = gr.Checkbox(label="Trace the instruction too", value=False)
        answer = gr.Textbox("", label="Answer to trace", lines=2, elem_id="ot-answer",
                            placeholder="leave empty to trace what the model generates",
                            info="trace this text instead (teacher-forced): see where the model disagrees")
        heads = gr.Checkbox(label="Capture layers and heads", value=False, elem_id="ot-heads",
                            info="store each layer's and head's attention on every source (for the heat map)")
    with gr.Row():
        run = gr.Button("Trace", variant="primary", elem_id="ot-run", scale=3)
        stop = gr.Button("Stop", variant="stop", elem_id="ot-stop", scale=1)
    status = gr.HTML(status_html("idle", "Ready."), js_on_load=None, elem_id="ot-status", padding=False)
    return TracePanel(signal, max_new_tokens, audio_bin, video_bin, include_prompt, video_fps, answer, heads, run, stop,
                      status)


def make_run_handler(tracer: Tracer, ctx: ViewContext, limits: InputLimits) -> Callable:
    """The run event's function: errors become pop-ups (the status line says it too), generation is wrapped
    for ZeroGPU."""
    plain = model_stream(tracer)
    gpu_stream = gpu_wrap(plain)
    on_zero_gpu = gpu_stream is not plain

    def stream(items, signal, generation, sources, curation, stop, **options):
        # a worker process cannot share the stop switch: on ZeroGPU the run ends at its length
        return gpu_stream(items, signal, generation, sources, curation, None if on_zero_gpu else stop, **options)

    def handler(session: Session, items: list[ComposedItem], signal: str, max_new_tokens: float, audio_bin: float,
                video_bin: float, include_prompt: bool, video_fps: float | None = None, answer: str = "",
                heads: bool = False):
        try:
            yield from run_trace(tracer, ctx, limits, session, items, signal, max_new_tokens, audio_bin, video_bin,
                                 include_prompt, video_fps, answer, heads, stream_fn=stream)
            return
        except (InputError, ConfigError) as exc:
            title, message = "Trace" if isinstance(exc, PageBusy) else "Input problem", str(exc)
        except Exception as exc:  # a bug or a model failure: keep serving, say what happened
            logger.exception("tracing failed")
            title, message = "Tracing failed", f"tracing failed: {type(exc).__name__}: {exc}"
        # run_trace has put the last good trace back: show it, and end the "Preparing..." status
        yield ctx.explorer(session, items=items), status_html("error", f"{title}: nothing new was traced.", message)
        raise alerts.error(message, title=title)

    return handler
