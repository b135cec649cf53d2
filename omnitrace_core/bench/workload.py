"""Mixed-media inputs of a target prompt length: text, images, a video with sound, and audio."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..inputs import AudioItem, ImageItem, Item, TextItem, VideoItem

PARAGRAPH = ("The museum guide described each painting in turn, naming the artist, the year and the "
             "colours that stood out, while the visitors compared what they heard with what they saw. ")


def _write_image(path: Path, size: int, seed: int) -> Path:
    from PIL import Image

    rng = np.random.RandomState(seed)
    Image.fromarray((rng.rand(size, size, 3) * 255).astype(np.uint8)).save(path)
    return path


def _write_wav(path: Path, seconds: float, freq: float, rate: int = 16000) -> Path:
    import soundfile as sf

    t = np.arange(int(seconds * rate)) / rate
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.5 * t)))
             .astype(np.float32), rate)
    return path


def _write_video(path: Path, seconds: float, fps: int = 10, size: int = 112, rate: int = 16000) -> Path:
    import av

    frames = int(seconds * fps)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width = video.height = size
        video.pix_fmt = "yuv420p"
        audio = out.add_stream("aac", rate=rate)
        audio.layout = "mono"
        for i in range(frames):
            rgb = np.full((size, size, 3), (i * 37 % 256, i * 71 % 256, i * 113 % 256), np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        wave = (0.3 * np.sin(2 * np.pi * 330 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)
        for start in range(0, len(wave), 1024):
            frame = av.AudioFrame.from_ndarray(wave[None, start:start + 1024].copy(), format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            for packet in audio.encode(frame):
                out.mux(packet)
        for packet in audio.encode():
            out.mux(packet)
    return path


def build_workload(target_tokens: int, folder: Path, image_tokens: int) -> list[Item]:
    """Items whose prompt comes to roughly ``target_tokens`` tokens.

    About a tenth of the budget goes to images, a quarter to a video with its audio track
    (visual and audio tokens at roughly 41 per second with 112 px frames at 2 fps), a little to
    text and the rest to a standalone audio clip (25 tokens per second).

    Args:
        target_tokens: wanted prompt length.
        folder: where the media files are written.
        image_tokens: tokens one image costs at the processor's maximum resolution.
    """
    folder.mkdir(parents=True, exist_ok=True)
    n_images = max(1, round(0.1 * target_tokens / image_tokens))
    side = int(math.sqrt(image_tokens)) * 28
    items: list[Item] = [TextItem("Describe what the images, the video and the recording show.\n", is_prompt=True),
                         TextItem(PARAGRAPH * max(1, target_tokens // 1000))]
    for k in range(n_images):
        items.append(ImageItem(str(_write_image(folder / f"image{k}.png", side, seed=k))))
    video_seconds = max(2.0, round(0.25 * target_tokens / 41))
    items.append(VideoItem(str(_write_video(folder / "video.mp4", video_seconds))))
    used = 60 + n_images * image_tokens + 41 * video_seconds + 25 * max(1, target_tokens // 1000)
    audio_seconds = max(1.0, (target_tokens - used) / 25)
    items.append(AudioItem(str(_write_wav(folder / "audio.wav", audio_seconds, 440))))
    return items
