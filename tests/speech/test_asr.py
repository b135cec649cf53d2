"""The transformers recogniser on tiny random-weight Whisper and wav2vec2: structure, chunking, timing; never text."""

from __future__ import annotations

import numpy as np
import pytest

from omnitrace_core import AudioItem, ConfigError, GenerationConfig, SourceConfig, TextItem, Tracer
from omnitrace_core.speech import Recognizer, SpeechSegment, TransformersRecognizer, segments_from_chunks
from tests.speech.conftest import RATE, EnergyRecognizer, tones_wave

@pytest.fixture(scope="module")
def whisper(tiny_whisper_dir) -> TransformersRecognizer:
    """One loaded CPU recogniser for the tests of this module."""
    return TransformersRecognizer(str(tiny_whisper_dir), device="cpu", chunk_seconds=30)


@pytest.fixture()
def generate_calls(whisper, monkeypatch) -> list[tuple[int, ...]]:
    """The shape of the features of every generate call of the recogniser's model."""
    model = whisper.pipeline.model
    calls: list[tuple[int, ...]] = []
    original = model.generate

    def generate(*args, **kwargs):
        features = kwargs.get("input_features", args[0] if args else None)
        calls.append(tuple(features.shape))
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "generate", generate)
    return calls


def test_recognisers_satisfy_the_protocol(whisper):
    assert isinstance(whisper, Recognizer)
    assert isinstance(EnergyRecognizer(), Recognizer)


def test_long_audio_is_recognised_in_chunks_with_offset_timestamps(whisper, generate_calls):
    seconds = 65.0
    wave = tones_wave([(t, t + 3.0, 440.0) for t in range(0, 63, 6)], seconds)
    segments = whisper(wave, RATE)

    # 30 s chunks with 5 s strides advance by 20 s: 0, 20 and 40 s (which reaches the end), one at a time on the CPU
    assert generate_calls == [(1, 80, 3000)] * 3
    assert segments and all(isinstance(s, SpeechSegment) for s in segments)
    starts = [s.start for s in segments]
    assert starts == sorted(starts) and all(s.end >= s.start >= 0 for s in segments)
    assert max(s.end for s in segments) > 40  # later chunks' timestamps are offset to their place in the audio
    assert all(s.start < seconds + 30 for s in segments)  # at most the last chunk's padding past the end


def test_short_audio_is_one_window_and_other_rates_are_resampled(whisper, generate_calls):
    wave = tones_wave([(0.5, 2.5, 440.0)], 4.0)
    at_16k = whisper(wave, RATE)
    at_8k = whisper(wave[::2].copy(), RATE // 2)
    assert generate_calls == [(1, 80, 3000)] * 2
    assert at_16k and all(0 <= s.start <= s.end for s in at_16k)
    assert len(at_8k) == len(at_16k)
    assert whisper(np.zeros(0, np.float32), RATE) == []


def test_the_tracer_loads_the_configured_recogniser_once_and_uses_its_segments(tracer, tiny_whisper_dir, speech_media):
    traced = Tracer(tracer.backend)
    config = SourceConfig(audio_units="segments", asr_model=str(tiny_whisper_dir), segment_min_seconds=0)
    items = [TextItem("Describe.\n", is_prompt=True), AudioItem(str(speech_media["audio"]))]
    result = traced.trace(items, generation=GenerationConfig(max_new_tokens=1), sources=config)
    recognizer = traced._recognizers[str(tiny_whisper_dir)]
    assert isinstance(recognizer, TransformersRecognizer) and recognizer._pipeline is not None
    info = result.items[1].media
    assert info["segments_from"] == f"asr:{tiny_whisper_dir}"
    # random weights "hear" junk, but its timestamps make well-formed units inside the audio
    assert info["audio_units"] == "segments"
    units = result.units
    assert len(units) == info["segments"] >= 1 and all(u.text for u in units)
    assert all(0 <= u.time_start < u.time_end <= 8.0 for u in units)
    assert all(a.time_end <= b.time_start for a, b in zip(units, units[1:]))
    traced.trace(items, generation=GenerationConfig(max_new_tokens=1), sources=config)
    assert traced._recognizers[str(tiny_whisper_dir)] is recognizer


def test_ctc_models_give_word_segments(tmp_path):
    from tests.speech.tiny_asr import build_tiny_wav2vec2

    recognizer = TransformersRecognizer(str(build_tiny_wav2vec2(tmp_path / "ctc")), device="cpu")
    segments = recognizer(tones_wave([(0.5, 2.5, 440.0)], 4.0), RATE)
    assert recognizer.pipeline.type == "ctc"
    assert segments and all(isinstance(s, SpeechSegment) and 0 <= s.start <= s.end <= 4.0 for s in segments)


def test_segments_from_pipeline_chunks_fill_missing_times():
    chunks = [{"timestamp": (0.0, 2.0), "text": " a"}, {"timestamp": (None, 3.0), "text": "b"},
              {"timestamp": (3.5, None), "text": "c"}, {"timestamp": (6.0, None), "text": "d"}]
    assert segments_from_chunks(chunks, duration=7.5) == [
        SpeechSegment(0.0, 2.0, " a"), SpeechSegment(2.0, 3.0, "b"), SpeechSegment(3.5, 6.0, "c"),
        SpeechSegment(6.0, 7.5, "d")]


def test_unusable_recognisers_are_config_errors(tmp_path, tiny_whisper_dir):
    wave = np.zeros(RATE, np.float32)
    with pytest.raises(ConfigError, match="could not load the speech recogniser"):
        TransformersRecognizer(str(tmp_path / "missing"), device="cpu")(wave, RATE)
    with pytest.raises(ConfigError, match="exceeds Whisper's 30 s window"):
        TransformersRecognizer(str(tiny_whisper_dir), device="cpu", chunk_seconds=40)(wave, RATE)
    with pytest.raises(ConfigError, match="stride_seconds"):
        TransformersRecognizer(str(tiny_whisper_dir), chunk_seconds=10, stride_seconds=5)


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a GPU")
def test_the_recogniser_runs_on_the_gpu_by_default(tiny_whisper_dir):
    recognizer = TransformersRecognizer(str(tiny_whisper_dir))
    segments = recognizer(tones_wave([(0.5, 2.5, 440.0)], 40.0), RATE)
    assert recognizer.pipeline.device.type == "cuda" and recognizer.pipeline.model.dtype == __import__("torch").float16
    assert all(isinstance(s, SpeechSegment) for s in segments)
