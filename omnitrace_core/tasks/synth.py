"""Procedural media for the known-truth benchmark: flat shapes, synthetic sound events, short videos.

Everything here is a pure function of a ``numpy.random.Generator``, so a seed fixes every pixel
and sample. Sizes follow the demo model's processor: images are 84x84 pixels, i.e. a 3x3 grid of
28x28-pixel cells (one image token per cell); video frames are 56x56 (four tokens per one-second
frame pair at 2 fps); audio is 16 kHz mono. Sound events last exactly one second and start on a
whole second, so their time bins are known exactly.

Writers turn arrays into files whose bytes depend only on the arrays (PNG, 16-bit FLAC, and MP4
with H.264 and AAC encoded single-threaded with fixed options).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..media.files import write_audio, write_image, write_video

SAMPLING_RATE = 16000
IMAGE_SIZE = 84
CELL = 28
GRID = IMAGE_SIZE // CELL
FRAME_SIZE = 56
VIDEO_FPS = 2
CLIP_SECONDS = 4

#: name -> RGB. Chosen to stay apart after H.264's 4:2:0 chroma subsampling.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 40),
    "green": (40, 160, 60),
    "blue": (45, 85, 215),
    "yellow": (230, 200, 35),
    "purple": (145, 60, 185),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
#: Sound event types, each one second long (see :func:`sound_event`).
SOUNDS: tuple[str, ...] = ("tone", "chirp", "hiss", "rattle", "buzz")
_BACKGROUND = (244, 244, 240)


# ----------------------------------------------------------------------------- images
def shape_mask(shape: str, size: int, cx: float, cy: float, radius: float) -> np.ndarray:
    """Boolean (size, size) mask of a shape centred at (cx, cy) with the given radius in pixels."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    dx, dy = x - cx, y - cy
    if shape == "circle":
        return dx * dx + dy * dy <= radius * radius
    if shape == "square":
        half = 0.82 * radius
        return (np.abs(dx) <= half) & (np.abs(dy) <= half)
    if shape == "triangle":  # apex up
        top, bottom = -radius, 0.8 * radius
        return (dy >= top) & (dy <= bottom) & (np.abs(dx) <= 0.62 * (dy - top))
    if shape == "cross":
        arm = radius / 3.0
        return ((np.abs(dx) <= arm) & (np.abs(dy) <= radius)) | ((np.abs(dy) <= arm) & (np.abs(dx) <= radius))
    raise ValueError(f"unknown shape {shape!r}; known: {SHAPES}")


def _jittered(rgb: tuple[int, int, int], rng: np.random.Generator, amount: int = 12) -> np.ndarray:
    return np.clip(np.asarray(rgb) + rng.integers(-amount, amount + 1, 3), 0, 255).astype(np.uint8)


def _canvas(size: int, rng: np.random.Generator) -> np.ndarray:
    return np.broadcast_to(_jittered(_BACKGROUND, rng, 6), (size, size, 3)).copy()


def draw_cells(objects: dict[int, tuple[str, str]], rng: np.random.Generator) -> np.ndarray:
    """An 84x84 image with one object per occupied cell.

    Args:
        objects: cell index (row-major in the 3x3 grid) -> (colour, shape).
        rng: source of jitter (position, size, colour tint).

    Returns:
        (84, 84, 3) uint8 RGB.
    """
    image = _canvas(IMAGE_SIZE, rng)
    for cell, (colour, shape) in sorted(objects.items()):
        row, col = divmod(cell, GRID)
        cx = col * CELL + CELL / 2 + rng.uniform(-2.0, 2.0)
        cy = row * CELL + CELL / 2 + rng.uniform(-2.0, 2.0)
        mask = shape_mask(shape, IMAGE_SIZE, cx, cy, rng.uniform(8.5, 11.0))
        image[mask] = _jittered(COLOURS[colour], rng)
    return image


def draw_frame(colour: str | None, shape: str | None, rng: np.random.Generator) -> np.ndarray:
    """A 56x56 video frame: one centred object, or the empty background when ``shape`` is None."""
    frame = _canvas(FRAME_SIZE, rng)
    if shape is not None and colour is not None:
        cx = FRAME_SIZE / 2 + rng.uniform(-3.0, 3.0)
        cy = FRAME_SIZE / 2 + rng.uniform(-3.0, 3.0)
        frame[shape_mask(shape, FRAME_SIZE, cx, cy, rng.uniform(15.0, 19.0))] = _jittered(COLOURS[colour], rng)
    return frame


# ----------------------------------------------------------------------------- audio
def sound_event(kind: str, rng: np.random.Generator, seconds: float = 1.0, rate: int = SAMPLING_RATE) -> np.ndarray:
    """One second of a synthetic sound event (float32, peak about 0.25-0.5).

    - tone: a steady sine of 400-600 Hz;
    - chirp: an exponential sweep rising six-fold from 300-500 Hz;
    - hiss: white noise;
    - rattle: a train of short noise clicks at 8-12 per second;
    - buzz: a square wave of 100-150 Hz.
    """
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    amp = rng.uniform(0.25, 0.5)
    if kind == "tone":
        wave = np.sin(2 * np.pi * rng.uniform(400, 600) * t)
    elif kind == "chirp":
        f0, ratio = rng.uniform(300, 500), 6.0
        k = np.log(ratio) / seconds
        wave = np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k)
    elif kind == "hiss":
        wave = np.clip(rng.standard_normal(n) / 2.5, -1, 1)
    elif kind == "rattle":
        period = int(rate / rng.uniform(8, 12))
        click = np.exp(-np.arange(int(0.006 * rate)) / (0.0015 * rate)) * rng.standard_normal(int(0.006 * rate))
        wave = np.zeros(n)
        for start in range(int(rng.integers(0, period // 2)), n - len(click), period):
            wave[start:start + len(click)] += click
        wave = np.clip(wave, -1, 1)
    elif kind == "buzz":
        wave = 0.6 * np.sign(np.sin(2 * np.pi * rng.uniform(100, 150) * t))
    else:
        raise ValueError(f"unknown sound {kind!r}; known: {SOUNDS}")
    fade = min(n // 2, int(0.01 * rate))
    envelope = np.ones(n)
    envelope[:fade] = np.linspace(0, 1, fade)
    envelope[n - fade:] = np.linspace(1, 0, fade)
    return (amp * wave * envelope).astype(np.float32)


def soundtrack(events: dict[int, str], rng: np.random.Generator, seconds: int = CLIP_SECONDS,
               rate: int = SAMPLING_RATE) -> np.ndarray:
    """A quiet noise floor with one sound event in each given whole second.

    Args:
        events: second -> sound type; the event fills [second, second + 1).
        rng: randomness of the noise floor and the events.
        seconds: clip length.

    Returns:
        (seconds * rate,) float32 waveform.
    """
    wave = (rng.standard_normal(seconds * rate) * 0.003).astype(np.float32)
    for second, kind in sorted(events.items()):
        wave[second * rate:(second + 1) * rate] += sound_event(kind, rng, rate=rate)
    return np.clip(wave, -1, 1)


# ----------------------------------------------------------------------------- video
@dataclass(frozen=True)
class VideoClip:
    """A generated video: frames at :data:`VIDEO_FPS` and its soundtrack at :data:`SAMPLING_RATE`."""

    frames: np.ndarray  # (T, 56, 56, 3) uint8
    audio: np.ndarray  # (samples,) float32


def video_clip(shown: dict[int, tuple[str, str]], sounds: dict[int, str], rng: np.random.Generator,
               seconds: int = CLIP_SECONDS) -> VideoClip:
    """A video that shows one object during each given second and is empty otherwise.

    Args:
        shown: second -> (colour, shape) shown during [second, second + 1).
        sounds: second -> sound type of the soundtrack.
    """
    frames = []
    for second in range(seconds):
        colour, shape = shown.get(second, (None, None))
        for _ in range(VIDEO_FPS):
            frames.append(draw_frame(colour, shape, rng))
    return VideoClip(frames=np.stack(frames), audio=soundtrack(sounds, rng, seconds))


# ----------------------------------------------------------------------------- writers
def write_png(path: Path, image: np.ndarray) -> Path:
    return write_image(path, image)


def write_flac(path: Path, wave: np.ndarray, rate: int = SAMPLING_RATE) -> Path:
    return write_audio(path, wave, rate)


def write_mp4(path: Path, clip: VideoClip, fps: int = VIDEO_FPS, rate: int = SAMPLING_RATE) -> Path:
    """H.264 (near-lossless, 4:2:0) + mono AAC, encoded reproducibly (see omnitrace_core.media.files)."""
    return write_video(path, clip.frames, fps, audio=clip.audio, audio_rate=rate)
