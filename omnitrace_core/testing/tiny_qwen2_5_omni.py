"""Build a small, random-weight but structurally real Qwen2.5-Omni *thinker* checkpoint, offline.

The folder this module writes is a genuine Hugging Face checkpoint: a locally trained byte-level
BPE tokenizer wrapped as the Qwen2 tokenizer class with the official Qwen2.5-Omni added tokens and
chat template (:mod:`.tiny_tokenizer`), a genuine `Qwen2_5OmniProcessor` (image, video and audio front ends) and a
`Qwen2_5OmniThinkerForConditionalGeneration` with random, seeded weights. Nothing is downloaded:
it is used by the test suite, as the app's fallback model and as the starting point of a demo
model that is trained later. Dimensions come from :class:`TinyOmniSpec`; the defaults give a model
of well under 2 M parameters, and the same code builds models of a few hundred million parameters.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .tiny_tokenizer import ADDED_TOKENS, CHAT_TEMPLATE, EOS_TOKEN, GENERATION_EOS_TOKENS, PAD_TOKEN, train_tokenizer

if TYPE_CHECKING:  # pragma: no cover - imports for type checkers only
    import transformers

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGE_MAX_PIXELS",
    "IMAGE_MIN_PIXELS",
    "SPEC_FILENAME",
    "VIDEO_MAX_PIXELS",
    "VIDEO_MIN_PIXELS",
    "TinyOmniSpec",
    "build_config",
    "build_processor",
    "build_tiny_qwen2_5_omni",
]

# --------------------------------------------------------------------------------------------
# Processor defaults. Patch size 14, merge size 2 and temporal patch 2 are the official values;
# the pixel bounds are deliberately small so that CPU tests stay fast: every image is resized to
# between 56x56 and 224x224 pixels (4 to 64 image tokens). The video processor stores per-frame
# bounds of 56x56 to 112x112 pixels (4 to 16 tokens per 2-frame group), but in transformers 5.23
# `Qwen2_5OmniProcessor` passes its own class-level video size (128*28*28 to 768*28*28 pixels per
# frame, the official qwen-omni-utils bounds) on every call, which overrides the stored one; to
# get the small bounds pass them per call:
#     processor(..., videos_kwargs={"fps": fps, "size": dict(processor.video_processor.size)})
# The audio front end is the official one (128 mel bins, 16 kHz, 10 ms hop, up to 300 s).
# --------------------------------------------------------------------------------------------
PATCH_SIZE = 14
MERGE_SIZE = 2
TEMPORAL_PATCH_SIZE = 2
IMAGE_MIN_PIXELS = 56 * 56
IMAGE_MAX_PIXELS = 224 * 224
VIDEO_MIN_PIXELS = 56 * 56
VIDEO_MAX_PIXELS = 112 * 112
AUDIO_SAMPLING_RATE = 16000
_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

#: Name of the file, inside a built folder, that records what it was built from. It is written
#: last, so its presence also marks the folder as complete.
SPEC_FILENAME = "omnitrace_tiny_spec.json"
_BUILDER_VERSION = 1
_REQUIRED_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
)

# --------------------------------------------------------------------------------------------
# Processor
# --------------------------------------------------------------------------------------------
def build_processor(
    tokenizer: "transformers.PreTrainedTokenizerBase",
    *,
    image_min_pixels: int = IMAGE_MIN_PIXELS,
    image_max_pixels: int = IMAGE_MAX_PIXELS,
    video_min_pixels: int = VIDEO_MIN_PIXELS,
    video_max_pixels: int = VIDEO_MAX_PIXELS,
) -> "transformers.Qwen2_5OmniProcessor":
    """Assemble a ``Qwen2_5OmniProcessor`` around ``tokenizer`` with small, CPU-friendly sizes.

    Patch size 14, merge size 2, temporal patch 2 and the whole audio front end (Whisper features,
    128 mel bins, 16 kHz, hop 160, chunk length 300 s) are the official values. Only the pixel
    bounds are smaller than the official ones (see the module constants).

    Args:
        tokenizer: A tokenizer from :func:`train_tokenizer` (it must know the named multimodal
            tokens such as ``image_token``).
        image_min_pixels: Fewest pixels an image is resized to (default 56x56).
        image_max_pixels: Most pixels an image is resized to (default 224x224).
        video_min_pixels: Fewest pixels per video frame stored in the video processor (default
            56x56). The processor's class-level video size overrides it unless the caller
            passes ``videos_kwargs={"size": dict(processor.video_processor.size)}``.
        video_max_pixels: Most pixels per video frame stored likewise (default 112x112).

    Returns:
        The processor, with the official chat template.
    """
    from transformers import (
        Qwen2_5OmniProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
        WhisperFeatureExtractor,
    )

    image_processor = Qwen2VLImageProcessor(
        min_pixels=image_min_pixels,
        max_pixels=image_max_pixels,
        patch_size=PATCH_SIZE,
        merge_size=MERGE_SIZE,
        temporal_patch_size=TEMPORAL_PATCH_SIZE,
        image_mean=_CLIP_MEAN,
        image_std=_CLIP_STD,
    )
    video_processor = Qwen2VLVideoProcessor(
        min_pixels=video_min_pixels,
        max_pixels=video_max_pixels,
        patch_size=PATCH_SIZE,
        merge_size=MERGE_SIZE,
        temporal_patch_size=TEMPORAL_PATCH_SIZE,
        image_mean=_CLIP_MEAN,
        image_std=_CLIP_STD,
        do_sample_frames=False,
        cap_pixels_per_frame=False,
    )
    feature_extractor = WhisperFeatureExtractor(
        feature_size=128,
        sampling_rate=AUDIO_SAMPLING_RATE,
        hop_length=160,
        chunk_length=300,
        n_fft=400,
        padding_value=0.0,
        padding_side="right",
        return_attention_mask=True,
        dither=0.0,
    )
    return Qwen2_5OmniProcessor(
        image_processor=image_processor,
        video_processor=video_processor,
        feature_extractor=feature_extractor,
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    )


# --------------------------------------------------------------------------------------------
# Model configuration
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TinyOmniSpec:
    """Dimensions and seed of a built thinker checkpoint.

    The defaults give a model of under 2 M parameters; larger values (e.g. ``text_hidden=1024``,
    ``text_layers=12``) build models of a few hundred million parameters with the same code.

    Attributes:
        text_hidden: Hidden size of the language model.
        text_layers: Number of decoder layers.
        text_heads: Attention heads; ``text_hidden / text_heads`` must be even.
        text_kv_heads: Key/value heads (grouped-query attention); must divide ``text_heads``.
        text_intermediate: MLP width of the language model.
        vision_hidden: Hidden size of the vision encoder.
        vision_depth: Number of vision blocks.
        vision_heads: Vision attention heads.
        vision_intermediate: MLP width of the vision encoder.
        audio_d_model: Hidden size of the audio encoder.
        audio_layers: Number of audio encoder layers.
        audio_heads: Audio attention heads.
        audio_ffn: MLP width of the audio encoder.
        vocab_size: Vocabulary bound used when the builder trains the tokenizer itself.
        max_position_embeddings: Longest sequence the rotary embedding is set up for.
        seed: Seed of ``torch.manual_seed`` before the weights are drawn.
        dtype: Dtype the weights are stored in (``"float32"``, ``"bfloat16"`` or ``"float16"``).
    """

    text_hidden: int = 64
    text_layers: int = 2
    text_heads: int = 4
    text_kv_heads: int = 2
    text_intermediate: int = 128
    vision_hidden: int = 32
    vision_depth: int = 2
    vision_heads: int = 2
    vision_intermediate: int = 64
    audio_d_model: int = 32
    audio_layers: int = 2
    audio_heads: int = 2
    audio_ffn: int = 64
    vocab_size: int = 2048
    max_position_embeddings: int = 32768
    seed: int = 0
    dtype: str = "float32"

    def __post_init__(self) -> None:
        positive = [f.name for f in fields(self) if f.name not in ("seed", "dtype")]
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"TinyOmniSpec.{name} must be a positive int, got {value!r}")
        if self.text_hidden % self.text_heads or (self.text_hidden // self.text_heads) % 2:
            raise ValueError("text_hidden / text_heads must be an even integer (rotary head dim)")
        if self.text_heads % self.text_kv_heads:
            raise ValueError("text_kv_heads must divide text_heads")
        if self.vision_hidden % self.vision_heads or (self.vision_hidden // self.vision_heads) % 4:
            raise ValueError("vision_hidden / vision_heads must be a multiple of 4 (2-D rotary)")
        if self.audio_d_model % self.audio_heads:
            raise ValueError("audio_heads must divide audio_d_model")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"dtype must be float32, bfloat16 or float16, got {self.dtype!r}")

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as a JSON-ready dict."""
        return asdict(self)


def _mrope_section(head_dim: int) -> list[int]:
    """Split the ``head_dim / 2`` rotary frequencies over (t, h, w) in the official 2:3:3 ratio."""
    half = head_dim // 2
    temporal = max(1, half // 4)
    height = (half - temporal) // 2
    width = half - temporal - height
    return [temporal, height, width]


def _token_id(tokenizer: Any, token: str) -> int:
    """Return the single id of ``token`` in ``tokenizer``, looked up by string."""
    ids = tokenizer.encode(token, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"{token!r} is not a single token in this tokenizer: {ids}")
    return int(ids[0])


def _padded_vocab_size(tokenizer: Any, multiple: int = 64) -> int:
    """Return ``len(tokenizer)`` rounded up to a multiple of ``multiple``, as the official pads."""
    size = len(tokenizer)
    return ((size + multiple - 1) // multiple) * multiple


def build_config(
    tokenizer: "transformers.PreTrainedTokenizerBase", spec: TinyOmniSpec = TinyOmniSpec()
) -> "transformers.Qwen2_5OmniThinkerConfig":
    """Build the thinker configuration for ``spec``, with every token id read from ``tokenizer``.

    Args:
        tokenizer: The tokenizer the model will be used with; all special ids are looked up in it
            by their string, and the vocabulary size is its length rounded up to a multiple of 64.
        spec: Model dimensions.

    Returns:
        A ``Qwen2_5OmniThinkerConfig`` using SDPA attention, M-RoPE sections summing to half the
        head dim, 25 position ids per second and 2-second audio/video chunks.
    """
    from transformers import Qwen2_5OmniThinkerConfig

    ids = {token: _token_id(tokenizer, token) for token, _special in ADDED_TOKENS}
    user_ids = tokenizer.encode("user", add_special_tokens=False)
    if len(user_ids) != 1:
        logger.warning("'user' is not a single token; user_token_id uses its first piece")
    head_dim = spec.text_hidden // spec.text_heads
    text_config = {
        "vocab_size": _padded_vocab_size(tokenizer),
        "hidden_size": spec.text_hidden,
        "intermediate_size": spec.text_intermediate,
        "num_hidden_layers": spec.text_layers,
        "num_attention_heads": spec.text_heads,
        "num_key_value_heads": spec.text_kv_heads,
        "hidden_act": "silu",
        "max_position_embeddings": spec.max_position_embeddings,
        "rms_norm_eps": 1e-6,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 1000000.0,
            "mrope_section": _mrope_section(head_dim),
        },
        "use_sliding_window": False,
        "tie_word_embeddings": False,
        "pad_token_id": ids[PAD_TOKEN],
        "bos_token_id": ids["<|im_start|>"],
        "eos_token_id": ids[EOS_TOKEN],
    }
    full_attention_blocks = sorted({*range(7, spec.vision_depth, 8), spec.vision_depth - 1})
    vision_config = {
        "depth": spec.vision_depth,
        "hidden_size": spec.vision_hidden,
        "intermediate_size": spec.vision_intermediate,
        "num_heads": spec.vision_heads,
        "hidden_act": "silu",
        "in_channels": 3,
        "patch_size": PATCH_SIZE,
        "spatial_merge_size": MERGE_SIZE,
        "temporal_patch_size": TEMPORAL_PATCH_SIZE,
        "window_size": 112,
        "out_hidden_size": spec.text_hidden,
        "fullatt_block_indexes": full_attention_blocks,
    }
    audio_config = {
        "num_mel_bins": 128,
        "encoder_layers": spec.audio_layers,
        "encoder_attention_heads": spec.audio_heads,
        "encoder_ffn_dim": spec.audio_ffn,
        "d_model": spec.audio_d_model,
        "activation_function": "gelu",
        "scale_embedding": False,
        "max_source_positions": 1500,
        "n_window": 100,
        "output_dim": spec.text_hidden,
    }
    config = Qwen2_5OmniThinkerConfig(
        text_config=text_config,
        vision_config=vision_config,
        audio_config=audio_config,
        audio_token_index=ids["<|AUDIO|>"],
        image_token_index=ids["<|IMAGE|>"],
        video_token_index=ids["<|VIDEO|>"],
        audio_start_token_id=ids["<|audio_bos|>"],
        audio_end_token_id=ids["<|audio_eos|>"],
        vision_start_token_id=ids["<|vision_bos|>"],
        vision_end_token_id=ids["<|vision_eos|>"],
        vision_token_id=ids["<|vision_pad|>"],
        user_token_id=int(user_ids[0]),
        bos_token_id=ids["<|im_start|>"],
        eos_token_id=ids[EOS_TOKEN],
        pad_token_id=ids[PAD_TOKEN],
        position_id_per_seconds=25,
        seconds_per_chunk=2,
        initializer_range=0.02,
        tie_word_embeddings=False,
        attn_implementation="sdpa",
    )
    return config


# --------------------------------------------------------------------------------------------
# Checkpoint folder
# --------------------------------------------------------------------------------------------
def _tokenizer_fingerprint(tokenizer: Any) -> str:
    """Return a stable hash of the tokenizer's vocabulary, merges, added tokens and template."""
    digest = hashlib.sha256()
    digest.update(tokenizer.backend_tokenizer.to_str().encode("utf-8"))
    digest.update(str(tokenizer.chat_template).encode("utf-8"))
    return digest.hexdigest()


def _marker(spec: TinyOmniSpec, tokenizer_fingerprint: str | None) -> dict[str, Any]:
    """Return the content of the spec file for a build."""
    return {
        "builder": "omnitrace_core.testing.tiny_qwen2_5_omni",
        "builder_version": _BUILDER_VERSION,
        "spec": spec.to_dict(),
        "tokenizer": tokenizer_fingerprint or "default",
    }


def _is_complete(folder: Path, marker: dict[str, Any]) -> bool:
    """Tell whether ``folder`` holds a finished build whose spec file equals ``marker``."""
    spec_file = folder / SPEC_FILENAME
    if not spec_file.is_file():
        return False
    try:
        stored = json.loads(spec_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if stored != marker:
        return False
    has_weights = (folder / "model.safetensors").is_file() or (
        folder / "model.safetensors.index.json"
    ).is_file()
    return has_weights and all((folder / name).is_file() for name in _REQUIRED_FILES)


def _write_checkpoint(
    folder: Path, spec: TinyOmniSpec, tokenizer: Any, marker: dict[str, Any]
) -> None:
    """Write tokenizer, processor, config, generation config and seeded weights into ``folder``."""
    import torch
    from transformers import GenerationConfig, Qwen2_5OmniThinkerForConditionalGeneration

    processor = build_processor(tokenizer)
    config = build_config(tokenizer, spec)
    torch.manual_seed(spec.seed)
    model = Qwen2_5OmniThinkerForConditionalGeneration(config)
    model = model.to(dtype=getattr(torch, spec.dtype)).eval()
    model.generation_config = GenerationConfig(
        eos_token_id=[_token_id(tokenizer, token) for token in GENERATION_EOS_TOKENS],
        pad_token_id=_token_id(tokenizer, PAD_TOKEN),
        bos_token_id=_token_id(tokenizer, "<|im_start|>"),
    )
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("built Qwen2.5-Omni thinker with %d parameters", n_params)
    model.save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
    marker_text = json.dumps(marker, indent=2, sort_keys=True)
    (folder / SPEC_FILENAME).write_text(marker_text, encoding="utf-8")


def build_tiny_qwen2_5_omni(
    out_dir: str | Path,
    spec: TinyOmniSpec = TinyOmniSpec(),
    *,
    tokenizer: "transformers.PreTrainedTokenizerBase | None" = None,
) -> Path:
    """Write a complete, offline-loadable Qwen2.5-Omni thinker checkpoint into ``out_dir``.

    The folder loads with ``AutoProcessor.from_pretrained(out_dir)`` and
    ``Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(out_dir)``. Weights are drawn
    after ``torch.manual_seed(spec.seed)``, so the same spec (and tokenizer) gives byte-identical
    safetensors. If ``out_dir`` already holds a complete build from the same spec and tokenizer,
    nothing is rebuilt. A build goes to a temporary sibling folder first and is moved into place
    when finished, so an interrupted build never leaves a half-written ``out_dir``.

    Args:
        out_dir: Destination folder.
        spec: Model dimensions and seed.
        tokenizer: Tokenizer to use; ``None`` trains one on the built-in corpus with
            ``spec.vocab_size``.

    Returns:
        ``out_dir`` as a ``Path``.

    Raises:
        FileExistsError: If ``out_dir`` exists, is not empty and was not written by this builder.
    """
    out = Path(out_dir)
    fingerprint = None if tokenizer is None else _tokenizer_fingerprint(tokenizer)
    marker = _marker(spec, fingerprint)
    if _is_complete(out, marker):
        logger.info("reusing existing tiny Qwen2.5-Omni checkpoint at %s", out)
        return out
    if out.exists() and any(out.iterdir()) and not (out / SPEC_FILENAME).is_file():
        raise FileExistsError(f"{out} is not empty and was not written by this builder")

    if tokenizer is None:
        tokenizer = train_tokenizer(vocab_size=spec.vocab_size)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    try:
        _write_checkpoint(staging, spec, tokenizer, marker)
        if _is_complete(out, marker):  # another process finished the same build meanwhile
            return out
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    logger.info("wrote tiny Qwen2.5-Omni checkpoint to %s", out)
    return out
