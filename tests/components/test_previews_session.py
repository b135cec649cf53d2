"""Media previews (allowed folders only), per-session state and cleanup, settings and model loading."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from components.model_loading import DEMO_MODEL_NAME, TINY_MODEL_NAME, load_tracer
from components.previews import PreviewCache, gradio_file_url, is_within, peaks_of
from components.session import close_session, new_session
from components.settings import ENV_MODEL, EXAMPLES_DIR, AppSettings, parse_args
from omnitrace_core.loading import pick_device
from omnitrace_core.result import ItemInfo


def test_peaks_are_a_normalised_envelope():
    wave = np.concatenate([np.zeros(100), 0.5 * np.ones(100)]).astype(np.float32)
    peaks = peaks_of(wave, columns=4)
    assert peaks == (0.0, 0.0, 1.0, 1.0)
    assert peaks_of(np.zeros(0)) == ()


def test_only_allowed_folders_are_previewed(tmp_path):
    inside = EXAMPLES_DIR / "media" / "scene.png"
    cache = PreviewCache([EXAMPLES_DIR], file_url=gradio_file_url)
    assert cache.preview(ItemInfo(index=0, modality="image", label="s", path=str(inside))).src.startswith("data:image/jpeg")
    secret = tmp_path / "secret.png"
    secret.write_bytes(inside.read_bytes())
    preview = cache.preview(ItemInfo(index=0, modality="image", label="s", path=str(secret)))
    assert preview.src is None and "not available" in preview.note
    link = tmp_path / "link.png"
    link.symlink_to(Path("/etc/hostname"))
    assert not is_within(link, [tmp_path / "nothing"])


def test_audio_and_video_previews():
    cache = PreviewCache([EXAMPLES_DIR], file_url=gradio_file_url)
    audio = cache.preview(ItemInfo(index=0, modality="audio", label="a", path=str(EXAMPLES_DIR / "media" / "chirp.wav")))
    assert audio.duration == pytest.approx(3.0, abs=0.01) and len(audio.peaks) > 100
    assert audio.src.startswith("/gradio_api/file=")
    video = cache.preview(ItemInfo(index=1, modality="video", label="v", path=str(EXAMPLES_DIR / "media" / "traffic.mp4")))
    assert len(video.thumbs) == 4 and all(uri.startswith("data:image/jpeg") for _, uri in video.thumbs)
    assert [round(t, 2) for t, _ in video.thumbs] == [0.0, 1.0, 2.0, 3.0] and video.peaks
    assert cache.preview(ItemInfo(index=1, modality="video", label="v", path=str(EXAMPLES_DIR / "media" / "traffic.mp4"))) is video


def test_each_session_is_fresh_and_cleans_up():
    first = new_session()
    assert copy.deepcopy(first) is not first and copy.deepcopy(first).results == {}
    folder = first.workdir
    (folder / "export.json").write_text("{}")
    close_session(first)
    assert not folder.exists() and first.stop.is_set()
    close_session(None)


def test_settings_from_flags_and_environment(monkeypatch):
    monkeypatch.setenv(ENV_MODEL, "Qwen/Qwen2.5-Omni-7B")
    settings = parse_args(["--max-video-seconds", "12", "--concurrency", "3"])
    assert settings.model == "Qwen/Qwen2.5-Omni-7B" and settings.limits.max_video_seconds == 12
    assert settings.concurrency == 3 and settings.default_new_tokens == 256
    monkeypatch.delenv(ENV_MODEL)
    assert parse_args([]).is_default_model and parse_args(["--model", "/x"]).model == "/x"


def test_default_model_is_the_bundled_demo_model():
    from omnitrace_core.assets import DEFAULT_MODEL_DIR
    from omnitrace_core.training.demo_model import read_card

    if read_card(DEFAULT_MODEL_DIR) is None:
        pytest.skip("the demo model has not been trained into assets/demo_model")
    tracer, name, device = load_tracer(AppSettings())  # the device of the one loading rule
    assert device == pick_device(None) and name == DEMO_MODEL_NAME and tracer.backend.input_device.type == device
    assert tracer.backend.model_id == str(DEFAULT_MODEL_DIR)


def test_without_the_demo_model_the_default_falls_back_to_the_tiny_one(tiny_model_dir, monkeypatch, tmp_path, caplog):
    monkeypatch.setattr("omnitrace_core.assets.DEFAULT_MODEL_DIR", tmp_path / "missing")
    monkeypatch.setattr("components.model_loading.tiny_model_folder", lambda cache_dir=None: tiny_model_dir)
    tracer, name, device = load_tracer(AppSettings())
    assert device == pick_device(None) and name == TINY_MODEL_NAME and tracer.backend.input_device.type == device
    assert "train it with omnitrace train-demo" in caplog.text
    local, name, _ = load_tracer(AppSettings(model=str(tiny_model_dir), device="cpu"))
    assert name == str(tiny_model_dir) and local.backend.model_id == str(tiny_model_dir)
