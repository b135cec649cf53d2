"""Model backends, one file per family, registered by transformers ``model_type``."""

from . import (  # noqa: F401  (each module registers its backend)
    gemma3n,
    llava_onevision,
    minicpm_o,
    minicpmv4_6,
    qwen2_5_omni,
    qwen2_5_vl,
    qwen2_audio,
    qwen3_omni,
    qwen3_vl,
    smolvlm,
)
from .base import Backend, PreparedInput, backend_for_model_type, list_backends, load_backend, register_backend

__all__ = ["Backend", "PreparedInput", "backend_for_model_type", "list_backends", "load_backend", "register_backend"]
