"""Write media files from arrays: PNG images, WAV/FLAC audio, MP4 video with an audio track.

The counterpart of the loaders (:mod:`.image`, :mod:`.audio`, :mod:`.video`), for synthetic benchmarks,
example galleries and tests. Video is H.264 with one encoder thread and fixed options, and
audio is AAC, so the bytes depend only on the arrays.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np


def write_image(path: str | Path, rgb: np.ndarray) -> Path:
    """Save (H, W, 3) uint8 pixels; the format follows the extension (PNG written reproducibly)."""
    from PIL import Image

    path = Path(path)
    options = {"optimize": False, "compress_level": 6} if path.suffix.lower() == ".png" else {}
    Image.fromarray(np.ascontiguousarray(rgb)).save(path, **options)
    return path


def write_audio(path: str | Path, wave: np.ndarray, rate: int = 16000) -> Path:
    """Save a mono float waveform in [-1, 1] as 16-bit PCM; WAV or FLAC by the extension."""
    import soundfile as sf

    path = Path(path)
    sf.write(str(path), np.asarray(wave, dtype=np.float32), rate, subtype="PCM_16")
    return path


def encode_audio(container, stream, wave: np.ndarray, rate: int) -> None:
    """Encode a mono float waveform into an audio ``stream`` of an open PyAV output ``container``."""
    import av

    channels = 2 if stream.layout.name == "stereo" else 1
    for start in range(0, len(wave), 1024):
        chunk = np.asarray(wave[start:start + 1024], dtype=np.float32)
        planes = np.ascontiguousarray(np.repeat(chunk[None, :], channels, axis=0))
        frame = av.AudioFrame.from_ndarray(planes, format="fltp", layout=stream.layout.name)
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def write_video(path: str | Path, frames: np.ndarray, fps: float | Fraction, audio: np.ndarray | None = None,
                audio_rate: int = 16000, codec: str = "libx264") -> Path:
    """Write (T, H, W, 3) uint8 frames at ``fps`` (even H and W), with an optional mono AAC track."""
    import av

    path = Path(path)
    rate = Fraction(fps).limit_denominator(1000)
    options = {"crf": "12", "preset": "veryfast", "threads": "1", "bframes": "0"} if codec == "libx264" else {}
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream(codec, rate=rate, options=options)
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        video.thread_count = 1
        sound = None
        if audio is not None:
            sound = out.add_stream("aac", rate=audio_rate)
            sound.layout = "mono"
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = i
            frame.time_base = 1 / rate
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if sound is not None:
            encode_audio(out, sound, audio, audio_rate)
    return path
