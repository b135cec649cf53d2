"""Speech-segment source units on real audio and video with tones at known times, through the engine."""

from __future__ import annotations

import numpy as np
import pytest

from omnitrace_core import (AudioItem, GenerationConfig, InputError, SourceConfig, TextItem, TraceResult, Tracer,
                            VideoItem)
from omnitrace_core import layout as L
from omnitrace_core.sources import build_sources
from omnitrace_core.speech import SpeechSegment, plan_units, resolve_segments
from tests.speech.conftest import (AUDIO_SECONDS, AUDIO_TONES, VIDEO_SECONDS, VIDEO_TONES, EnergyRecognizer,
                                   FixedRecognizer)

GEN = GenerationConfig(max_new_tokens=6)
SEGMENTS = SourceConfig(audio_units="segments")
PROMPT = TextItem("Describe what you hear.\n", is_prompt=True)
TRANSCRIPT = [{"start": a, "end": b, "text": f"Tone number {k + 1}."} for k, (a, b, _) in enumerate(AUDIO_TONES)]


def _build(tracer, items, config, recognizer=None):
    """What the engine does before decoding: plan, prepare, resolve segments, build sources."""
    plan = plan_units(items, config)
    prepared = tracer.backend.prepare(items, config)
    speech = resolve_segments(items, plan, config, prepared.layout.durations, lambda: recognizer,
                              tracer.backend.limits)
    sources = build_sources(prepared.layout, items, config, prepared.labels,
                            segments={i: s.segments for i, s in speech.items() if s.segments})
    return prepared.layout, sources, speech


def _unit_of(sources, positions):
    atoms = sources.position_atom[positions]
    return np.where(atoms >= 0, sources.atom_unit[np.clip(atoms, 0, None)], -1)


def _expected_unit(layout, positions, spans, units):
    """Index (in ``units``) of the span holding each token's midpoint, -1 for none."""
    mids = 0.5 * (layout.time_start[positions] + layout.time_end[positions])
    out = np.full(len(positions), -1)
    for (start, end), unit in zip(spans, units):
        out[(mids >= start) & (mids < end)] = unit
    return out


def test_every_audio_token_maps_to_its_transcript_segment_and_silence_to_none(tracer, speech_media):
    items = [PROMPT, AudioItem(str(speech_media["audio"]), transcript=TRANSCRIPT)]
    layout, sources, speech = _build(tracer, items, SourceConfig())
    units = sources.units
    assert [(u.modality, u.time_start, u.time_end, u.text) for u in units] == [
        ("audio", a, b, f"Tone number {k + 1}.") for k, (a, b, _) in enumerate(AUDIO_TONES)]
    assert units[0].label == 'tones.wav 0.5-2.5s "Tone number 1."'
    positions = layout.positions(L.AUDIO, 1)
    assert len(positions) == round(AUDIO_SECONDS / 0.04)
    got = _unit_of(sources, positions)
    expected = _expected_unit(layout, positions, [(a, b) for a, b, _ in AUDIO_TONES], [0, 1])
    np.testing.assert_array_equal(got, expected)
    assert (got == -1).sum() == round((AUDIO_SECONDS - 2.0 - 2.5) / 0.04)  # 3.5 s of silence feeds nothing
    assert speech[1].info() == {"audio_units": "segments", "segments_from": "transcript:inline", "segments": 2}


def test_recognised_segments_trace_end_to_end_and_carry_their_text(tracer, speech_media):
    recognizer = EnergyRecognizer()
    traced = Tracer(tracer.backend, recognizer=recognizer)
    result = traced.trace([PROMPT, AudioItem(str(speech_media["audio"]))], generation=GEN, sources=SEGMENTS)

    assert recognizer.calls == [(int(AUDIO_SECONDS * 16000), 16000)]
    assert len(result.units) == 2
    for unit, (start, end, _), k in zip(result.units, AUDIO_TONES, (1, 2)):
        assert unit.time_start == pytest.approx(start, abs=0.011) and unit.time_end == pytest.approx(end, abs=0.011)
        assert unit.text == f"Tone number {k}."
    assert result.items[1].media["segments_from"] == "asr:EnergyRecognizer"
    assert "speech_s" in result.timings

    # only the segments are sources here, so every output sentence cites segments
    cited = [src for span in result.spans for src in span.sources]
    assert cited
    for src in cited:
        unit = result.units[src.unit]
        assert src.modality == "audio" and (src.time_start, src.time_end) == (unit.time_start, unit.time_end)
        assert unit.text in src.label and src.text == unit.text
    unit_of_token, _ = result.token_trace()
    assert set(unit_of_token.tolist()) <= {0, 1}

    again = TraceResult.from_json(result.to_json())
    assert again.units == result.units and again.source_config.audio_units == "segments"


def test_video_segments_cut_both_tracks_and_pauses_keep_visual_bins(tracer, speech_media):
    items = [PROMPT, VideoItem(str(speech_media["video"]))]
    config = SourceConfig(audio_units="segments", video_fps=2.0)
    layout, sources, speech = _build(tracer, items, config, EnergyRecognizer())
    (start, end, _), = VIDEO_TONES
    segment = speech[1].segments[0]
    assert segment.start == pytest.approx(start, abs=0.06) and segment.end == pytest.approx(end, abs=0.06)

    units = sources.units
    speech_units = [u.index for u in units if u.text is not None]
    assert len(speech_units) == 1 and units[speech_units[0]].text == "Tone number 1."
    gaps = [u for u in units if u.text is None]
    assert all(u.label.endswith("(no speech)") for u in gaps)
    assert sum(u.time_end - u.time_start for u in units) == pytest.approx(VIDEO_SECONDS, abs=1e-6)
    kinds = {u.index: {sources.atom_kind[a] for a in np.flatnonzero(sources.atom_unit == u.index)} for u in units}
    assert kinds[speech_units[0]] == {"visual", "audio"}
    assert all(kinds[u.index] == {"visual"} for u in gaps)

    audio = layout.positions(L.VIDEO_AUDIO, 1)
    np.testing.assert_array_equal(_unit_of(sources, audio),
                                  _expected_unit(layout, audio, [(segment.start, segment.end)], speech_units))
    visual = layout.positions(L.VIDEO_VISUAL, 1)
    got = _unit_of(sources, visual)
    assert (got >= 0).all()  # what is seen in a pause is still a source
    np.testing.assert_array_equal(got, _expected_unit(layout, visual, [(u.time_start, u.time_end) for u in units],
                                                      [u.index for u in units]))


def test_item_choices_override_the_config(tracer, speech_media):
    audio = str(speech_media["audio"])
    _, sources, _ = _build(tracer, [PROMPT, AudioItem(audio, transcript="bins")], SEGMENTS)
    assert len(sources.units) == AUDIO_SECONDS and all(u.text is None for u in sources.units)
    _, sources, _ = _build(tracer, [PROMPT, AudioItem(audio, transcript="asr")], SourceConfig(), EnergyRecognizer())
    assert [u.text for u in sources.units] == ["Tone number 1.", "Tone number 2."]


def test_no_speech_heard_keeps_bins_and_says_why(tracer, speech_media):
    _, sources, speech = _build(tracer, [PROMPT, AudioItem(str(speech_media["audio"]))], SEGMENTS, FixedRecognizer([]))
    assert len(sources.units) == AUDIO_SECONDS
    assert speech[1].info()["note"] == "no speech recognised" and speech[1].info()["audio_units"] == "bins"


def test_recogniser_segments_are_merged_into_sentence_units(tracer, speech_media):
    words = [SpeechSegment(0.5 + 0.4 * k, 0.9 + 0.4 * k, w) for k, w in enumerate(["the", "first", "tone", "ends."])]
    _, sources, _ = _build(tracer, [PROMPT, AudioItem(str(speech_media["audio"]))], SEGMENTS, FixedRecognizer(words))
    assert [(u.time_start, u.time_end, u.text) for u in sources.units] == [(0.5, 2.1, "the first tone ends.")]


def test_transcript_errors_name_the_item(tracer, speech_media, media, tmp_path):
    late = [{"start": 1.0, "end": 2.0, "text": "ok"}, {"start": 7.0, "end": 9.5, "text": "too late"}]
    with pytest.raises(InputError, match=r"audio item 1 \('tones.wav'\): transcript inline: segment 2 of 2 .* "
                                         r"ends 1.500 s after the end of the media"):
        Tracer(tracer.backend).trace([PROMPT, AudioItem(str(speech_media["audio"]), transcript=late)],
                                     generation=GEN)
    bad = tmp_path / "bad.srt"
    bad.write_text("1\n00:00:01,000 --> nonsense\nhello\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"audio item 1 \('tones.wav'\): transcript 'bad.srt', line 2"):
        plan_units([PROMPT, AudioItem(str(speech_media["audio"]), transcript=bad)], SourceConfig())
    with pytest.raises(InputError, match="no audio track to recognise"):
        _build(tracer, [PROMPT, VideoItem(str(media["silent_video"]), transcript="asr")], SourceConfig(),
               EnergyRecognizer())
    _, sources, speech = _build(tracer, [PROMPT, VideoItem(str(media["silent_video"]))], SEGMENTS, EnergyRecognizer())
    assert speech[1].note == "no audio track" and all(u.text is None for u in sources.units)
