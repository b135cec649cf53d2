"""Resolve the explorer's model (a checkpoint, or the built-in tiny one) and load a Tracer on it."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .settings import AppSettings, default_cache_dir

logger = logging.getLogger(__name__)

TINY_MODEL_NAME = "tiny-qwen2.5-omni (random weights)"


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
    from omnitrace_core.backends.qwen2_5_omni_tiny import build_tiny_qwen2_5_omni

    folder = (cache_dir or default_cache_dir()) / "tiny"
    return build_tiny_qwen2_5_omni(folder)


def is_local(model: str) -> bool:
    return Path(model).expanduser().is_dir()


def load_tracer(settings: AppSettings):
    """Load the Tracer the app serves.

    The default model is the tiny random-weight checkpoint, built offline into the cache folder
    and run on the CPU: ``python app.py`` works with no download and no GPU. A Hub id or a local
    folder runs that checkpoint, on the GPU when there is one.

    Returns:
        (tracer, display name of the model, device).
    """
    from omnitrace_core import SourceConfig, Tracer

    if settings.is_default_model:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing of the default model is on the Hub
        folder = tiny_model_folder()
        device = settings.device or "cpu"
        tracer = Tracer.from_pretrained(folder, device=device, dtype="float32", limits=settings.limits.media_limits(),
                                        sources=SourceConfig(asr_model=settings.asr_model))
        return tracer, TINY_MODEL_NAME, device
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
