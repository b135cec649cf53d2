"""Verify in the explorer: the handler's numbers are the API's, stop and failures keep what was measured,
the verification reaches the page, the exported JSON and the report, and a loaded trace is verified safely."""

from __future__ import annotations

import html
import json
import re
import shutil
import threading
from dataclasses import replace
from pathlib import Path

import gradio as gr
import numpy as np
import pytest

from components.export_panel import export_html, export_json, load_trace
from components.rendering import ViewContext
from components.session import ComposedItem, Session
from components.settings import InputLimits
from components.trace_panel import make_run_handler, model_stream, request_run, run_trace, stop_trace
from components.verification_view import span_verification, verification_summary
from components.verify_panel import _tracer_verify, make_verify_handlers, run_verify, verify_items
from omnitrace_core import CurationConfig, InputError, TraceResult
from tests import media_files

LIMITS = InputLimits()
TEXT = ("The kite is red. The drum is blue. The sky is grey. The cat sleeps. The dog barks. The sun sets. "
        "The boat floats. The tree grows. The bird sings. The river flows.")
ANSWER = "A red kite. A blue drum."  # traced as given: two sentences whatever the random model prefers


def payload(explorer_html: str) -> dict:
    return json.loads(html.unescape(re.search(r'data-payload="([^"]*)"', explorer_html).group(1)))


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    return media_files.write_image(tmp_path_factory.mktemp("verify_media") / "kite.png", 56, 56, seed=3)


@pytest.fixture(scope="module")
def ctx(tracer, image) -> ViewContext:
    return ViewContext(model_name="tiny", device="cpu", limits=LIMITS, roots=(image.parent,),
                       model_id=tracer.backend.model_id)


@pytest.fixture(scope="module")
def generation(tracer, ctx, image):
    """A session's generation, traced through the run handler: ten text units, an image of 2x2 tiles, two sentences."""
    session = Session()
    items = [ComposedItem("text", text=TEXT), ComposedItem("image", path=str(image), name="kite.png", width=56,
                                                           height=56)]
    list(run_trace(tracer, ctx, LIMITS, session, items, "attmean", 8, 1.0, 1.0, False, answer=ANSWER))
    result = session.shown()
    assert len(result.spans) == 2 and len(result.units) == 11 and result.items[1].grid == (2, 2)
    return session.saved()


@pytest.fixture
def session(generation) -> Session:
    fresh = Session()
    fresh.restore(generation)
    return fresh


def verify(tracer, ctx, session, mode="input", sentence=0, tiles=False, progress=None):
    return run_verify(_tracer_verify(tracer), ctx, session, mode, sentence, tiles, progress)


@pytest.mark.parametrize("mode", ["input", "knockout"])
def test_verify_sentence_gives_the_api_numbers_and_shows_them(tracer, ctx, session, mode):
    calls = []
    explorer, status = verify(tracer, ctx, session, mode, 0, progress=lambda *a: calls.append(a))
    shown = session.shown()
    v = shown.verification
    api = tracer.verify(shown, mode, sentences=[0], items=list(session.run_items))  # reuses what is stored
    fresh = tracer.verify(replace(shown, verification=None), mode, sentences=[0], items=list(session.run_items))
    assert v.mode == mode and v.units == fresh.units == tuple(range(11))
    np.testing.assert_allclose(v.effects, fresh.effects, atol=1e-5)
    np.testing.assert_allclose(v.logp, fresh.logp, atol=1e-5)
    assert v.check(0).comprehensiveness == pytest.approx(fresh.check(0).comprehensiveness, abs=1e-5)
    assert v.check(0).sufficiency == pytest.approx(fresh.check(0).sufficiency, abs=1e-5)
    assert api.cost["forwards"] == v.cost["forwards"]  # nothing was left to measure
    assert calls[-1][1] == calls[-1][2] > 0 and "sentence 1" in calls[-1][0]  # progress after every decoder call
    assert 'data-state="done"' in status and "Verified sentence 1" in status
    summary = f"Verified ({mode} mode): 11 of 11 units measured \u00b7 1 of 2 sentences checked"
    assert summary in verification_summary(shown) and html.escape(summary) in explorer  # under the output's caption
    # the page carries the same numbers, the flags against the shown citation, the mode's question
    page = payload(explorer)
    assert page["verification"]["mode"] == mode and page["verification"]["units"] == 11
    ver = page["spans"][0]["ver"]
    assert ver["effects"] == [[u, pytest.approx(v.effect(0, u), abs=1e-4), int(v.changed[0, k])]
                              for k, u in enumerate(v.units)]
    curated = [s.unit for s in shown.spans[0].sources]
    assert ver["flags"] == {k: list(units) for k, units in v.flags(0, curated).items()}
    assert ver["check"]["comp"] == pytest.approx(v.check(0).comprehensiveness["all"], abs=1e-4)
    assert page["spans"][1]["ver"]["check"] is None  # sentence 2's effects are measured, its checks are not


def test_the_next_sentence_needs_only_its_checks(tracer, ctx, session):
    verify(tracer, ctx, session, "knockout", 0)
    first = session.shown().verification
    totals = []
    verify(tracer, ctx, session, "knockout", 1, progress=lambda phase, done, total: totals.append(total))
    second = session.shown().verification
    modalities = {u.modality for u in session.shown().units}
    assert totals[-1] <= 3 * (len(modalities) + 1) < len(first.units)  # no unit is measured again
    assert second.units == first.units and [c.sentence for c in second.sentences] == [0, 1]
    np.testing.assert_array_equal(second.effects, first.effects)
    # the stored cost adds this run's forwards once: its removals and the unablated forward (no double counting)
    assert second.cost["forwards"] == first.cost["forwards"] + totals[-1] + 1


def test_verify_all_with_tile_maps_reaches_the_json_and_the_report(tracer, ctx, session, tmp_path):
    calls = []
    explorer, status = verify(tracer, ctx, session, "input", None, tiles=True, progress=lambda *a: calls.append(a))
    shown = session.shown()
    v = shown.verification
    image = next(u.index for u in shown.units if u.modality == "image")
    assert [c.sentence for c in v.sentences] == [0, 1] and "Verified every sentence" in status
    assert {(t.sentence, t.unit) for t in v.tiles} == {(0, image), (1, image)}
    assert any("tiles of kite.png" in phase for phase, _, _ in calls)
    api = tracer.verify(replace(shown, verification=None), "input", units="tiles", image=image, sentences=[0, 1],
                        items=list(session.run_items))
    for k in (0, 1):
        np.testing.assert_allclose(v.tile_map(k, image).effects, api.tile_map(k, image).effects, atol=1e-5)
    tiles = payload(explorer)["spans"][1]["ver"]["tiles"]
    assert tiles == [{"unit": image, "item": 1, "grid": [2, 2],
                      "effects": pytest.approx(list(v.tile_map(1, image).effects), abs=1e-4),
                      "changed": [int(c) for c in v.tile_map(1, image).changed]}]
    # the exported JSON round-trips it; the report replays it offline (its payload and script)
    exported = TraceResult.load(export_json(session))
    assert exported.verification == v
    report = Path(export_html(ViewContext("tiny", "cpu", LIMITS, ctx.roots, ctx.model_id), session)).read_text()
    assert "function otVerifySection" in report
    assert payload(report)["spans"][0]["ver"] == payload(explorer)["spans"][0]["ver"]


def test_stop_midway_keeps_what_was_measured(tracer, ctx, session):
    replies, pressed = [], []

    def press_stop(phase, done, total):
        if 0 < done < total and not pressed:  # after the first decoder call of the unit effects
            pressed.append(threading.Thread(target=lambda: replies.append(stop_trace(session))))
            pressed[0].start()  # Stop, pressed in the page while the verification runs
            assert session.stop.wait(5)

    request_run(session)
    explorer, status = verify(tracer, ctx, session, "knockout", None, tiles=True, progress=press_stop)
    pressed[0].join()
    assert replies == [gr.skip()]  # the run ended at once: its own final status stays on the status line
    v = session.shown().verification
    assert v.stopped and 0 < len(v.units) < 11 and not v.tiles
    assert 'data-state="stopped"' in status and f"{len(v.units)} of 11 units" in status
    assert "stopped: what was measured is kept" in explorer
    assert not session.running and not session.stop.is_set()
    full = tracer.verify(replace(session.shown(), verification=None), "knockout", units=list(v.units),
                         checks=False, items=list(session.run_items))
    np.testing.assert_allclose(v.effects, full.effects, atol=1e-5)
    # Verify all again measures only the rest
    calls = []
    verify(tracer, ctx, session, "knockout", None, progress=lambda phase, done, total: calls.append(total))
    again = session.shown().verification
    assert not again.stopped and again.units == tuple(range(11))
    # the rest, and the checks of two sentences (scopes: all, text, image)
    assert calls[-1] <= 11 - len(v.units) + 3 * 2 * 3


def test_stop_pressed_while_verify_waits_cancels_it(tracer, ctx, session):
    request_run(session)
    assert "will not start" in stop_trace(session)
    _, status = verify(tracer, ctx, session, "input", 0)
    assert "Stopped before it started" in status and session.shown().verification is None
    assert not session.stop.is_set()


def test_a_failure_keeps_the_last_good_verification(tracer, ctx, session, image):
    on_one, _ = make_verify_handlers(tracer, ctx)
    list(on_one(session, "input", False, 0, gr.Progress()))
    before = session.shown().verification
    moved = image.with_suffix(".away")
    shutil.move(image, moved)  # the upload is gone: re-encoding the input fails
    try:
        outputs = on_one(session, "input", False, 1, gr.Progress())
        explorer, status = next(outputs)
        with pytest.raises(gr.Error, match="kite.png"):
            next(outputs)
    finally:
        shutil.move(moved, image)
    assert session.shown().verification == before
    assert 'data-state="error"' in status and "last measurements that finished are kept" in status
    assert payload(explorer)["spans"][0]["ver"]["check"] is not None and "1 of 2 sentences checked" in explorer
    assert not session.running


def test_verify_needs_a_sentence_and_a_trace(tracer, ctx, session):
    on_one, on_all = make_verify_handlers(tracer, ctx)
    with pytest.raises(gr.Error, match="click an output sentence first"):
        list(on_one(session, "input", False, -1, gr.Progress()))
    with pytest.raises(gr.Error, match="nothing to verify yet"):
        list(on_all(Session(), "input", False, gr.Progress()))
    with pytest.raises(InputError, match="unknown verification mode"):
        verify(tracer, ctx, session, "blur", 0)


def test_a_loaded_trace_is_verified_only_with_media_the_app_may_read(tracer, ctx, session, tmp_path):
    result = session.shown()
    path = tmp_path / "trace.json"
    result.save(path)
    outside = ViewContext("tiny", "cpu", LIMITS, (tmp_path,), ctx.model_id)
    loaded = Session()
    load_trace(loaded, str(path))
    with pytest.raises(InputError, match=r"image of item 2 \(kite.png\) is not available to this app"):
        verify_items(outside, loaded, loaded.shown())
    foreign = Session()
    foreign.adopt(replace(result, model_id="someone/else"))
    with pytest.raises(InputError, match="made with someone/else, and this app runs tiny"):
        verify_items(ctx, foreign, foreign.shown())
    verify(tracer, ctx, loaded, "knockout", 0)  # inside the roots: rebuilt from the trace's items
    verify(tracer, ctx, session, "knockout", 0)
    np.testing.assert_allclose(loaded.shown().verification.effects, session.shown().verification.effects, atol=1e-5)


def test_a_loaded_verification_is_shown_and_checked(tracer, ctx, session, tmp_path):
    verify(tracer, ctx, session, "input", None, tiles=True)
    path = tmp_path / "verified.json"
    session.shown().save(path)
    loaded = Session()
    load_trace(loaded, str(path))
    page = payload(ctx.explorer(loaded))
    assert page["verification"]["checked"] == 2 and page["spans"][1]["ver"]["tiles"]
    assert "Verified (input mode)" in verification_summary(loaded.shown())
    data = json.loads(path.read_text())
    data["verification"]["tiles"][0]["grid"] = [1, 4]  # four tiles, but not the image's 2x2
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"'verified.json' is not a trace .* tile map of unit 10 has a \(1, 4\) grid"):
        load_trace(loaded, str(path))
    assert loaded.shown().verification is not None  # the trace shown before stays


def test_flags_follow_the_curation_and_old_checks_are_marked(tracer, ctx, session):
    verify(tracer, ctx, session, "knockout", 0)
    shown = session.shown()
    everything = shown.recurate(CurationConfig(use_p_min=False, use_coverage=False, token_rule="max_token"))
    cited = [s.unit for s in everything.spans[0].sources]
    assert sorted(cited) != sorted(s.unit for s in shown.spans[0].sources)  # the knobs changed the citation
    ver = span_verification(everything, 0)
    assert ver["flags"] == {k: list(u) for k, u in everything.verification.flags(0, cited).items()}
    assert ver["check"]["stale"] and not span_verification(shown, 0)["check"]["stale"]


@pytest.mark.slow
def test_demo_model_verify_finds_the_described_image(ctx):
    """On the trained demo model, the handler's numbers are the API's, and removing the first image
    is what makes "The first image shows ..." unlikely."""
    from components.samples import gallery, sample_items
    from omnitrace_core import Tracer
    from omnitrace_core.assets import DEFAULT_MODEL_DIR

    demo = Tracer.from_pretrained(DEFAULT_MODEL_DIR, device="cpu")
    examples = gallery(demo_first=True)
    items = sample_items(examples, "test-0003:image_description", LIMITS)
    app_ctx = ViewContext("demo", "cpu", LIMITS, ctx.roots, demo.backend.model_id)
    session = Session()
    list(run_trace(demo, app_ctx, LIMITS, session, items, "attmean", 48, 1.0, 1.0, False))
    result = session.shown()
    assert result.text.startswith("The first image shows")
    verify(demo, app_ctx, session, "input", 0, tiles=True)
    v = session.shown().verification
    fresh = demo.verify(result, "input", sentences=[0], items=list(session.run_items))
    np.testing.assert_allclose(v.effects, fresh.effects, atol=1e-4)
    first = next(u.index for u in result.units if u.item == 1)
    assert v.strong(0) == (first,) and v.changed[0, v.units.index(first)]
    assert v.tile_map(0, first) is not None  # the sentence depends on it: its tile map is measured


def test_a_trace_replaced_while_verifying_gets_nothing(tracer, ctx, session):
    """With a concurrency over 1, a trace loaded (or run) in the same page meanwhile must not receive
    another trace's verification."""
    other = replace(session.shown(), text=session.shown().text)  # an equal but distinct trace, loaded meanwhile

    def load_meanwhile(phase, done, total):
        if done == 0:
            session.adopt(other)

    with pytest.raises(InputError, match="the trace changed while it was verified"):
        verify(tracer, ctx, session, "knockout", 0, progress=load_meanwhile)
    assert session.shown().verification is None and not session.running


def test_trace_pressed_while_verifying_is_refused(tracer, ctx, session):
    """With a concurrency over 1, Trace in a page that is verifying is refused with a pop-up; the verification
    goes on and is stored, and a Stop pressed before the refused Trace still reaches it."""
    trace = make_run_handler(tracer, ctx, LIMITS)
    traced, refused = session.shown(), []

    def trace_meanwhile(phase, done, total):
        if done == 0:
            request_run(session)
            outputs = trace(session, [ComposedItem("text", text="A red kite.")], "attmean", 4, 1.0, 1.0, False)
            refused.append(next(outputs)[1])
            with pytest.raises(gr.Error, match="this page is still verifying: wait for it to finish, or press Stop"):
                next(outputs)

    _, status = verify(tracer, ctx, session, "knockout", 0, progress=trace_meanwhile)
    assert 'data-state="error"' in refused[0] and "nothing new was traced" in refused[0]
    assert 'data-state="done"' in status and session.view_signal == traced.signal
    assert session.shown().text == traced.text and session.shown().verification.check(0) is not None
    assert not session.running and not session.queued

    def stop_then_trace(phase, done, total):
        if done == 0:
            session.stop.set()  # Stop pressed for the verification, then Trace
            with pytest.raises(InputError, match="still verifying"):
                list(run_trace(tracer, ctx, LIMITS, session, [], "attmean", 4, 1.0, 1.0, False))

    verify(tracer, ctx, session, "knockout", 1, progress=stop_then_trace)
    assert session.shown().verification.stopped and session.shown().verification.check(1) is None
    assert not session.stop.is_set()


def test_verify_pressed_while_tracing_is_refused(tracer, ctx, session):
    refused = []

    def verify_meanwhile(*args):
        for step in model_stream(tracer)(*args):
            if step.index == 0 and not refused:
                with pytest.raises(InputError, match="this page is still tracing: wait for it to finish"):
                    verify(tracer, ctx, session, "knockout", 0)
                refused.append(step.index)
            yield step

    items = [ComposedItem("text", text="A red kite. A blue drum.")]
    outputs = list(run_trace(tracer, ctx, LIMITS, session, items, "attmean", 4, 1.0, 1.0, False,
                             stream_fn=verify_meanwhile))
    assert refused and 'data-state="done"' in outputs[-1][1] and session.shown().verification is None
