"""Real media files for tests, written with PyAV, soundfile and Pillow."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf
from PIL import Image


def tone(freq: float, seconds: float, rate: int = 16000, amp: float = 0.5) -> np.ndarray:
    """A mono float32 sine tone."""
    t = np.arange(int(round(seconds * rate))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_wav(path: Path, wave: np.ndarray, rate: int = 16000) -> Path:
    sf.write(str(path), wave, rate)
    return path


def write_image(path: Path, width: int = 112, height: int = 84, seed: int = 0) -> Path:
    rgb = (np.random.RandomState(seed).rand(height, width, 3) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(path)
    return path


def encode_audio(container, stream, wave: np.ndarray, rate: int) -> None:
    """Encode a mono float waveform into an audio stream of ``container``."""
    layout = stream.layout.name
    channels = 2 if layout == "stereo" else 1
    for start in range(0, len(wave), 1024):
        chunk = wave[start:start + 1024]
        planes = np.ascontiguousarray(np.repeat(chunk[None, :], channels, axis=0))
        frame = av.AudioFrame.from_ndarray(planes, format="fltp", layout=layout)
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def write_video(path: Path, frames: np.ndarray, fps: Fraction | float, audio: np.ndarray | None = None,
                audio_rate: int = 44100, codec: str = "libx264") -> Path:
    """Write (T, H, W, 3) uint8 frames at ``fps``, with an optional mono AAC track."""
    rate = Fraction(fps).limit_denominator(1000)
    with av.open(str(path), "w") as out:
        vs = out.add_stream(codec, rate=rate)
        vs.width, vs.height, vs.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        astream = None
        if audio is not None:
            astream = out.add_stream("aac", rate=audio_rate)
            astream.layout = "mono"
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = i
            frame.time_base = 1 / rate
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        if astream is not None:
            encode_audio(out, astream, audio, audio_rate)
    return path


def colour_frames(count: int, height: int = 56, width: int = 56) -> np.ndarray:
    """Frames whose flat colour changes every frame (distinct, decodable after compression)."""
    levels = np.array([(i * 53 % 256, i * 97 % 256, i * 151 % 256) for i in range(count)], np.uint8)
    return np.broadcast_to(levels[:, None, None, :], (count, height, width, 3)).copy()
