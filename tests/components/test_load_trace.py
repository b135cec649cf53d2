"""Loaded trace files: checked before anything is rendered, every failure named, any trace exportable."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import gradio as gr
import pytest

from components.export_panel import export_html, export_json, load_trace, make_export_handlers
from components.input_checks import TraceBounds, check_loaded_trace
from components.session import Session
from omnitrace_core import InputError, TraceResult


def write(tmp_path: Path, data: dict, name: str = "trace.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


def image_index(data: dict) -> int:
    return next(k for k, item in enumerate(data["items"]) if item["modality"] == "image")


@pytest.fixture
def data(synthetic) -> dict:
    return copy.deepcopy(synthetic.to_dict())


def test_a_huge_tile_grid_is_refused_before_rendering(tmp_path, data, view_context, synthetic):
    # a small file whose image claims 1000 x 1000 tiles once made the server build a 42 MB page
    data["items"][image_index(data)]["grid"] = [1000, 1000]
    session = Session()
    session.adopt(synthetic)
    on_load = make_export_handlers(view_context)[2]
    started = time.perf_counter()
    with pytest.raises(gr.Error) as refused:
        on_load(session, write(tmp_path, data))
    assert time.perf_counter() - started < 5
    assert "1000x1000 tile grid" in refused.value.message and "trace.json" in refused.value.message
    assert session.shown().text == synthetic.text  # the trace shown before stays


@pytest.mark.parametrize("change, message", [
    (lambda d: d["items"][image_index(d)].update(grid=[2, 3]), "claims a 2x3 tile grid"),
    (lambda d: d["sources"]["units"][1].update(char_start=0, char_end=d["sources"]["units"][0]["char_end"]),
     "text unit 1 spans characters"),
    (lambda d: d["sources"]["units"].append(dict(d["sources"]["units"][0], index=len(d["sources"]["units"]))),
     "has no atoms"),
    (lambda d: d["sources"]["units"][0].update(item=image_index(d)), "not a text item"),
    (lambda d: next(s for span in d["spans"] for s in span["sources"] if "tile_scores" in s).update(
        tile_scores=[0.5, 1.0]), "2 tile scores"),
])
def test_a_trace_that_disagrees_with_its_own_arrays_is_refused(tmp_path, data, change, message):
    change(data)
    with pytest.raises(InputError, match=message):
        load_trace(Session(), write(tmp_path, data))


def test_size_bounds(synthetic):
    check_loaded_trace(synthetic)  # a real trace passes
    for bounds, what in [(TraceBounds(max_tokens=2), "generated tokens"), (TraceBounds(max_units=2), "source units"),
                         (TraceBounds(max_atoms=2), "atoms"), (TraceBounds(max_image_tiles=2), "tile grid")]:
        with pytest.raises(InputError, match=what):
            check_loaded_trace(synthetic, bounds)


def test_malformed_and_non_utf8_files_get_a_message(tmp_path, data):
    data["atom_sum"][0] = data["atom_sum"][0][:-1]  # one row too short
    with pytest.raises(InputError, match="'ragged.json' is not a trace this explorer can show"):
        load_trace(Session(), write(tmp_path, data, "ragged.json"))
    latin = tmp_path / "latin.json"
    latin.write_bytes('{"text": "caf\u00e9"}'.encode("latin-1"))
    with pytest.raises(InputError, match="'latin.json' is not UTF-8 text"):
        load_trace(Session(), str(latin))


def test_an_unexpected_failure_is_reported_too(tmp_path, data, view_context):
    # a value the checks do not look at, which the view cannot show: a message, never a silent failure
    data["items"][image_index(data)]["media"] = {"width": '4" onmouseover="alert(1)', "height": 3}
    data["items"][image_index(data)]["path"] = str(tmp_path / "gone.png")
    session = Session()
    with pytest.raises(gr.Error) as failed:
        make_export_handlers(view_context)[2](session, write(tmp_path, data))
    assert "load trace failed: ValueError" in failed.value.message
    assert session.shown() is None


@pytest.mark.parametrize("signal, model_id", [("../../escape/attmean", "../x/../../model"), ("a/b", "/"),
                                              ("..", "..")])
def test_a_loaded_trace_with_any_signal_or_model_name_exports(tmp_path, data, view_context, signal, model_id):
    data.update(signal=signal, model_id=model_id)
    session = Session()
    load_trace(session, write(tmp_path, data))
    for path in (export_json(session), export_html(view_context, session)):
        assert Path(path).parent == session.workdir and Path(path).is_file()
        assert "/" not in Path(path).name[len("omnitrace_"):]
    assert TraceResult.load(export_json(session)).signal == signal
    session.close()
