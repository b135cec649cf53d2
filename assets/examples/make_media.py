"""Regenerate the small synthetic media of the examples gallery (run from the repository root).

    PYTHONPATH=. python assets/examples/make_media.py

Writes media/scene.png (a drawn scene), media/chirp.wav (3 s rising tone with two clicks) and
media/traffic.mp4 (4 s, 160x120, 8 fps, a square crossing the frame, with a tone track), plus the
media of the known-truth benchmark samples listed in ``DEMO_SAMPLES`` (the demo model's own tasks),
whose gallery entries it rewrites in gallery.json. The other files in media/ are copied from the
OmniTrace reference examples (see LICENSE-omnitrace).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from omnitrace_core.media.files import write_audio, write_video

MEDIA = Path(__file__).resolve().parent / "media"
GALLERY = Path(__file__).resolve().parent / "gallery.json"
#: Test-split samples of the known-truth benchmark shown in the gallery: index -> title.
DEMO_SAMPLES = {
    0: "Demo model: which colour? (a note of facts)",
    3: "Demo model: describe three images",
    36: "Demo model: a question on a sound clip (audio)",
    7: "Demo model: describe a video and its soundtrack",
}


def scene(path: Path) -> None:
    img = Image.new("RGB", (224, 168), (135, 196, 235))
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 118, 224, 168], fill=(96, 160, 72))           # grass
    draw.ellipse([170, 14, 206, 50], fill=(250, 210, 60))            # sun
    draw.rectangle([30, 70, 96, 124], fill=(180, 70, 60))            # house
    draw.polygon([(24, 72), (63, 38), (102, 72)], fill=(110, 50, 40))  # roof
    draw.rectangle([54, 96, 70, 124], fill=(70, 40, 30))             # door
    draw.rectangle([140, 86, 150, 124], fill=(110, 80, 50))          # tree trunk
    draw.ellipse([122, 50, 168, 96], fill=(40, 120, 50))             # tree crown
    img.save(path)


def chirp(path: Path, seconds: float = 3.0, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.35 * np.sin(2 * np.pi * (300 * t + 200 * t ** 2))
    for click in (1.0, 2.2):
        k = int(click * rate)
        wave[k:k + 400] += 0.6 * np.hanning(400) * np.sign(np.sin(np.arange(400)))
    wave = np.clip(wave, -1, 1).astype(np.float32)
    write_audio(path, wave, rate)
    return wave


def traffic(path: Path, seconds: float = 4.0, fps: int = 8, rate: int = 44100) -> None:
    frames = []
    for i in range(int(seconds * fps)):
        img = Image.new("RGB", (160, 120), (60, 60, 70))
        draw = ImageDraw.Draw(img)
        draw.rectangle([0, 84, 160, 120], fill=(90, 90, 90))
        x = int(-30 + i * 190 / (seconds * fps))
        colour = (220, 50, 40) if i < seconds * fps / 2 else (40, 90, 220)
        draw.rectangle([x, 60, x + 30, 84], fill=colour)
        frames.append(np.asarray(img))
    t = np.arange(int(seconds * rate)) / rate
    tone = (0.3 * np.sin(2 * np.pi * np.where(t < seconds / 2, 330, 550) * t)).astype(np.float32)
    write_video(path, np.stack(frames), fps, audio=tone, audio_rate=rate)


def demo_samples() -> list[dict]:
    """Write the media of :data:`DEMO_SAMPLES` and return their gallery entries (official format)."""
    from omnitrace_core.tasks.benchmark import SPLITS, official_sample, write_media
    from omnitrace_core.tasks import generate

    seed, _ = SPLITS["test"]
    entries = []
    for index, title in DEMO_SAMPLES.items():
        sample = generate(seed, index)
        write_media(sample, MEDIA, "test")
        entries.append({**official_sample(sample, "test"), "title": title, "source_dataset": "omnitrace-benchmark"})
    return entries


def update_gallery(entries: list[dict]) -> None:
    """Replace the gallery's benchmark entries by ``entries`` (the others stay as they are)."""
    kept = [e for e in json.loads(GALLERY.read_text(encoding="utf-8"))
            if e.get("source_dataset") != "omnitrace-benchmark"]
    GALLERY.write_text(json.dumps(kept + entries, indent=4) + "\n", encoding="utf-8")


if __name__ == "__main__":
    MEDIA.mkdir(exist_ok=True)
    scene(MEDIA / "scene.png")
    chirp(MEDIA / "chirp.wav")
    traffic(MEDIA / "traffic.mp4")
    update_gallery(demo_samples())
    print("wrote", ", ".join(p.name for p in sorted(MEDIA.iterdir())))
