"""Load MiniCPM-o 4.5's remote code under the transformers this project pins (5.x).

The checkpoint's Python files (``modeling_minicpmo.py`` and friends) were written for transformers
4.5x. Under 5.x they fail in four known places; each is worked around here, for this family only,
without editing the checkpoint's code and without changing any transformers class:

1. **Import check** (``transformers.dynamic_module_utils.check_imports``, run before any remote code
   is imported). Its ``get_imports`` skips imports inside ``try`` blocks and inside
   ``if is_<library>_available()`` blocks, but not other guards, so it demands two libraries that
   the code we run never imports (:data:`UNUSED_IMPORTS`): ``flag_gems`` sits under
   ``if os.getenv("USE_FLAGOS") == "1"`` (and the real package refuses to import without a GPU),
   ``librosa`` is imported inside ``MiniCPMO.get_sys_prompt`` only to read a reference-voice file
   for speech output. While this family loads (:func:`load_minicpm_o`), ``get_imports`` leaves
   exactly those two out (``flag_gems`` only while ``USE_FLAGOS`` is not ``1``); it is restored
   afterwards, also when loading fails.
2. **post_init**: ``MiniCPMO.__init__`` never calls ``post_init()``, which transformers 5 needs
   (``'MiniCPMO' object has no attribute 'all_tied_weights_keys'``). The model is loaded as a
   subclass whose ``__init__`` ends with ``post_init()``, as every transformers model's does.
3. **Resampler position table**: the perceiver resampler builds its 2-D sin-cos table ``pos_embed``
   as a non-persistent buffer in ``__init__``. Transformers 5 builds models on the meta device and
   re-creates non-persistent buffers empty, re-initialising only those its ``_init_weights`` knows:
   the table came back all zeros, silently dropping the images' positional information. The
   subclass's ``_init_weights`` rebuilds it with the resampler's own ``_set_2d_pos_cache``.
4. **Whisper attention return**: ``MiniCPMWhisperEncoderLayer.forward`` unpacks three values
   (output, weights, cache) from transformers' ``WhisperAttention``, which returns two in 5.x
   (``ValueError: not enough values to unpack``). A forward hook on each of those attention modules
   appends the cache the layer passed in (the non-streaming encoder passes none), so the layer
   gets the older convention. The hooks live on this model instance only.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Iterator

import torch

logger = logging.getLogger(__name__)

#: Imports of the remote code that transformers' import check demands but the traced code paths
#: never execute, with the reason; see the module docstring (point 1).
UNUSED_IMPORTS = {
    "flag_gems": "imported only when USE_FLAGOS=1 (FlagGems RMSNorm kernels, GPU only)",
    "librosa": "imported only by MiniCPMO.get_sys_prompt, to read a reference-voice file for speech output",
}


def unused_imports() -> frozenset[str]:
    """The names of :data:`UNUSED_IMPORTS` that are unused in this environment (``flag_gems`` is
    needed, and then checked, when ``USE_FLAGOS=1``)."""
    names = set(UNUSED_IMPORTS)
    if os.environ.get("USE_FLAGOS") == "1":
        names.discard("flag_gems")
    return frozenset(names)


@contextlib.contextmanager
def import_check_without_unused() -> Iterator[None]:
    """While active, transformers' remote-code import check leaves out :func:`unused_imports`."""
    from transformers import dynamic_module_utils

    original = dynamic_module_utils.get_imports
    skipped = unused_imports()

    def get_imports(filename: str | os.PathLike) -> list[str]:
        return [name for name in original(filename) if name not in skipped]

    dynamic_module_utils.get_imports = get_imports
    try:
        yield
    finally:
        dynamic_module_utils.get_imports = original


def compatible_class(cls: type) -> type:
    """A subclass of the checkpoint's ``MiniCPMO`` fixing points 2 and 3 (same name and module)."""

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        cls.__init__(self, config, *args, **kwargs)
        self.post_init()

    def _init_weights(self, module: torch.nn.Module) -> None:
        cls._init_weights(self, module)
        if hasattr(module, "_set_2d_pos_cache") and hasattr(module, "max_size"):
            module._set_2d_pos_cache(module.max_size, device=module.query.device)

    return type(cls.__name__, (cls,), {"__init__": __init__, "_init_weights": _init_weights,
                                       "__module__": cls.__module__, "__qualname__": cls.__qualname__,
                                       "__doc__": f"{cls.__name__} finishing its __init__ with post_init() "
                                                  "(omnitrace_core.backends.minicpm_o_compat)"})


def _three_value_attention(module: torch.nn.Module, args: tuple, kwargs: dict[str, Any], output: Any) -> Any:
    """Forward hook: (output, weights) -> (output, weights, cache), the older WhisperAttention return."""
    if isinstance(output, tuple) and len(output) == 2:
        return (*output, kwargs.get("past_key_value"))
    return output


def hook_whisper_attention(model: torch.nn.Module) -> list[Any]:
    """Point 4: hook every encoder layer's self-attention of the audio encoder ``model.apm``."""
    handles = []
    for layer in getattr(getattr(model, "apm", None), "layers", ()):
        handles.append(layer.self_attn.register_forward_hook(_three_value_attention, with_kwargs=True))
    return handles


def load_minicpm_o(model_id: str, **kwargs: Any) -> tuple[torch.nn.Module, Any]:
    """Load a MiniCPM-o checkpoint's model (vision and audio, no speech output) and processor.

    Args:
        model_id: Hub id or local folder.
        **kwargs: ``from_pretrained`` arguments (``dtype``, ``attn_implementation``, ``device_map``).

    Returns:
        The model (an instance of :func:`compatible_class` of the checkpoint's class, Whisper
        attention hooked) and the checkpoint's processor.
    """
    from transformers import AutoConfig, AutoProcessor
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    with import_check_without_unused():
        config = AutoConfig.from_pretrained(model_id, trust_remote_code=True)
        config.init_vision, config.init_audio, config.init_tts = True, True, False
        remote = get_class_from_dynamic_module(config.auto_map["AutoModel"], model_id)
        model = compatible_class(remote).from_pretrained(model_id, config=config, **kwargs)
        processor = AutoProcessor.from_pretrained(model_id, trust_remote_code=True)
    hook_whisper_attention(model)
    logger.debug("loaded %s as %s with the transformers 5 compatibility layer", model_id, type(model).__qualname__)
    return model, processor
