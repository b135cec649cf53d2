"""Real media files for tests, written with PyAV, soundfile and Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from omnitrace_core.media.files import encode_audio, write_audio, write_video  # noqa: F401  (re-exported)
from omnitrace_core.media.files import write_image as _write_image


def tone(freq: float, seconds: float, rate: int = 16000, amp: float = 0.5) -> np.ndarray:
    """A mono float32 sine tone."""
    t = np.arange(int(round(seconds * rate))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_wav(path: Path, wave: np.ndarray, rate: int = 16000) -> Path:
    return write_audio(path, wave, rate)


def write_image(path: Path, width: int = 112, height: int = 84, seed: int = 0) -> Path:
    return _write_image(path, (np.random.RandomState(seed).rand(height, width, 3) * 255).astype(np.uint8))


def colour_frames(count: int, height: int = 56, width: int = 56) -> np.ndarray:
    """Frames whose flat colour changes every frame (distinct, decodable after compression)."""
    levels = np.array([(i * 53 % 256, i * 97 % 256, i * 151 % 256) for i in range(count)], np.uint8)
    return np.broadcast_to(levels[:, None, None, :], (count, height, width, 3)).copy()
