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


def pick_device(requested: str | None) -> str:
    """The requested device, else the GPU when there is one, else the CPU."""
    import torch

    if requested:
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(requested: str, device: str) -> str:
    """bfloat16 on a GPU, float32 on the CPU (bfloat16 matmuls are slow there), unless asked."""
    if requested and requested != "auto":
        return requested
    return "bfloat16" if device == "cuda" else "float32"


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
    from omnitrace_core.defaults import DEFAULT_MODEL_DIR
    from omnitrace_core.training.demo_model import read_card

    if read_card(DEFAULT_MODEL_DIR) is not None:
        return DEFAULT_MODEL_DIR, DEMO_MODEL_NAME
    logger.warning("no demo model in %s (train it with scripts/train_demo_model.py); "
                   "serving the tiny random-weight model instead", DEFAULT_MODEL_DIR)
    return tiny_model_folder(cache_dir), TINY_MODEL_NAME


def is_local(model: str) -> bool:
    return Path(model).expanduser().is_dir()


def load_tracer(settings: AppSettings):
    """Load the Tracer the app serves.

    The default model is the bundled demo model (:func:`default_model_folder`), run on the CPU:
    ``python app.py`` works with no download and no GPU. A Hub id or a local folder runs that
    checkpoint, on the GPU when there is one.

    Returns:
        (tracer, display name of the model, device).
    """
    from omnitrace_core import SourceConfig, Tracer

    if settings.is_default_model:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing of the default model is on the Hub
        folder, name = default_model_folder()
        device = settings.device or "cpu"
        tracer = Tracer.from_pretrained(folder, device=device, dtype="float32", limits=settings.limits.media_limits(),
                                        sources=SourceConfig(asr_model=settings.asr_model))
        return tracer, name, device
    model = settings.model
    if is_local(model):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        model = str(Path(model).expanduser())
    device = pick_device(settings.device)
    dtype = pick_dtype(settings.dtype, device)
    logger.info("loading %s on %s (%s)", model, device, dtype)
    tracer = Tracer.from_pretrained(model, device=device, dtype=dtype, limits=settings.limits.media_limits(),
                                    sources=SourceConfig(asr_model=settings.asr_model))
    return tracer, settings.model, device
