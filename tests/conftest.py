"""Shared fixtures: one tiny Qwen2.5-Omni thinker per session, a tracer on it, real media files."""

from __future__ import annotations

import os

# Nothing in the tests may reach the Hugging Face Hub; set before transformers is imported.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests import media_files  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the default tiny Qwen2.5-Omni thinker checkpoint once and return its folder."""
    from omnitrace_core.testing.tiny_qwen2_5_omni import build_tiny_qwen2_5_omni

    return build_tiny_qwen2_5_omni(tmp_path_factory.mktemp("tiny_qwen2_5_omni") / "model")


@pytest.fixture(scope="session")
def tracer(tiny_model_dir: Path):
    from omnitrace_core import Tracer

    return Tracer.from_pretrained(tiny_model_dir, device="cpu")


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small real media files: two images, a 3 s wav, a 4 s video with audio, a silent video."""
    root = tmp_path_factory.mktemp("media")
    return {
        "image_a": media_files.write_image(root / "a.png", 112, 84, seed=1),
        "image_b": media_files.write_image(root / "b.jpg", 56, 112, seed=2),
        "audio": media_files.write_wav(root / "tone.wav", media_files.tone(440, 3.0)),
        "video": media_files.write_video(root / "clip.mp4", media_files.colour_frames(40), 10,
                                         audio=media_files.tone(660, 4.0, 44100), audio_rate=44100),
        "silent_video": media_files.write_video(root / "silent.mp4", media_files.colour_frames(25), 12.5),
    }
