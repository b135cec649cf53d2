"""Resolve the explorer's model (a checkpoint, or the bundled demo model) and load a Tracer on it."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .settings import AppSettings, default_cache_dir

logger = logging.getLogger(__name__)

DEMO_MODEL_NAME = "omnitrace-demo (bundled tiny Qwen2.5-Omni thinker, trained on the known-truth tasks)"
TINY_MODEL_NAME = "tiny-qwen2.5-omni (random weights)"
#: What the header says under the name of a default model (plain text; the header escapes it).
MODEL_NOTES = {
    DEMO_MODEL_NAME: "It knows only the small world of its benchmark (notes of facts, flat shapes, synthetic "
                     "sounds, short clips): try the examples marked demo model. Start with --model "
                     "Qwen/Qwen2.5-Omni-7B for a real model.",
    TINY_MODEL_NAME: "Its weights are random: its text is gibberish, but every trace of it is real. Start with "
                     "--model Qwen/Qwen2.5-Omni-7B for real answers.",
}


def tiny_model_folder(cache_dir: Path | None = None) -> Path:
    """Build (once; later calls reuse it) the tiny random-weight Qwen2.5-Omni and return its folder."""
    from omnitrace_core.testing.tiny_qwen2_5_omni import build_tiny_qwen2_5_omni

    folder = (cache_dir or default_cache_dir()) / "tiny"
    return build_tiny_qwen2_5_omni(folder)


def default_model_folder(cache_dir: Path | None = None) -> tuple[Path, str]:
    """The default model's folder and display name: the bundled demo model.

    A checkout without ``assets/demo_model`` (e.g. one trimmed for size) falls back to the tiny
    random-weight model, with a warning: the app still runs, but its answers mean nothing.
    """
    from omnitrace_core.assets import DEFAULT_MODEL_DIR
    from omnitrace_core.training.demo_model import read_card

    if read_card(DEFAULT_MODEL_DIR) is not None:
        return DEFAULT_MODEL_DIR, DEMO_MODEL_NAME
    logger.warning("no demo model in %s (train it with omnitrace train-demo); "
                   "serving the tiny random-weight model instead", DEFAULT_MODEL_DIR)
    return tiny_model_folder(cache_dir), TINY_MODEL_NAME


def load_tracer(settings: AppSettings):
    """Load the Tracer the app serves.

    The default model is the bundled demo model (:func:`default_model_folder`): ``python app.py``
    works with no download and no GPU. A Hub id or a local folder runs that checkpoint. Either
    loads through :func:`omnitrace_core.loading.load_tracer` (on the GPU when there is one).

    Returns:
        (tracer, display name of the model, device).
    """
    from omnitrace_core import SourceConfig
    from omnitrace_core.loading import load_tracer as load, pick_device

    if settings.is_default_model:
        model, name = default_model_folder()
    else:
        model = name = settings.model
    if Path(model).expanduser().is_dir():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder (the demo model's is on no Hub) needs none
    device = pick_device(settings.device)
    tracer = load(model, device=device, dtype=settings.dtype, limits=settings.limits.media_limits(),
                  sources=SourceConfig(asr_model=settings.asr_model))
    return tracer, name, device
