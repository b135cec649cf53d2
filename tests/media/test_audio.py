"""Audio: files and waveforms to mono float32 at a chosen rate."""

from __future__ import annotations

import av
import numpy as np
import pytest
import soundfile as sf

from omnitrace_core.errors import MediaError
from omnitrace_core.media import AudioClip, MediaLimits, load_audio, probe_duration
from tests.media.helpers import has_encoder, peak_hz
from tests.media_files import encode_audio, tone


def test_load_audio_wav_identity_rate(tmp_path):
    wave = tone(440, 1.0, 16000)
    sf.write(tmp_path / "t.wav", wave, 16000, subtype="FLOAT")
    clip = load_audio(tmp_path / "t.wav")
    assert clip.waveform.dtype == np.float32 and clip.waveform.shape == (16000,)
    assert clip.sampling_rate == 16000 and clip.duration == pytest.approx(1.0)
    np.testing.assert_allclose(clip.waveform, wave, atol=1e-6)


def test_load_audio_resamples_and_keeps_frequency(tmp_path):
    sf.write(tmp_path / "k.wav", tone(1000, 2.0, 44100), 44100)
    clip = load_audio(tmp_path / "k.wav", sampling_rate=16000)
    assert clip.sampling_rate == 16000
    assert clip.duration == pytest.approx(2.0, abs=1e-3)
    assert peak_hz(clip) == pytest.approx(1000, abs=2)
    assert np.abs(clip.waveform).max() == pytest.approx(0.5, abs=0.02)
    assert np.abs(clip.waveform).max() <= 1.0


def test_load_audio_stereo_int16_is_mean_scaled(tmp_path):
    n = 8000
    stereo = np.stack([np.full(n, 16384, np.int16), np.full(n, -8192, np.int16)], axis=1)
    sf.write(tmp_path / "s.wav", stereo, 8000, subtype="PCM_16")
    clip = load_audio(tmp_path / "s.wav", sampling_rate=8000)
    assert clip.waveform.shape == (n,)
    # mean of 0.5 and -0.25 (a true mean, not FFmpeg's 1/sqrt(2) downmix)
    np.testing.assert_allclose(clip.waveform, 0.125, atol=1e-4)


def test_load_audio_numpy_inputs():
    n = 4410
    int16 = (np.full(n, 16384, np.int16), 44100)
    clip = load_audio(int16, sampling_rate=44100)
    np.testing.assert_allclose(clip.waveform, 0.5, atol=1e-6)
    int32 = (np.full(n, 2**30, np.int32), 44100)
    np.testing.assert_allclose(load_audio(int32, sampling_rate=44100).waveform, 0.5, atol=1e-6)

    signal = tone(1000, 1.0, 44100)
    for arr in (signal, np.stack([signal, signal]), np.stack([signal, signal], axis=1)):  # (N,), (C,N), (N,C)
        clip = load_audio((arr, 44100), sampling_rate=16000)
        assert clip.waveform.shape[0] == pytest.approx(16000, abs=2)
        assert peak_hz(clip) == pytest.approx(1000, abs=2)

    same = load_audio(AudioClip(signal, 44100), sampling_rate=16000)
    assert same.sampling_rate == 16000 and same.duration == pytest.approx(1.0, abs=1e-3)
    loud = load_audio((np.full(100, 3.0, np.float64), 100), sampling_rate=100)
    assert loud.waveform.dtype == np.float32 and loud.waveform.max() == 1.0


def test_load_audio_compressed_formats(tmp_path):
    formats = [("mp3", "libmp3lame", 44100), ("ogg", "libopus", 48000), ("flac", "flac", 44100)]
    tried = 0
    for ext, codec, rate in formats:
        if not has_encoder(codec):
            continue
        path = tmp_path / f"tone.{ext}"
        with av.open(str(path), "w") as out:
            stream = out.add_stream(codec, rate=rate)
            stream.layout = "mono"
            encode_audio(out, stream, tone(1000, 1.5, rate), rate)
        clip = load_audio(path)
        assert clip.duration == pytest.approx(1.5, abs=0.05), ext
        assert peak_hz(clip) == pytest.approx(1000, abs=3), ext
        assert probe_duration(path) == pytest.approx(1.5, abs=0.05), ext
        tried += 1
    assert tried >= 1


def test_load_audio_track_of_mp4(video_av):
    clip = load_audio(video_av)
    assert clip.duration == pytest.approx(3.2, abs=1 / 12.5)
    assert peak_hz(clip) == pytest.approx(1000, abs=2)


def test_audio_errors(tmp_path, video_silent):
    sf.write(tmp_path / "zero.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(MediaError, match=r"zero\.wav.*zero samples"):
        load_audio(tmp_path / "zero.wav")

    (tmp_path / "junk.wav").write_bytes(b"RIFF\x00\x00junk" + bytes(range(256)) * 4)
    with pytest.raises(MediaError, match=r"junk\.wav.*(could not be|zero samples).*WAV, FLAC") as info:
        load_audio(tmp_path / "junk.wav")
    assert not isinstance(info.value.__cause__, MediaError)

    with pytest.raises(MediaError, match=r"silent_10fps\.mp4.*no audio stream"):
        load_audio(video_silent)
    with pytest.raises(MediaError, match=r"gone\.wav.*does not exist"):
        load_audio(tmp_path / "gone.wav")

    sf.write(tmp_path / "long.wav", tone(440, 2.0, 8000), 8000)
    with pytest.raises(MediaError, match=r"long\.wav.*2\.00 s long, over the limit of 1 s.*maximum audio length.*--max-audio-seconds"):
        load_audio(tmp_path / "long.wav", limits=MediaLimits(max_audio_seconds=1.0))
    with pytest.raises(MediaError, match="--max-audio-seconds"):
        load_audio((np.zeros(800, np.float32), 8000), limits=MediaLimits(max_audio_seconds=0.05))
    with pytest.raises(MediaError, match="zero samples"):
        load_audio((np.zeros(0, np.float32), 8000))

    for bad_rate in (-16000, 0, 16000.5, "16k", True):
        with pytest.raises(MediaError, match="positive integer"):
            load_audio(tmp_path / "long.wav", sampling_rate=bad_rate)
    with pytest.raises(MediaError, match="positive integer"):
        load_audio((np.zeros(10, np.float32), -5))
    assert load_audio(tmp_path / "long.wav", sampling_rate=8000.0).sampling_rate == 8000
