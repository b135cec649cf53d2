"""Reduced random-weight checkpoints built from the real non-weight files of released models.

The real tokenizer, processor settings and chat template are used as they are; only the model's
depth and widths are cut down (random weights), so that a test runs the project on exactly what
a user's folder holds, in seconds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

#: Reduced dimensions; the vocabulary, token ids, patch/merge sizes, audio windows and M-RoPE
#: layout of positions stay the released ones (mrope_section sums to head_dim / 2 = 8).
_TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
         "num_key_value_heads": 1}
_MROPE_SECTION = [2, 3, 3]
_VISION = {"depth": 2, "hidden_size": 32, "embed_dim": 32, "intermediate_size": 64, "num_heads": 2,
           "out_hidden_size": 32, "fullatt_block_indexes": [1]}
_AUDIO = {"d_model": 32, "encoder_attention_heads": 2, "encoder_ffn_dim": 64, "encoder_layers": 2, "output_dim": 32}


def reduced_qwen2_5_omni(source: Path, folder: Path) -> Path:
    """A thinker-only Qwen2.5-Omni folder: the real files of ``source`` with a reduced config and random weights.

    Args:
        source: a real Qwen2.5-Omni folder without weights (config, tokenizer, processor files).
        folder: where to write the reduced checkpoint (created).
    """
    import torch
    from transformers import Qwen2_5OmniThinkerConfig, Qwen2_5OmniThinkerForConditionalGeneration

    folder.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.is_file() and path.name not in ("config.json", "PROVENANCE.md"):
            shutil.copyfile(path, folder / path.name)  # copyfile: the shared files are read-only
    thinker = json.loads((source / "config.json").read_text(encoding="utf-8"))["thinker_config"]
    thinker["text_config"].update(_TEXT)
    thinker["text_config"]["rope_scaling"]["mrope_section"] = list(_MROPE_SECTION)
    thinker["vision_config"].update(_VISION)
    thinker["audio_config"].update(_AUDIO)
    fields = {k: v for k, v in thinker.items() if k not in ("model_type", "architectures")}
    torch.manual_seed(0)
    model = Qwen2_5OmniThinkerForConditionalGeneration(Qwen2_5OmniThinkerConfig(**fields))
    model.save_pretrained(folder)
    return folder
