"""The run handler: streaming, clickable sentences while writing, stop, and bad input."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from components.input_checks import check_run
from components.session import ComposedItem, Session
from components.settings import InputLimits
from components.trace_panel import run_settings, run_trace, stop_trace
from omnitrace_core import InputError, TraceStep

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
    thread = threading.Thread(target=stop_trace, args=(session,))
    thread.start()
    thread.join()
    assert session.stop.is_set()
