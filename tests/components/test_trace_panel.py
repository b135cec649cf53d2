"""The run handler: streaming, clickable sentences while writing, stop, and bad input."""

from __future__ import annotations

import threading
from dataclasses import replace

import gradio as gr
import pytest

from components.export_panel import export_json
from components.input_checks import check_run
from components.session import ComposedItem, Session
from components.settings import InputLimits
from components.trace_panel import make_run_handler, request_run, run_settings, run_trace, stop_trace
from omnitrace_core import InputError, TraceResult, TraceStep

LIMITS = InputLimits()


def truncated(result, spans: int):
    """The result as a streaming snapshot after its first ``spans`` sentences."""
    end = result.spans[spans - 1].token_end
    chars = result.spans[spans - 1].char_end
    return replace(result, text=result.text[:chars], tokens=result.tokens[:end], atom_sum=result.atom_sum[:end],
                   atom_max=result.atom_max[:end], outside=result.outside[:end], spans=result.spans[:spans],
                   stop_reason="running")


def fake_stream(result, stop_after: int | None = None):
    """A stand-in for the model: replays ``result`` token by token, with snapshots at sentence ends."""
    def stream(items, signal, generation, sources, curation, stop):
        ends = {span.token_end - 1: k + 1 for k, span in enumerate(result.spans)}
        for t, token in enumerate(result.tokens):
            if stop is not None and stop.is_set():
                break
            snapshot = truncated(result, ends[t]).recurate(curation) if t in ends else None
            yield TraceStep(index=t, token_id=token.token_id, token_text=token.text, text=result.text[:token.char_end],
                            unit=-1, confidence=0.0, result=snapshot)
            if stop_after is not None and t + 1 == stop_after:
                stop.set()
        stopped = stop is not None and stop.is_set()
        final = truncated(result, 1) if stopped else result
        yield TraceStep(index=len(final.tokens) - 1, token_id=0, token_text="", text=final.text, unit=-1,
                        confidence=0.0, result=replace(final.recurate(curation), stop_reason="stopped" if stopped else "eos"),
                        done=True)
    return stream


def run(tracer, ctx, session, items, stream=None, tokens=8):
    return list(run_trace(tracer, ctx, LIMITS, session, items, "attmean", tokens, 1.0, 1.0, False, stream_fn=stream))


def test_sentences_are_clickable_while_the_model_writes(tracer, view_context, gallery_items, synthetic, monkeypatch):
    monkeypatch.setattr("components.trace_panel.UPDATE_EVERY_S", 0.0)
    session = Session()
    outputs = run(tracer, view_context, session, gallery_items, fake_stream(synthetic))
    explorer, status = outputs[0]
    assert 'data-state="running"' in status and "data-span=" not in explorer
    running = [html for html, st in outputs[1:-1] if 'data-state="running"' in st]
    # a yield where sentence 1 is clickable and sentence 2 is still being written
    partial = [html for html in running if 'data-span="0"' in html and 'data-span="1"' not in html]
    assert partial and 'class="ot-pending"' in partial[-1]
    final_html, final_status = outputs[-1]
    assert 'data-state="done"' in final_status
    assert final_html.count("data-span=") == len(synthetic.spans)
    assert session.results["attmean"].text == synthetic.text


def test_stop_keeps_what_was_written(tracer, view_context, gallery_items, synthetic):
    session = Session()
    outputs = run(tracer, view_context, session, gallery_items, fake_stream(synthetic, stop_after=3))
    assert 'data-state="stopped"' in outputs[-1][1]
    assert session.results["attmean"].stop_reason == "stopped"


def test_stop_switch_sets_the_session_event():
    session = Session()
    request_run(session)
    assert 'data-state="stopped"' in stop_trace(session)
    assert session.stop.is_set()


def test_real_model_run_streams_and_stores_the_result(tracer, view_context, media):
    items = [ComposedItem(kind="text", text="Look at this. Then listen."),
             ComposedItem(kind="image", path=str(media["image_a"]), name="a.png", width=112, height=84)]
    session = Session()
    outputs = run(tracer, view_context, session, items, tokens=4)
    assert len(outputs) >= 2 and 'data-state="done"' in outputs[-1][1]
    result = session.results["attmean"]
    assert 1 <= len(result.tokens) <= 4 and session.view_signal == "attmean"
    assert session.run_items[0].text == "Look at this. Then listen."


@pytest.mark.parametrize("items, message", [
    ([], "empty"),
    ([ComposedItem(kind="text", text="Only an instruction", is_prompt=True)], "nothing to trace"),
])
def test_empty_input_is_refused(tracer, view_context, items, message):
    with pytest.raises(InputError, match=message):
        run(tracer, view_context, Session(), items)


def test_bad_settings_are_refused(tracer, view_context):
    items = [ComposedItem(kind="text", text="Hi.")]
    with pytest.raises(InputError, match="unknown signal"):
        list(run_trace(tracer, view_context, LIMITS, Session(), items, "nope", 4, 1.0, 1.0, False))
    with pytest.raises(InputError, match="between 1 and"):
        list(run_trace(tracer, view_context, LIMITS, Session(), items, "attmean", 10_000, 1.0, 1.0, False))


def test_token_budget_is_the_real_prompt_length(tracer, view_context, media):
    items = [ComposedItem(kind="image", path=str(media["image_a"]), name="a.png", width=112, height=84),
             ComposedItem(kind="audio", path=str(media["audio"]), name="t.wav", duration=3.0),
             ComposedItem(kind="text", text="word " * 50)]
    _, sources = run_settings(4, 1.0, 1.0, False)
    length = tracer.backend.prepare([i.to_engine() for i in items], sources).length
    exact = InputLimits(max_prompt_tokens=length)
    runs = list(run_trace(tracer, view_context, exact, Session(), items, "attmean", 2, 1.0, 1.0, False))
    assert runs  # a prompt of exactly the limit runs
    tight = InputLimits(max_prompt_tokens=length - 1)
    with pytest.raises(InputError, match=f"the prompt is {length} tokens, over the limit of {length - 1}"):
        list(run_trace(tracer, view_context, tight, Session(), items, "attmean", 4, 1.0, 1.0, False))


def test_too_many_items_or_unreadable_modalities():
    with pytest.raises(InputError, match="over the limit"):
        check_run([ComposedItem(kind="text", text="x")] * 3, InputLimits(max_items=2))
    with pytest.raises(InputError, match="does not read video"):
        check_run([ComposedItem(kind="text", text="x"), ComposedItem(kind="video", path="v.mp4")], LIMITS,
                  frozenset({"text", "image"}))


def test_stop_event_is_shared_by_concurrent_handlers():
    # gr.State hands every event of a session the same object: a stop from another thread is seen
    session = Session()
    session.running = True
    thread = threading.Thread(target=stop_trace, args=(session,))
    thread.start()
    thread.join()
    assert session.stop.is_set()


def failing_stream(result, fail_after: int):
    """A model that writes ``fail_after`` tokens (the first sentence ends among them) and then fails."""
    replay = fake_stream(result)

    def stream(*args):
        for count, step in enumerate(replay(*args)):
            if count == fail_after:
                raise RuntimeError("the accelerator fell over")
            yield step
    return stream


def test_a_failed_run_keeps_the_last_good_trace_and_its_exports(tracer, view_context, gallery_items, synthetic):
    session = Session()
    run(tracer, view_context, session, gallery_items, fake_stream(synthetic))
    good = session.results["attmean"]
    fail_after = synthetic.spans[1].token_end  # a snapshot of the failing run was already shown
    with pytest.raises(RuntimeError, match="fell over"):
        run(tracer, view_context, session, gallery_items, failing_stream(synthetic, fail_after))
    assert session.results == {"attmean": good} and session.view_signal == "attmean"
    assert TraceResult.load(export_json(session)).text == good.text
    assert not session.running and not session.stop.is_set()


def test_the_app_handler_resets_the_status_and_shows_the_last_trace_after_a_failure(tracer, view_context):
    session = Session()
    items = [ComposedItem(kind="text", text="A red house. " * 4)]
    outputs = list(make_run_handler(tracer, view_context, LIMITS)(session, items, "attmean", 3, 1.0, 1.0, False))
    assert 'data-state="done"' in outputs[-1][1]
    good = session.results["attmean"]
    # the engine refuses the prompt after "Preparing the prompt...": a failure inside the run
    tight = make_run_handler(tracer, view_context, InputLimits(max_prompt_tokens=5))
    outputs = []
    with pytest.raises(gr.Error) as failure:
        for output in tight(session, items, "attmean", 3, 1.0, 1.0, False):
            outputs.append(output)
    assert "over the limit of 5" in failure.value.message
    assert "Preparing the prompt" in outputs[0][1]
    explorer, status = outputs[-1]
    assert 'data-state="error"' in status and "nothing new was traced" in status
    assert explorer.count("data-span=") == len(good.spans) >= 1
    assert session.results == {"attmean": good}


def test_stop_while_the_run_waits_in_the_queue_cancels_it(tracer, view_context, gallery_items, synthetic):
    session = Session()
    run(tracer, view_context, session, gallery_items, fake_stream(synthetic))
    previous = dict(session.results)
    request_run(session)  # Trace pressed: the run waits for the model
    assert "will not start" in stop_trace(session)
    started = []

    def model(*args):
        started.append(True)
        yield from fake_stream(synthetic)(*args)

    outputs = run(tracer, view_context, session, gallery_items, model)
    assert not started
    assert 'data-state="stopped"' in outputs[-1][1] and "before it started" in outputs[-1][1]
    assert outputs[-1][0].count("data-span=") == len(synthetic.spans)  # the previous trace is still shown
    assert session.results == previous and not session.stop.is_set() and not session.queued
    request_run(session)  # the next run is not affected
    assert 'data-state="done"' in run(tracer, view_context, session, gallery_items, model)[-1][1] and started


def test_stop_with_nothing_queued_or_running_does_not_cancel_the_next_run(tracer, view_context, gallery_items,
                                                                          synthetic):
    session = Session()
    assert stop_trace(session) == gr.skip()  # the status line keeps what it says
    assert not session.stop.is_set()
    request_run(session)
    assert 'data-state="done"' in run(tracer, view_context, session, gallery_items, fake_stream(synthetic))[-1][1]


def test_video_frame_rate_setting_reaches_the_engine(tracer, media):
    generation, sources = run_settings(4, 1.0, 1.0, False, LIMITS, tracer.sources, video_fps=0.5)
    assert sources.video_fps == 0.5
    assert run_settings(4, 1.0, 1.0, False, LIMITS, tracer.sources)[1].video_fps == tracer.sources.video_fps
    video = [ComposedItem(kind="video", path=str(media["video"]), name="clip.mp4", duration=4.0).to_engine()]
    lengths = [tracer.backend.prepare(video, run_settings(4, 1.0, 1.0, False, LIMITS, tracer.sources, fps)[1]).length
               for fps in (1.0, 4.0)]
    assert lengths[0] < lengths[1]  # fewer frames, a shorter prompt: what the prompt-limit message advises


def test_answer_to_trace_heads_and_restricted_signals(tracer, view_context):
    items = [ComposedItem(kind="text", text="Name the colour. The sky is blue.")]
    session = Session()
    outputs = list(run_trace(tracer, view_context, LIMITS, session, items, "attmean[-1:]", 4, 1.0, 1.0, False,
                             answer="It is blue. Yes.", heads=True))
    assert "given answer" in outputs[-1][1]
    (signal, result), = session.results.items()
    assert signal == "attmean[layers=-1:]" == result.signal
    assert result.forced and result.text == "It is blue. Yes." and result.heads is not None
    assert "ot-forced" in outputs[-1][0]
    # Compare signals traces the same given answer with another signal
    from components.compare_panel import trace_signals

    comparison = list(trace_signals(tracer, session, ["attraw"]))[-1]
    assert session.results["attraw"].forced and session.results["attraw"].heads is not None
    assert comparison.mismatched == {} and comparison.signals == (signal, "attraw")
    with pytest.raises(InputError, match="cannot select layers"):
        list(run_trace(tracer, view_context, LIMITS, Session(), items, "attraw[0]", 4, 1.0, 1.0, False))
