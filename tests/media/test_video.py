"""Video: frames sampled at their true times, the audio track aligned, errors."""

from __future__ import annotations

import math
from fractions import Fraction

import av
import numpy as np
import pytest

from omnitrace_core.errors import ConfigError, MediaError
from omnitrace_core.media import MediaLimits, VideoClip, load_video
from tests.media.helpers import H, N_FRAMES, W, colour, index_of, peak_hz, write_audio_only_mp4, write_video


def _assert_true_timing(clip: VideoClip, rate: float) -> None:
    """Sample k must show the source frame on screen at time k / clip.fps."""
    for k, frame in enumerate(clip.frames):
        expected = min(N_FRAMES - 1, math.floor(k / clip.fps * rate + 1e-6))
        assert index_of(frame) == expected, (k, k / clip.fps)


def test_load_video_with_audio_true_timing(video_av):
    clip = load_video(video_av, fps=2.0)
    assert isinstance(clip, VideoClip)
    assert clip.frames.dtype == np.uint8 and clip.frames.shape == (7, H, W, 3)  # t = 0, 0.5, ... 3.0
    assert clip.fps == 2.0
    assert clip.source_fps == pytest.approx(12.5)
    assert clip.duration == pytest.approx(3.2, abs=1e-6)
    _assert_true_timing(clip, 12.5)
    assert [index_of(f) for f in clip.frames] == [0, 6, 12, 18, 25, 31, 37]
    assert clip.audio is not None and clip.audio.sampling_rate == 16000
    assert clip.audio.waveform.dtype == np.float32 and clip.audio.waveform.ndim == 1
    assert clip.audio.duration == pytest.approx(clip.duration, abs=1 / 12.5)
    assert peak_hz(clip.audio) == pytest.approx(1000, abs=2)
    np.testing.assert_allclose(clip.timestamps, np.arange(7) / 2.0)


def test_load_video_fps_above_source_and_no_audio(video_av, video_silent):
    clip = load_video(video_av, fps=25.0, with_audio=False)
    assert clip.audio is None and clip.frames.shape[0] == 80
    _assert_true_timing(clip, 12.5)

    silent = load_video(video_silent, fps=3.0, sampling_rate=8000)
    assert silent.audio is None
    assert silent.source_fps == pytest.approx(10.0) and silent.duration == pytest.approx(2.5)
    assert silent.frames.shape == (8, H, W, 3)  # t = 0 .. 2.333
    for k, frame in enumerate(silent.frames):
        assert index_of(frame) == math.floor(k / 3.0 * 10 + 1e-6)


def test_load_video_max_frames_lowers_fps(video_av):
    clip = load_video(video_av, fps=10.0, max_frames=4, with_audio=False)
    assert clip.frames.shape[0] == 4
    assert clip.fps == pytest.approx(4 / 3.2)
    assert [index_of(f) for f in clip.frames] == [0, 10, 20, 30]  # t = 0, 0.8, 1.6, 2.4
    one = load_video(video_av, fps=0.01, with_audio=False)  # far below one frame per video
    assert one.frames.shape[0] == 1 and index_of(one.frames[0]) == 0


def test_load_video_variable_frame_rate(tmp_path):
    """Irregular timestamps: the sampler must use pts, never an assumed rate."""
    times_ms = [0, 100, 400, 450, 1000, 1700, 1800, 2500]
    path = tmp_path / "vfr.mkv"
    with av.open(str(path), "w") as out:
        vs = out.add_stream("mpeg4", rate=25)
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        vs.codec_context.time_base = Fraction(1, 1000)
        for i, ms in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(np.full((H, W, 3), colour(i), np.uint8), format="rgb24")
            frame.pts, frame.time_base = ms, Fraction(1, 1000)
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
    clip = load_video(path, fps=10.0)
    assert clip.duration >= 2.5
    assert clip.frames.shape[0] >= 26
    for k, frame in enumerate(clip.frames):
        t_ms = k * 100
        expected = max(i for i, ms in enumerate(times_ms) if ms <= t_ms)
        assert index_of(frame) == expected, t_ms


def test_truncated_faststart_mp4_keeps_decodable_part(tmp_path, caplog):
    """moov first, tail cut off: decodable frames are returned, the rest repeat the last one."""
    full = write_video(tmp_path / "fs.mp4", n=125, audio=False, options={"movflags": "faststart"})
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.5)])
    with caplog.at_level("WARNING", logger="omnitrace_core.media"):
        clip = load_video(cut, fps=1.0)
    assert clip.frames.shape[0] == 10  # metadata still says 10 s
    assert index_of(clip.frames[0]) == 0
    assert "truncated" in caplog.text

def test_video_errors(tmp_path, video_av):
    with pytest.raises(MediaError, match=r"only_audio\.mp4.*no video stream.*audio"):
        load_video(write_audio_only_mp4(tmp_path / "only_audio.mp4"))

    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)))
    with pytest.raises(MediaError, match=r"garbage\.mp4.*could not be opened.*MP4") as info:
        load_video(garbage)
    assert info.value.__cause__ is not None

    data = video_av.read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match=r"truncated\.mp4"):
        load_video(truncated)

    # A container whose video packets are all garbage: no decodable frames.
    nodec = tmp_path / "nodecode.mkv"
    with av.open(str(nodec), "w") as out:
        vs = out.add_stream("mpeg4", rate=10)
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        rng = np.random.default_rng(1)
        for i in range(5):
            packet = av.Packet(bytes(rng.integers(0, 256, 200, dtype=np.uint8)))
            packet.stream, packet.pts, packet.dts = vs, i, i
            packet.time_base, packet.duration = Fraction(1, 10), 1
            out.mux(packet)
    with pytest.raises(MediaError, match=r"nodecode\.mkv.*no decodable frames"):
        load_video(nodec)

    with pytest.raises(MediaError, match=r"3\.20 s long, over the limit of 1 s.*maximum video length.*--max-video-seconds"):
        load_video(video_av, limits=MediaLimits(max_video_seconds=1.0))
    with pytest.raises(MediaError, match="--max-file-mb"):
        load_video(video_av, limits=MediaLimits(max_file_bytes=100))
    with pytest.raises(MediaError, match=r"missing\.mp4.*does not exist"):
        load_video(tmp_path / "missing.mp4")
    with pytest.raises(MediaError, match="positive integer"):
        load_video(video_av, sampling_rate=-1)
    with pytest.raises(ConfigError, match="fps"):
        load_video(video_av, fps=0)
    with pytest.raises(ConfigError, match="max_frames"):
        load_video(video_av, max_frames=0)
