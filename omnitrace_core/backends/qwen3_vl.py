"""Qwen3-VL backend (text, images, video): the Qwen2.5-VL layout with timestamped frame groups.

Module tree touched (transformers ``Qwen3VLForConditionalGeneration``)::

    model                          Qwen3VLModel
    ├── visual                     ViT: 16 px patches merged 2x2 -> one token per 32x32 px tile;
    │                              "deepstack" features are added to the first decoder layers
    └── language_model             Qwen3 decoder (interleaved M-RoPE); runs the capture attention
    lm_head

Token layout (checked against ``get_rope_index`` and the processor's timestamps): images as in
Qwen2.5-VL; a video becomes, per group of ``temporal_patch_size`` frames,
``<t seconds><|vision_start|> <|video_pad|> x (h/2 * w/2) <|vision_end|>`` where ``t`` is the
group's mid time. Time is carried by that text, not by the temporal M-RoPE id (0 in every group),
so group g covers [g, g + 1) x temporal_patch_size / fps seconds. The timestamp tokens are text the
processor inserted: they are laid out as non-source tokens.
"""

from __future__ import annotations

from .base import register_backend
from .qwen2_5_vl import Qwen25VLBackend


@register_backend
class Qwen3VLBackend(Qwen25VLBackend):
    """Backend for ``qwen3_vl`` (dense) and ``qwen3_vl_moe`` checkpoints."""

    name = "qwen3_vl"
    model_types = ("qwen3_vl", "qwen3_vl_moe")
