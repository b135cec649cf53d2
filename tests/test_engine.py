"""The engine end to end on the tiny Qwen2.5-Omni: exact signals, streaming, stop, re-curation, errors."""

from __future__ import annotations

import copy
import threading

import numpy as np
import pytest
import torch

from omnitrace_core import (AudioItem, CurationConfig, GenerationConfig, ImageItem, InputError, MediaError,
                            SourceConfig, TextItem, TraceResult, VideoItem, list_signals, register_signal)
from omnitrace_core.capture import CAPTURE_ATTENTION
from omnitrace_core.signals import Signal

GEN = GenerationConfig(max_new_tokens=5)


def _items(media, video=True):
    items = [TextItem("Answer the question.\n", is_prompt=True),
             TextItem("Which is brighter? Think.\nA. left\nB. right"),
             ImageItem(str(media["image_a"])), AudioItem(str(media["audio"]))]
    if video:
        items.append(VideoItem(str(media["video"])))
    return items


def _full_forward(tracer, prepared, generated, eager_grads=False):
    """Reference: one eager forward over prompt + generated tokens with all attention maps."""
    backend = tracer.backend
    model = backend.model
    ids = torch.cat([prepared.input_ids, torch.tensor([generated])], dim=1)
    prompt_pos = prepared.extras["position_ids"]
    delta = prepared.extras["rope_delta"]
    gen_pos = (torch.arange(prepared.length, ids.shape[1]) + delta).view(1, 1, -1).expand(3, 1, -1)
    positions = torch.cat([prompt_pos, gen_pos], dim=2)
    model.set_attn_implementation({"text_config": "eager"})
    try:
        if eager_grads:
            model.requires_grad_(True)
        with torch.set_grad_enabled(eager_grads):
            out = model(input_ids=ids, position_ids=positions, output_attentions=True, **prepared.model_inputs)
        return out
    finally:
        model.requires_grad_(False)
        model.set_attn_implementation({"text_config": CAPTURE_ATTENTION})


def _reduce(result, scores, prompt_length):
    """Reference reduction of context scores to per-atom sums."""
    atoms = np.zeros(result.sources.num_atoms)
    pa = result.sources.position_atom
    mask = pa >= 0
    np.add.at(atoms, pa[mask], scores[:prompt_length][mask])
    return atoms


@pytest.mark.parametrize("signal", ["attmean", "attraw"])
def test_attention_signals_equal_full_eager_forward(tracer, media, signal):
    items = _items(media)
    result = tracer.trace(items, signal=signal, generation=GEN)
    prepared = tracer.backend.prepare(items, SourceConfig())
    generated = [t.token_id for t in result.tokens]
    assert generated, "the tiny model generated nothing"
    out = _full_forward(tracer, prepared, generated)
    L = prepared.length
    layers = range(len(out.attentions)) if signal == "attmean" else [len(out.attentions) - 1]
    for t in range(len(generated)):
        q = L - 1 + t  # the query that predicts generated token t
        rows = torch.stack([out.attentions[layer][0, :, q, : q + 1].mean(0) for layer in layers]).mean(0)
        expected = _reduce(result, rows.double().numpy(), L)
        np.testing.assert_allclose(result.atom_sum[t], expected, rtol=1e-5, atol=1e-7)
        # all attention mass is either on a source atom or outside
        assert result.atom_sum[t].sum() + result.outside[t] == pytest.approx(1.0, abs=1e-5)


def test_attgrads_equals_full_sequence_backward(tracer, media):
    items = _items(media, video=False)
    result = tracer.trace(items, signal="attgrads", generation=GEN)
    prepared = tracer.backend.prepare(items, SourceConfig())
    generated = [t.token_id for t in result.tokens]
    L = prepared.length
    for t in range(len(generated)):
        out = _full_forward(tracer, prepared, generated, eager_grads=True)
        q = L - 1 + t
        logp = torch.log_softmax(out.logits[0, q].float(), -1)[generated[t]]
        attn = out.attentions[-1]
        (grad,) = torch.autograd.grad(logp, attn)
        contribution = (attn[0, :, q, : q + 1] * grad[0, :, q, : q + 1]).sum(0).clamp_min(0).detach()
        contribution = contribution / contribution.sum()
        expected = _reduce(result, contribution.double().numpy(), L)
        np.testing.assert_allclose(result.atom_sum[t], expected, rtol=1e-4, atol=1e-6)


def test_no_context_by_context_attention_map_is_built(tracer, media, monkeypatch):
    """The capture path never materialises an L x L map: the largest softmax it runs is one row."""
    import omnitrace_core.capture as capture

    largest = []
    original = torch.softmax

    def spy(x, *args, **kwargs):
        largest.append(tuple(x.shape))
        return original(x, *args, **kwargs)

    monkeypatch.setattr(capture.torch, "softmax", spy)
    result = tracer.trace(_items(media), signal="attmean", generation=GEN)
    L = result.prompt_tokens
    assert largest and all(shape[-2] == tracer.backend.model.config.text_config.num_attention_heads
                           // tracer.backend.model.config.text_config.num_key_value_heads for shape in largest)
    assert max(shape[-1] for shape in largest) <= L + len(result.tokens)


def test_stream_yields_every_token_then_the_result(tracer, media):
    steps = list(tracer.stream(_items(media, video=False), generation=GEN, partial_results=True))
    assert steps[-1].done and isinstance(steps[-1].result, TraceResult)
    tokens = steps[:-1]
    result = steps[-1].result
    assert [s.token_id for s in tokens] == [t.token_id for t in result.tokens]
    assert [s.index for s in tokens] == list(range(len(tokens)))
    assert tokens[-1].text == result.text
    units, conf = result.token_trace()
    assert [s.unit for s in tokens] == units.tolist()
    np.testing.assert_allclose([s.confidence for s in tokens], conf, rtol=1e-6)


def test_stop_event_ends_generation_and_keeps_tokens(tracer, media):
    stop = threading.Event()
    kept = []
    for step in tracer.stream(_items(media, video=False), generation=GenerationConfig(max_new_tokens=50), stop=stop):
        if step.done:
            result = step.result
            break
        kept.append(step.token_id)
        if len(kept) == 2:
            stop.set()
    assert result.stop_reason == "stopped"
    assert [t.token_id for t in result.tokens] == kept


def test_result_round_trips_through_json_and_recurates_without_generation(tracer, media, tmp_path):
    result = tracer.trace(_items(media), generation=GenerationConfig(max_new_tokens=12))
    back = TraceResult.load(result.save(tmp_path / "trace.json"))
    assert back.to_dict() == TraceResult.from_dict(result.to_dict()).to_dict()
    assert back == result  # the same trace, as saved (scores to 6 decimals)
    # re-curating the loaded trace with the same settings reproduces its spans (JSON keeps 6 decimals)
    again = back.recurate(result.curation)
    for mine, theirs in zip(again.spans, result.spans):
        assert [s.unit for s in mine.sources] == [s.unit for s in theirs.sources]
        assert [s.share for s in mine.sources] == pytest.approx([s.share for s in theirs.sources], abs=1e-5)
    # without p_min and coverage, every unit a token traced to is selected
    loose = back.recurate(CurationConfig(use_p_min=False, use_coverage=False, use_confidence=False,
                                         use_pos_weights=False))
    units, _ = back.token_trace()
    for span in loose.spans:
        traced = set(units[span.token_start:span.token_end].tolist()) - {-1}
        assert {s.unit for s in span.sources} == traced
    # the strongest-token rule is available on the same trace
    max_units, _ = back.token_trace("max_token")
    assert max_units.shape == units.shape


def test_sources_describe_each_modality(tracer, media):
    result = tracer.trace(_items(media), generation=GenerationConfig(max_new_tokens=12))
    by_modality = {}
    for unit in result.units:
        by_modality.setdefault(unit.modality, []).append(unit)
    assert set(by_modality) == {"text", "image", "audio", "video"}
    assert [u.label for u in by_modality["text"]] == ["Which is brighter?", "Think.", "A. left", "B. right"]
    assert len(by_modality["audio"]) == 3 and by_modality["audio"][-1].time_end == pytest.approx(3.0, abs=0.01)
    assert len(by_modality["video"]) == 4
    loose = result.recurate(CurationConfig(use_p_min=False, use_coverage=False))
    for span in loose.spans:
        for src in span.sources:
            if src.modality == "image":
                assert len(src.tile_scores) == src.grid[0] * src.grid[1] and max(src.tile_scores) == 1.0
            if src.modality == "video":
                assert set(src.tracks) == {"visual", "audio"}
                assert sum(src.tracks.values()) == pytest.approx(1.0, abs=1e-3)
            if src.modality == "text":
                text = result.items[src.item].text
                assert text[src.char_start:src.char_end].strip()


def test_prompt_is_a_source_only_when_asked(tracer, media):
    items = _items(media, video=False)
    excluded = tracer.trace(items, generation=GenerationConfig(max_new_tokens=1))
    included = tracer.trace(items, generation=GenerationConfig(max_new_tokens=1),
                            sources=SourceConfig(include_prompt=True))
    assert not any(u.item == 0 for u in excluded.units)
    assert any(u.item == 0 and u.label == "Answer the question." for u in included.units)


def test_user_registered_signal_runs(tracer, media, monkeypatch):
    import omnitrace_core.signals.base as registry

    # registered in a copy of the registry, restored afterwards: the test signal must not reach other tests
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @register_signal
    class FirstLayerMax(Signal):
        name = "test_first_layer_max"

        def layers(self, num_layers):
            return (0,)

        def score(self, rows, grads=None):
            return rows[0].max(dim=0).values

    result = tracer.trace(_items(media, video=False), signal="test_first_layer_max", generation=GEN)
    assert result.signal == "test_first_layer_max" and result.atom_sum.shape[0] == len(result.tokens)
    assert "test_first_layer_max" in list_signals()


def test_no_test_signal_is_left_registered():
    assert all(not name.startswith("test_") for name in list_signals())


def test_sampling_is_seeded(tracer, media):
    config = GenerationConfig(max_new_tokens=6, do_sample=True, temperature=1.5, top_k=50, top_p=0.95, seed=7)
    a = tracer.trace(_items(media, video=False), generation=config)
    b = tracer.trace(_items(media, video=False), generation=config)
    assert [t.token_id for t in a.tokens] == [t.token_id for t in b.tokens]


@pytest.mark.parametrize("make_items, error, message", [
    (lambda d: [], InputError, "empty"),
    (lambda d: ["just a string"], InputError, "accepted item types"),
    (lambda d: [TextItem("   ")], InputError, "nothing to trace"),
    (lambda d: [TextItem("Look."), ImageItem(str(d / "broken.jpg"))], MediaError, "broken.jpg"),
    (lambda d: [TextItem("Listen."), AudioItem(str(d / "empty.wav"))], MediaError, "empty.wav"),
    (lambda d: [TextItem("Watch."), VideoItem(str(d / "noframes.mp4"))], MediaError, "noframes.mp4"),
    (lambda d: [TextItem("Look."), ImageItem(str(d / "missing.png"))], MediaError, "missing.png"),
])
def test_bad_input_raises_a_clear_error(tracer, tmp_path, make_items, error, message):
    import soundfile as sf

    from tests.media_files import encode_audio

    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    sf.write(str(tmp_path / "empty.wav"), np.zeros(0, np.float32), 16000)
    import av

    with av.open(str(tmp_path / "noframes.mp4"), "w") as out:  # an audio-only mp4: no video frames
        stream = out.add_stream("aac", rate=44100)
        stream.layout = "mono"
        encode_audio(out, stream, np.zeros(44100, np.float32), 44100)
    with pytest.raises(error, match=message):
        tracer.trace(make_items(tmp_path), generation=GEN)


def test_min_new_tokens_suppresses_eos(tracer, media):
    result = tracer.trace([TextItem("Say something.")], generation=GenerationConfig(max_new_tokens=9, min_new_tokens=9))
    assert len(result.tokens) == 9 and result.stop_reason == "max_new_tokens"


def test_prompt_over_the_token_limit_is_refused_before_the_model_runs(tracer, media, monkeypatch):
    items = _items(media, video=False)
    length = tracer.backend.prepare(items, SourceConfig()).length
    calls = []
    monkeypatch.setattr(tracer.backend, "prefill", lambda *a, **k: calls.append(1))
    with pytest.raises(InputError, match=rf"^the prompt is {length} tokens, over the limit of {length - 1} \(the "
                                         r"maximum prompt length setting, --max-prompt-tokens\)\. Shorten the input: "
                                         r"audio 'tone.wav' takes 75 tokens \(a shorter audio clip would take fewer\); "
                                         r"text .*; image 'a.png' takes 12 tokens \(a smaller image would take fewer\)$"):
        tracer.trace(items, generation=GenerationConfig(max_prompt_tokens=length - 1))
    assert calls == []


def test_long_audio_is_refused_before_the_processor_decodes_it(tracer, tmp_path, monkeypatch):
    """A lower bound from the audio's duration (half its nominal 25 tokens/s) refuses gross cases early."""
    from tests.media_files import write_wav

    long = write_wav(tmp_path / "long.wav", np.zeros(60 * 16000, np.float32))  # 1500 tokens when prepared
    prepared = []
    original = tracer.backend.prepare
    monkeypatch.setattr(tracer.backend, "prepare", lambda *a, **k: prepared.append(1) or original(*a, **k))
    items = [TextItem("What is said?"), AudioItem(str(long))]
    with pytest.raises(InputError, match=r"^the prompt is at least 750 tokens, over the limit of 700 .*"
                                         r"audio 'long.wav' takes at least 750 tokens"):
        tracer.trace(items, generation=GenerationConfig(max_prompt_tokens=700))
    monkeypatch.setattr(tracer.backend.text_model_config(), "max_position_embeddings", 1000)
    with pytest.raises(InputError, match=r"^the prompt is at least 750 tokens and up to 256 new tokens follow it: "
                                         r"at least 1006 positions, over the 1000 the model takes"):
        tracer.trace(items)
    assert prepared == []
    # within the early bound, the exact count decides
    monkeypatch.setattr(tracer.backend.text_model_config(), "max_position_embeddings", 32768)
    with pytest.raises(InputError, match=r"^the prompt is \d+ tokens, over the limit of 800 .* 'long.wav' takes 1500 tokens"):
        tracer.trace(items, generation=GenerationConfig(max_prompt_tokens=800))
    assert prepared == [1]


def test_prompt_that_leaves_no_room_for_the_answer_is_refused_before_the_model_runs(tracer, media, monkeypatch):
    """The model's positions (its text config's max_position_embeddings) bound prompt + new tokens."""
    items = _items(media, video=False)
    length = tracer.backend.prepare(items, SourceConfig()).length
    monkeypatch.setattr(tracer.backend.text_model_config(), "max_position_embeddings", length + 3)
    forwards = []
    original = tracer.backend.model.forward
    monkeypatch.setattr(tracer.backend.model, "forward", lambda *a, **k: forwards.append(1) or original(*a, **k))
    with pytest.raises(InputError) as info:
        tracer.trace(items, generation=GenerationConfig(max_new_tokens=4))
    assert forwards == []  # refused before the encoders or the prefill ran
    message = str(info.value)
    assert (f"the prompt is {length} tokens and up to 4 new tokens follow it: {length + 4} positions, over the "
            f"{length + 3} the model takes (so at most {length - 1} prompt tokens)") in message
    assert "audio 'tone.wav' takes 75 tokens" in message and "--max-new-tokens" in message
    assert len(tracer.trace(items, generation=GenerationConfig(max_new_tokens=3, min_new_tokens=3)).tokens) == 3


def test_video_items_record_their_audio_track_and_whether_it_was_traced(tracer, media):
    """has_audio says what the file holds; audio_traced whether that track was part of the prompt."""
    items = [TextItem("Compare."), VideoItem(str(media["video"])), VideoItem(str(media["silent_video"]))]
    one = GenerationConfig(max_new_tokens=1)
    without = tracer.trace(items, generation=one, sources=SourceConfig(use_audio_in_video=False, video_fps=1.0))
    traced = tracer.trace(items, generation=one, sources=SourceConfig(video_fps=1.0))
    assert {k: without.items[1].media[k] for k in ("has_audio", "audio_traced")} == {"has_audio": True,
                                                                                   "audio_traced": False}
    assert {k: traced.items[1].media[k] for k in ("has_audio", "audio_traced")} == {"has_audio": True,
                                                                                  "audio_traced": True}
    for result in (without, traced):
        assert not result.items[2].media["has_audio"] and not result.items[2].media["audio_traced"]
        assert TraceResult.from_json(result.to_json()).items[1].media == result.items[1].media


@pytest.fixture(scope="module")
def saved_trace(tracer, media):
    return tracer.trace(_items(media, video=False), generation=GEN).to_dict()


@pytest.mark.parametrize("break_it, field", [
    (lambda d: d.pop("model_id"), "'model_id'"),
    (lambda d: [d.pop("atom_max"), d.pop("outside")], "'atom_max', 'outside'"),
    (lambda d: d.update(atom_sum=[row + [0.0] for row in d["atom_sum"]]), "'atom_sum'.*shape"),
    (lambda d: d.update(atom_max=[row[:-1] for row in d["atom_max"]]), "'atom_max'.*shape"),
    (lambda d: d.update(atom_max=[d["atom_max"][0], d["atom_max"][1][:-1]]), "'atom_max'.*different lengths"),
    (lambda d: d.update(outside=d["outside"][:-1]), "'outside'.*shape"),
    (lambda d: d.update(model_id=["not", "text"]), "'model_id'.*string"),
    (lambda d: d["tokens"][0].pop("token_id"), "'tokens'"),
    (lambda d: d["generation"].update(beam_width=4), "'generation'.*beam_width"),
    (lambda d: d.update(sources={"units": 3}), "'sources'"),
    (lambda d: d["spans"][0].update(token_end=10_000), "inconsistent.*token range"),
])
def test_malformed_saved_traces_raise_input_errors_naming_the_field(saved_trace, break_it, field):
    saved = copy.deepcopy(saved_trace)
    assert len(saved["tokens"]) >= 2 and saved["spans"]
    break_it(saved)
    with pytest.raises(InputError, match=field):
        TraceResult.from_dict(saved)
    with pytest.raises(InputError, match="JSON object"):
        TraceResult.from_dict(["not", "a", "trace"])
