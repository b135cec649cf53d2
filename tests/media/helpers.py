"""Media files written for the media tests: frames of known colours at odd rates, tones, audio-only MP4."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from omnitrace_core.media import AudioClip
from tests.media_files import encode_audio, tone


W, H = 64, 48
VIDEO_RATE = Fraction(25, 2)  # 12.5 fps, an odd rate on purpose
N_FRAMES = 40  # 3.2 s


def has_encoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except Exception:  # noqa: BLE001 - any failure means "not available here"
        return False
    return True


VIDEO_CODEC = "libx264" if has_encoder("libx264") else "mpeg4"


def colour(i: int) -> tuple[int, int, int]:
    """A distinct flat colour per frame index (base-4 digits on levels 85 apart)."""
    return ((i // 16) % 4 * 85, (i // 4) % 4 * 85, i % 4 * 85)


def index_of(rgb: np.ndarray) -> int:
    """Invert :func:`colour` from the centre pixel of a decoded frame."""
    r, g, b = (int(round(float(v) / 85.0)) for v in rgb[H // 2, W // 2])
    return r * 16 + g * 4 + b


def write_video(path: Path, codec: str = VIDEO_CODEC, rate=VIDEO_RATE, n: int = N_FRAMES,
                 audio: bool = True, audio_rate: int = 44100, options: dict | None = None) -> Path:
    """Write ``n`` frames at ``rate`` fps, frame i filled with ``colour(i)``; optional AAC tone."""
    with av.open(str(path), "w", options=options or {}) as out:
        vs = out.add_stream(codec, rate=rate)
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        astream = None
        if audio:
            astream = out.add_stream("aac", rate=audio_rate)
            astream.layout = "stereo"
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.full((H, W, 3), colour(i), np.uint8), format="rgb24")
            frame.pts = i
            frame.time_base = 1 / Fraction(rate)
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        if astream is not None:
            encode_audio(out, astream, tone(1000, n / float(rate), audio_rate), audio_rate)
    return path


def write_audio_only_mp4(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=44100)
        stream.layout = "mono"
        encode_audio(out, stream, tone(440, 1.0, 44100), 44100)
    return path


def peak_hz(clip: AudioClip) -> float:
    spectrum = np.abs(np.fft.rfft(clip.waveform))
    return float(np.argmax(spectrum)) * clip.sampling_rate / clip.waveform.shape[0]

