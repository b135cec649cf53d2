"""The explorer launched in-process and driven through gradio_client: streaming, stop, errors, serving."""

from __future__ import annotations

import html
import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from omnitrace_core import TraceResult
from tests.components.app_harness import media_path, shared_app

pytestmark = pytest.mark.slow

gradio_client = pytest.importorskip("gradio_client")
RUN = dict(signal="attmean", audio_bin=1.0, video_bin=1.0, include_prompt=False)
P_MIN_OFF = (2.0, True, 0.07, False, 0.85, True, True, True, "sum")  # knob order of /recurate


@pytest.fixture(scope="module")
def app(tracer, request):
    return shared_app(tracer, request)


def client(app):
    return gradio_client.Client(app.url, verbose=False)


def payload(markup: str) -> dict:
    return json.loads(html.unescape(re.search(r'data-payload="([^"]*)"', markup).group(1)))


def state(status: str) -> str:
    return re.search(r'data-state="(\w+)"', status).group(1)


def compose(c, text="Describe the scene. Then the sound."):
    c.predict(text, False, api_name="/add_text")
    c.predict([gradio_client.handle_file(str(media_path("scene.png"))),
               gradio_client.handle_file(str(media_path("chirp.wav")))], api_name="/add_media")


def test_trace_streams_and_recurates_and_exports(app, tmp_path):
    c = client(app)
    compose(c)
    job = c.submit(max_new_tokens=6, api_name="/trace", **RUN)
    outputs = list(job)
    assert len(outputs) >= 2, "the run must stream (inputs first, result last)"
    assert state(outputs[0][1]) == "running" and 'class="ot-root' in outputs[0][0]
    explorer, status = job.outputs()[-1]
    assert state(status) == "done"
    spans = payload(explorer)["spans"]
    assert spans and explorer.count("data-span=") == len(spans)

    explorer = c.predict(*P_MIN_OFF, api_name="/recurate")  # the run rescue knob, last, keeps its default
    curated = payload(explorer)["spans"]
    assert all(span["sources"] for span in curated if not span["weak"])

    [exported] = c.predict(api_name="/export_json")
    result = TraceResult.load(exported)
    assert not result.curation.use_p_min and result.curation.use_run_rescue and result.signal == "attmean"
    assert [[s.unit for s in span.sources] for span in result.spans] == [[s["unit"] for s in span["sources"]]
                                                                        for span in curated]
    [report] = c.predict(api_name="/export_html")
    text = Path(report).read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "otMount" in text and "data:image/jpeg;base64," in text

    c.predict(*P_MIN_OFF, False, api_name="/recurate")  # the run rescue switched off
    [exported] = c.predict(api_name="/export_json")
    assert not TraceResult.load(exported).curation.use_run_rescue

    # a second client (another user) loads the exported JSON back
    other = client(app)
    loaded = other.predict(gradio_client.handle_file(exported), api_name="/load_trace")
    assert payload(loaded)["tokens"] == payload(explorer)["tokens"]


def test_stop_ends_the_generation_early(app):
    c = client(app)
    c.predict("Tell a long story about a house.", False, api_name="/add_text")
    job = c.submit(max_new_tokens=app.settings.limits.max_new_tokens, api_name="/trace", **RUN)
    for explorer, status in job:
        if "Writing" in status:
            c.predict(api_name="/stop")
            break
    _, status = job.result()  # waits for the run to end
    assert state(status) == "stopped"


def test_bad_input_gets_a_clear_message_and_the_app_keeps_serving(app, tmp_path):
    c = client(app)
    with pytest.raises(Exception, match="the input is empty"):
        c.predict(max_new_tokens=4, api_name="/trace", **RUN)
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really" * 10)
    with pytest.raises(Exception, match="broken.png"):
        c.predict([gradio_client.handle_file(str(corrupt))], api_name="/add_media")
    with pytest.raises(Exception, match="empty"):
        c.predict("   ", False, api_name="/add_text")
    with pytest.raises(Exception, match="nothing to export"):
        c.predict(api_name="/export_json")
    c.predict("Still serving.", False, api_name="/add_text")
    _, status = c.predict(max_new_tokens=2, api_name="/trace", **RUN)
    assert state(status) == "done"


def test_sessions_do_not_share_inputs_or_results(app):
    first, second = client(app), client(app)
    first.predict("Alpha alpha marker.", False, api_name="/add_text")
    explorer_first, _ = first.predict(max_new_tokens=2, api_name="/trace", **RUN)
    with pytest.raises(Exception, match="the input is empty"):  # the second user has composed nothing
        second.predict(max_new_tokens=2, api_name="/trace", **RUN)
    with pytest.raises(Exception, match="nothing to export"):
        second.predict(api_name="/export_json")
    second.predict("Bravo bravo marker.", False, api_name="/add_text")
    explorer_second, _ = second.predict(max_new_tokens=2, api_name="/trace", **RUN)
    assert "Alpha alpha" in explorer_first and "Alpha alpha" not in explorer_second
    assert "Bravo bravo" in explorer_second


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_only_uploads_and_assets_are_served(app):
    base = app.url + "gradio_api/file="
    assert _get(base + str(media_path("scene.png"))) == 200
    repo = Path(__file__).resolve().parents[1]
    assert _get(base + str(repo / "app.py")) == 403
    assert _get(base + str(repo / "components" / "session.py")) == 403
    assert _get(base + "/etc/passwd") == 403


def test_generation_is_queued_with_a_concurrency_limit(app):
    config = app.demo.config
    limits = {dep["api_name"]: dep for dep in config["dependencies"] if dep.get("api_name")}
    for name in ("trace", "compare"):
        assert limits[name]["queue"] is not False
    fns = {fn.api_name: fn for fn in app.demo.fns.values()}
    assert fns["trace"].concurrency_limit == app.settings.concurrency
    assert fns["trace"].concurrency_id == fns["compare"].concurrency_id


def test_a_failed_run_keeps_the_last_trace_and_its_exports(app):
    c = client(app)
    c.predict("A red house stands in a field.", False, api_name="/add_text")
    good, status = c.predict(max_new_tokens=3, api_name="/trace", **RUN)
    assert state(status) == "done"
    # a prompt over the limit fails inside the run, after "Preparing the prompt..."
    c.predict("word " * (app.settings.limits.max_prompt_tokens + 100), False, api_name="/add_text")
    job = c.submit(max_new_tokens=3, api_name="/trace", **RUN)
    with pytest.raises(Exception, match="over the limit"):
        job.result()
    explorer, status = job.outputs()[-1]
    assert state(status) == "error"
    assert payload(explorer)["tokens"] == payload(good)["tokens"]
    [exported] = c.predict(api_name="/export_json")
    assert [t.text for t in TraceResult.load(exported).tokens] == [t["text"] for t in payload(good)["tokens"]]


def test_bad_trace_files_get_a_message_and_odd_names_export(app, tmp_path):
    c = client(app)
    c.predict("A red house stands in a field.", False, api_name="/add_text")
    c.predict(max_new_tokens=2, api_name="/trace", **RUN)
    [exported] = c.predict(api_name="/export_json")
    data = json.loads(Path(exported).read_text(encoding="utf-8"))
    ragged = dict(data, atom_sum=[row[:-1] for row in data["atom_sum"]][:1] + data["atom_sum"][1:])
    bad = tmp_path / "ragged.json"
    bad.write_text(json.dumps(ragged), encoding="utf-8")
    with pytest.raises(Exception, match="ragged.json"):
        c.predict(gradio_client.handle_file(str(bad)), api_name="/load_trace")
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"text": "caf\xe9"}')
    with pytest.raises(Exception, match="not UTF-8"):
        c.predict(gradio_client.handle_file(str(latin)), api_name="/load_trace")
    slashed = tmp_path / "slashed.json"
    slashed.write_text(json.dumps(dict(data, signal="../a/b")), encoding="utf-8")
    c.predict(gradio_client.handle_file(str(slashed)), api_name="/load_trace")
    [again] = c.predict(api_name="/export_json")
    assert TraceResult.load(again).signal == "../a/b" and "/" not in Path(again).name
