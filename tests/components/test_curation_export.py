"""Curation knobs (instant re-curation), JSON export/load round trip, the offline HTML report."""

from __future__ import annotations

import base64
import dataclasses
import html
import hashlib
import inspect
import json
import re

import pytest

from components.curation_panel import curation_from_knobs, recurate_view
from components.export_panel import export_html, export_json, load_trace
from components.report import render_report
from components.session import Session
from components.settings import EXAMPLES_DIR
from components.previews import PreviewCache
from omnitrace_core import CurationConfig, InputError, TraceResult
from omnitrace_core.testing.synthetic import trace_with_sources

KNOBS_ALL_ON = (2.0, True, 0.07, True, 0.85, True, True, True, "sum")


def test_knobs_map_to_a_curation_config():
    assert curation_from_knobs(*KNOBS_ALL_ON) == CurationConfig()
    config = curation_from_knobs(0.5, False, 0.2, False, 0.6, False, False, False, "max_token", False)
    assert (config.gamma, config.use_confidence, config.p_min, config.use_p_min, config.coverage, config.use_coverage,
            config.use_pos_weights, config.use_run_coherence, config.token_rule, config.use_run_rescue) == (
        0.5, False, 0.2, False, 0.6, False, False, False, "max_token", False)


def test_every_curation_switch_has_a_knob_with_its_default():
    import gradio as gr

    from components.curation_panel import build_curation_panel

    with gr.Blocks():
        panel = build_curation_panel()
    parameters = list(inspect.signature(curation_from_knobs).parameters)
    switches = {f.name for f in dataclasses.fields(CurationConfig) if f.name.startswith("use_")}
    assert len(panel.knobs) == len(parameters) and switches <= set(parameters)
    assert panel.knobs[parameters.index("use_run_rescue")].elem_id == "ot-use-rescue"
    assert curation_from_knobs(*[knob.value for knob in panel.knobs]) == CurationConfig()


def test_the_run_rescue_knob_recurates(view_context, gallery_result):
    """A sentence whose second unit has a 3-token run of function words (3 of 9 tokens, 5% of the vote):
    the run rescue keeps it below p_min (coverage off, so the walk reaches it); switched off, it is dropped."""
    first, second = (u.index for u in gallery_result.units[:2])
    trace = trace_with_sources(gallery_result, [("Red kites fly over green hills near the sea.",
                                                 [first] * 6 + [second] * 3)])
    trace = dataclasses.replace(trace, tokens=tuple(dataclasses.replace(t, pos="DET" if t.index >= 6 else "NOUN")
                                                    for t in trace.tokens))
    session = Session()
    session.adopt(trace)
    knobs = (2.0, True, 0.07, True, 0.85, False, True, True, "sum")
    recurate_view(view_context, session, *knobs, True)
    assert [s.unit for s in session.shown().spans[0].sources] == [first, second]
    explorer = recurate_view(view_context, session, *knobs, False)
    assert [s.unit for s in session.shown().spans[0].sources] == [first]
    assert not session.shown().curation.use_run_rescue and explorer == view_context.explorer(session)


def test_recuration_is_instant_and_changes_the_view(view_context, synthetic):
    session = Session()
    session.adopt(synthetic)
    loose = recurate_view(view_context, session, 2.0, True, 0.0, False, 1.0, False, True, True, "sum")
    units_loose = {s.unit for span in session.shown().spans for s in span.sources}
    strict = recurate_view(view_context, session, 2.0, True, 0.49, True, 0.5, True, True, True, "sum")
    units_strict = {s.unit for span in session.shown().spans for s in span.sources}
    assert units_strict < units_loose and loose != strict
    # the stored per-token traces are untouched: only the curation differs
    assert session.results[synthetic.signal] is synthetic


def test_json_export_round_trip(synthetic):
    session = Session()
    session.adopt(synthetic)
    session.curation = CurationConfig(use_p_min=False, gamma=1.0)
    path = export_json(session)
    loaded = TraceResult.load(path)
    assert loaded.to_dict() == TraceResult.from_dict(json.loads(json.dumps(session.shown().to_dict()))).to_dict()
    other = Session()
    other.curation = session.curation
    load_trace(other, path)
    assert [[s.unit for s in span.sources] for span in other.shown().spans] == \
           [[s.unit for s in span.sources] for span in session.shown().spans]
    session.close()
    assert not session._workdir


def test_load_rejects_bad_files(tmp_path):
    with pytest.raises(InputError, match="choose"):
        load_trace(Session(), None)
    text = tmp_path / "x.txt"
    text.write_text("{}")
    with pytest.raises(InputError, match="not a .json"):
        load_trace(Session(), str(text))
    bad = tmp_path / "x.json"
    bad.write_text('{"schema_version": 1}')
    with pytest.raises(InputError):
        load_trace(Session(), str(bad))


def test_nothing_to_export_before_a_trace(view_context):
    with pytest.raises(InputError, match="nothing to export"):
        export_json(Session())
    with pytest.raises(InputError, match="nothing to export"):
        export_html(view_context, Session())


def test_report_is_self_contained(synthetic):
    cache = PreviewCache([EXAMPLES_DIR], file_url=None)
    report = render_report(synthetic, cache.for_result(synthetic), model_name="<b>tiny</b>")
    assert "&lt;b&gt;tiny&lt;/b&gt;" in report
    # every image, thumbnail and player is embedded; nothing is fetched
    sources = re.findall(r'\ssrc="([^"]*)"', report)
    assert sources and all(s.startswith("data:") for s in sources)
    assert "<audio" in report and "<video" in report and report.count('class="ot-tile"') > 0
    assert "http://" not in report.split("<script>")[0].replace("http-equiv", "")
    # the CSP admits exactly the report's own script
    script = report.split("<script>")[1].split("</script>")[0]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in html.unescape(report) and "otMount(document.getElementById('ot-report'))" in script


def test_report_of_unavailable_media_still_renders(synthetic, tmp_path):
    cache = PreviewCache([tmp_path], file_url=None)  # the examples folder is not allowed here
    report = render_report(synthetic, cache.for_result(synthetic))
    assert "not available here" in report and "data:image/jpeg" not in report
