"""Mixed-media inputs of a target prompt length: text, images, a video with sound, and audio."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..inputs import AudioItem, ImageItem, Item, TextItem, VideoItem
from ..media.files import write_audio, write_image, write_video

PARAGRAPH = ("The museum guide described each painting in turn, naming the artist, the year and the "
             "colours that stood out, while the visitors compared what they heard with what they saw. ")


def _image(size: int, seed: int) -> np.ndarray:
    return (np.random.RandomState(seed).rand(size, size, 3) * 255).astype(np.uint8)


def _wave(seconds: float, freq: float, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.5 * t))).astype(np.float32)


def _frames(seconds: float, fps: int = 10, size: int = 112) -> np.ndarray:
    colours = np.array([(i * 37 % 256, i * 71 % 256, i * 113 % 256) for i in range(int(seconds * fps))], np.uint8)
    return np.broadcast_to(colours[:, None, None, :], (len(colours), size, size, 3)).copy()


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
        items.append(ImageItem(str(write_image(folder / f"image{k}.png", _image(side, seed=k)))))
    video_seconds = max(2.0, round(0.25 * target_tokens / 41))
    items.append(VideoItem(str(write_video(folder / "video.mp4", _frames(video_seconds), 10,
                                           audio=_wave(video_seconds, 330)))))
    used = 60 + n_images * image_tokens + 41 * video_seconds + 25 * max(1, target_tokens // 1000)
    audio_seconds = max(1.0, (target_tokens - used) / 25)
    items.append(AudioItem(str(write_audio(folder / "audio.wav", _wave(audio_seconds, 440)))))
    return items
