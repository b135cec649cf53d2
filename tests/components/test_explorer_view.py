"""The pure explorer view: structure, payload, escaping."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from dataclasses import replace

from components.explorer_view import MediaPreview, build_payload, is_weak, json_for_html, modality_split, render_explorer
from components.session import ComposedItem
from tests.components.synthetic import synthetic_trace

INJECTION = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=1">'


def payload_of(markup: str) -> dict:
    match = re.search(r'class="ot-root[^"]*" data-payload="([^"]*)"', markup)
    return json.loads(html.unescape(match.group(1)))


def test_json_for_html_cannot_close_a_script():
    text = json_for_html({"a": "</script><!-- x", "b": float("nan"), "c": [float("inf")]})
    assert "</" not in text and "<!--" not in text
    assert json.loads(text) == {"a": "</script><!-- x", "b": None, "c": [None]}


def test_every_sentence_unit_tile_and_segment_is_addressable(synthetic):
    markup = render_explorer(synthetic)
    assert markup.count('data-span=') == len(synthetic.spans)
    for span in synthetic.spans:
        assert f'data-span="{span.index}"' in markup
    for unit in synthetic.units:
        assert f'data-unit="{unit.index}"' in markup
    image = next(i for i in synthetic.items if i.modality == "image")
    assert markup.count('class="ot-tile"') == image.grid[0] * image.grid[1]
    timed = [u for u in synthetic.units if u.time_start is not None]
    assert markup.count('class="ot-seg"') == len(timed)


def test_payload_carries_the_curated_sources(synthetic):
    payload = payload_of(render_explorer(synthetic))
    assert payload == json.loads(json.dumps(build_payload(synthetic)))
    for span, entry in zip(synthetic.spans, payload["spans"]):
        assert [s["unit"] for s in entry["sources"]] == [s.unit for s in span.sources]
        for source, data in zip(span.sources, entry["sources"]):
            if source.tile_scores is not None:
                assert data["tiles"] == list(source.tile_scores) and data["grid"] == list(source.grid)
    assert len(payload["tokens"]) == len(synthetic.tokens)
    assert {t["w"] for t in payload["tokens"]} == {synthetic.curation.pos_weight("NOUN")}


def test_each_tokens_strongest_units_are_the_results_top_sources(gallery_result):
    tokens = build_payload(gallery_result)["tokens"]
    assert len(tokens) == len(gallery_result.tokens) > 0
    for t, row in enumerate(tokens):
        assert row["top"] == [[unit, round(mass, 4)] for unit, mass in gallery_result.top_sources(t)]


def test_modality_split_and_weak_sentences(synthetic):
    by_text = {span.text: span for span in synthetic.spans}
    assert modality_split(by_text["The image shows a red house."]) == {"image": 1.0}
    weak = by_text["Nothing supports this sentence."]
    assert is_weak(weak) and modality_split(weak) == {}
    markup = render_explorer(synthetic)
    assert markup.count("ot-sent ot-weak") == 1 and "no strong source" in markup
    for span in synthetic.spans:
        if span.sources:
            assert abs(sum(modality_split(span).values()) - 1.0) < 1e-3


def test_model_and_user_text_is_escaped(gallery_result):
    poisoned = synthetic_trace(gallery_result, sentences=((INJECTION + " Said the model.", "text"),
                                                          ("Fine.", "image")))
    items = list(poisoned.items)
    items[1] = replace(items[1], text=INJECTION + " " + items[1].text, label=INJECTION)
    markup = render_explorer(replace(poisoned, items=tuple(items)), caption=INJECTION)
    assert "<script" not in markup and "<img src=x" not in markup
    assert "&lt;script&gt;" in markup


def test_media_previews_and_missing_media(synthetic):
    image = next(i for i in synthetic.items if i.modality == "image")
    audio = next(i for i in synthetic.items if i.modality == "audio")
    video = next(i for i in synthetic.items if i.modality == "video")
    media = {image.index: MediaPreview("image", src="data:image/jpeg;base64,AAAA", width=4, height=3),
             audio.index: MediaPreview("audio", src="/gradio_api/file=/x.wav", duration=3.0, peaks=(0.5, 1.0)),
             video.index: MediaPreview("video", note="traffic.mp4: not available here")}
    markup = render_explorer(synthetic, media)
    assert 'src="data:image/jpeg;base64,AAAA"' in markup
    assert '<audio class="ot-player"' in markup and 'class="ot-wave"' in markup
    assert "traffic.mp4: not available here" in markup and "<video" not in markup


def test_before_a_result_the_inputs_and_pending_text_show():
    items = [ComposedItem(kind="text", text="Hello <b>there</b>."), ComposedItem(kind="image", path="", name="x.png")]
    markup = render_explorer(None, {}, items=[it.info(k) for k, it in enumerate(items)], pending="writ<ing", progress=0.25)
    assert "Hello &lt;b&gt;there&lt;/b&gt;." in markup and "writ&lt;ing" in markup
    assert 'aria-valuenow="25"' in markup and 'data-span=' not in markup
    assert payload_of(markup)["spans"] == []


def test_the_view_modules_never_import_gradio():
    code = ("import sys; import components.explorer_view, components.compare, components.report, "
            "components.plots; assert 'gradio' not in sys.modules, 'gradio imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(__import__("pathlib").Path(__file__).parents[2]))


def test_labels_lead_with_what_tells_sources_apart(synthetic):
    """Time ranges, image numbers and tiles come first, as ``where``; the rest of the label is ``name``."""
    payload = build_payload(synthetic)
    for unit, entry in zip(synthetic.units, payload["units"]):
        if unit.time_start is not None:
            assert entry["where"] == f"{unit.time_start:.1f}\u2013{unit.time_end:.1f} s"
            assert entry["name"] == synthetic.items[unit.item].label  # the time is not repeated
        elif unit.modality == "image":
            assert entry["where"] == f"#{unit.item + 1}" and entry["name"] == unit.label
        else:
            assert entry["where"] == "" and entry["name"] == unit.label  # a text unit starts with its sentence
    video = [entry["where"] for entry in payload["units"] if entry["modality"] == "video"]
    assert len(video) == len(set(video)) >= 2  # the video's units differ in what is shown first
    image = next(i for i in synthetic.items if i.modality == "image")
    cols = image.grid[1]
    for span, entry in zip(synthetic.spans, payload["spans"]):
        for source, data in zip(span.sources, entry["sources"]):
            if source.tile_scores is not None:
                best = max(range(len(source.tile_scores)), key=source.tile_scores.__getitem__)
                assert data["where"] == f"#{source.item + 1} \u00b7 tile {best // cols + 1},{best % cols + 1}"
    units, _ = synthetic.token_trace()
    for t, row in enumerate(payload["tokens"]):
        if units[t] >= 0 and synthetic.units[units[t]].modality == "image":
            assert row["where"].startswith(f"#{image.index + 1} \u00b7 tile ")
        elif units[t] >= 0:
            assert row["where"] == payload["units"][units[t]]["where"]
