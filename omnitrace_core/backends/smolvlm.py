"""SmolVLM backend (text, images), also for ``idefics3`` checkpoints (SmolVLM-256M/500M-Instruct, Idefics3).

Module tree touched (transformers ``SmolVLMForConditionalGeneration``)::

    model                          SmolVLMModel
    ├── vision_model               SigLIP ViT over square crops
    ├── connector                  pixel shuffle (s x s patch blocks, row-major) + projection
    └── text_model                 Llama decoder; its attention runs the capture implementation
    lm_head

Token layout (checked against the processor's crop order and the model's placeholder scatter): an
image is resized, cut into ``rows x cols`` square crops (row-major) and also squashed whole into
one global crop; each crop gives ``g x g`` ``<image>`` tokens, row-major::

    <fake_token_around_image><row_1_col_1><image> x g*g ... (a line break after each row of crops)
    \\n<fake_token_around_image><global-img><image> x g*g<fake_token_around_image>

The tile grid of an image is the global crop's ``g x g`` grid: a global token is its own tile, and
a crop token lies inside exactly one global tile (the crops cover the resized image exactly), so
every tile score is a true sum. Small images are not split (global crop only). Positions are
plain 1-D. The processor also takes video (frames as images with timestamps); that is not wired
here yet.

SmolVLM-256M/500M-Instruct (the first SmolVLM release) are saved as ``idefics3`` checkpoints with an
``Idefics3Processor``: SmolVLM is Idefics3 with a smaller vision and text model, and transformers'
SmolVLM classes subclass the Idefics3 ones with the same weights, the same crop prompt
(``Idefics3Processor`` writes the string ``SmolVLMProcessor`` writes) and the same placeholder scatter.
Such folders load with their own classes. The layout above depends only on those shared classes, so
Idefics3 proper (Idefics3-8B-Llama3: Llama 3 tokenizer, 169 tokens per 364 px crop) is served by the
same rule; it differs in size, tokenizer and template only, which the shared pipeline reads from the
checkpoint.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch

from .base import register_backend
from .hf_multimodal import HFMultimodalBackend, LayoutContext, LayoutDraft, Segment

#: The transformers class of each model_type this backend serves.
MODEL_CLASSES = {"smolvlm": "SmolVLMForConditionalGeneration", "idefics3": "Idefics3ForConditionalGeneration"}
#: The crop markers of transformers' SmolVLM prompt builder (``<row_2_col_3>``).
CROP_MARKER = re.compile(r"<row_(\d+)_col_(\d+)>")


def crop_tiles(rows: int, cols: int, side: int) -> np.ndarray:
    """Tile (in the global ``side x side`` grid) of every token of ``rows x cols`` crops, then the global crop.

    Crop (r, c) token (i, j) sits at fine cell (r*side + i, c*side + j) of a (rows*side, cols*side)
    grid over the same image; global tile (I, J) covers fine rows [I*rows, (I+1)*rows) and columns
    [J*cols, (J+1)*cols).
    """
    i, j = np.divmod(np.arange(side * side), side)
    tiles = []
    for r in range(rows):
        for c in range(cols):
            tiles.append(((r * side + i) // rows) * side + (c * side + j) // cols)
    tiles.append(i * side + j)
    return np.concatenate(tiles)


@register_backend
class SmolVLMBackend(HFMultimodalBackend):
    """Backend for ``smolvlm`` checkpoints (SmolVLM, SmolVLM2) and ``idefics3`` ones (SmolVLM-256M/500M, Idefics3)."""

    name = "smolvlm"
    model_types = tuple(MODEL_CLASSES)
    model_class = MODEL_CLASSES["smolvlm"]
    modalities = frozenset({"text", "image"})
    eos_strings = ("<end_of_utterance>",)
    model_input_keys = ("pixel_values", "pixel_attention_mask")

    @classmethod
    def load_model(cls, model_id: str, config: Any, kwargs: dict[str, Any]) -> torch.nn.Module:
        import transformers

        return getattr(transformers, MODEL_CLASSES[config.model_type]).from_pretrained(model_id, **kwargs)

    def fill_segment(self, draft: LayoutDraft, segment: Segment, positions: np.ndarray, ctx: LayoutContext) -> None:
        image = self.placeholder_positions(ctx, positions, self.token_id(self.processor.image_token))
        side = int(round(self.processor.image_seq_len ** 0.5))
        # the crop grid is not among the processor's outputs; its expansion names every crop
        crops = [tuple(map(int, m)) for m in CROP_MARKER.findall(ctx.replacement["replacement"])]
        rows, cols = (max(c[0] for c in crops), max(c[1] for c in crops)) if crops else (0, 0)
        draft.tiles(image, segment.item, (side, side), crop_tiles(rows, cols, side))
