"""Durations read cheaply, and the same duration for probing and tracing."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
import soundfile as sf

from omnitrace_core.errors import MediaError
from omnitrace_core.media import load_video, probe_duration
from tests.media.helpers import H, VIDEO_CODEC, W, colour, index_of


def test_probe_duration(video_av, tmp_path):
    assert probe_duration(video_av) == pytest.approx(3.2, abs=1e-3)
    sf.write(tmp_path / "p.wav", np.zeros(12345, np.float32), 16000)
    assert probe_duration(tmp_path / "p.wav") == pytest.approx(12345 / 16000, abs=1e-4)
    with pytest.raises(MediaError, match="does not exist"):
        probe_duration(tmp_path / "missing.mp4")


def test_variable_frame_rate_mp4_has_one_duration_for_probe_and_tracing(tmp_path):
    """B-frames over irregular frame times: the MP4 header sums packet durations in decode order
    and says 2.3 s, while the frames run until 3.9 s. The upfront check must see what tracing sees."""
    from omnitrace_core.speech import validate_segments

    path = tmp_path / "vfr.mp4"
    times = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 1.5, 2.0, 2.1, 3.9]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(VIDEO_CODEC, rate=10)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        stream.codec_context.max_b_frames = 2
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(np.full((H, W, 3), colour(i), np.uint8), format="rgb24")
            frame.pts, frame.time_base = int(t * 1000), Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with av.open(str(path)) as container:  # the file really under-reports in its header
        video = container.streams.video[0]
        assert float(video.duration * video.time_base) < 2.5

    clip = load_video(path, fps=10)
    assert clip.duration > 3.9 and index_of(clip.frames[39]) == len(times) - 1  # the frame shown at 3.9 s
    assert probe_duration(path) == pytest.approx(clip.duration, abs=1e-6)
    # a transcript line spoken at 3.0-3.95 s: tracing accepts it, so the upfront check does too
    segments = validate_segments([{"start": 3.0, "end": 3.95, "text": "the last words"}], probe_duration(path))
    assert segments[0].end == pytest.approx(3.95)
