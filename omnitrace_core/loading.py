"""Loading a checkpoint for tracing: one loader, one rule for its device and dtype.

Every command of the CLI and the explorer app load their model through :func:`load_tracer`:

- device (:func:`pick_device`): the one asked for; with a device map, accelerate places the model;
  under a multi-GPU launcher each process takes the GPU of its local rank; else the GPU when
  there is one, else the CPU;
- dtype (:func:`pick_dtype`): the one asked for; ``"auto"`` is the checkpoint's own dtype, except
  on the CPU, where it is float32 (half-precision matmuls are slow there).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InputError
from .launcher import local_rank
from .media import MediaLimits

if TYPE_CHECKING:  # pragma: no cover - imports for type checkers only
    from .engine import Tracer

logger = logging.getLogger(__name__)

DTYPES = ("auto", "bfloat16", "float16", "float32")


def pick_device(device: str | None = None, device_map: str | dict | None = None) -> str | None:
    """The device a model is loaded on (None: ``device_map`` places it)."""
    if device:
        return device
    if device_map is not None:
        return None
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    rank = local_rank()
    if rank is not None and torch.cuda.device_count() > 1:
        return f"cuda:{rank % torch.cuda.device_count()}"
    return "cuda"


def pick_dtype(dtype: str, device: str | None) -> str:
    """The weights dtype: ``dtype``, or for ``"auto"`` the checkpoint's own (float32 on the CPU)."""
    if dtype == "auto" and device is not None and str(device).split(":")[0] == "cpu":
        return "float32"
    return dtype


def check_model_name(model: str | Path) -> str:
    """``model`` as a string, if it can name a checkpoint: an existing folder, or a Hub id ``owner/name``.

    Raises:
        InputError: a path that does not exist, or a name that is no Hub id.
    """
    name = str(model)
    local = Path(name).expanduser()
    looks_local = local.is_absolute() or name.startswith((".", "~")) or name.count("/") != 1
    if looks_local and not local.exists():
        raise InputError(f"model '{name}' is neither an existing checkpoint folder nor a Hugging Face model id "
                         "(owner/name, e.g. Qwen/Qwen2.5-Omni-7B)")
    return str(local) if name.startswith("~") else name


def load_tracer(model: str | Path, *, dtype: str = "auto", device: str | None = None,
                device_map: str | dict | None = None, trust_remote_code: bool = False,
                limits: MediaLimits = MediaLimits(), **tracer_kwargs: Any) -> "Tracer":
    """Load ``model`` (a local folder or a Hub id) into a :class:`~omnitrace_core.Tracer`.

    Args:
        model: checkpoint folder or Hugging Face model id.
        dtype: weights dtype (see :func:`pick_dtype`).
        device: device to load on (see :func:`pick_device`).
        device_map: an accelerate device map (e.g. ``"auto"``) that spreads the model over devices.
        trust_remote_code: allow the checkpoint's own model code.
        limits: bounds on the media the backend reads.
        **tracer_kwargs: the Tracer's defaults (``signal``, ``generation``, ``sources``, ``curation``,
            ``recognizer``, ``system_prompt``).

    Raises:
        InputError: ``model`` names no folder and no Hub id.
        OmniTraceError, OSError: the checkpoint cannot be read or no backend supports it.
    """
    from .engine import Tracer

    name = check_model_name(model)
    device = pick_device(device, device_map)
    dtype = pick_dtype(dtype, device)
    logger.info("loading %s on %s (%s)", name, device or f"device map {device_map}", dtype)
    return Tracer.from_pretrained(name, dtype=dtype, device=device, device_map=device_map,
                                  trust_remote_code=trust_remote_code, limits=limits, **tracer_kwargs)
