"""Model backends, one file per family, registered by transformers ``model_type``."""

from . import qwen2_5_omni  # noqa: F401  (registers the backend)
from .base import Backend, PreparedInput, backend_for_model_type, list_backends, load_backend, register_backend

__all__ = ["Backend", "PreparedInput", "backend_for_model_type", "list_backends", "load_backend", "register_backend"]
