"""Benchmark models: random-weight Qwen2.5-Omni thinkers of a chosen size, built in memory."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..backends.qwen2_5_omni import Qwen25OmniBackend
from ..testing.tiny_qwen2_5_omni import TinyOmniSpec, build_config, build_processor
from ..testing.tiny_tokenizer import train_tokenizer


@dataclass(frozen=True)
class BenchModel:
    """A model size: its dimensions, processor resolution and (optionally) a padded vocabulary."""

    spec: TinyOmniSpec
    image_max_pixels: int
    video_max_pixels: int
    vocab_size: int | None = None


SIZES: dict[str, BenchModel] = {
    # the test model: seconds on a laptop (the CI smoke run)
    "tiny": BenchModel(TinyOmniSpec(), 224 * 224, 112 * 112),
    # about 200 M parameters: the CPU benchmark
    "cpu": BenchModel(
        TinyOmniSpec(text_hidden=1024, text_layers=12, text_heads=16, text_kv_heads=4, text_intermediate=2816,
                     vision_hidden=512, vision_depth=8, vision_heads=8, vision_intermediate=1024,
                     audio_d_model=512, audio_layers=8, audio_heads=8, audio_ffn=1024),
        448 * 448, 112 * 112),
    # the published Qwen2.5-Omni-7B thinker dimensions and vocabulary, random bf16 weights (GPU)
    "7b": BenchModel(
        TinyOmniSpec(text_hidden=3584, text_layers=28, text_heads=28, text_kv_heads=4, text_intermediate=18944,
                     vision_hidden=1280, vision_depth=32, vision_heads=16, vision_intermediate=3420,
                     audio_d_model=1280, audio_layers=32, audio_heads=20, audio_ffn=5120, dtype="bfloat16"),
        1280 * 28 * 28, 768 * 28 * 28, vocab_size=152064),
}


def build_bench_backend(size: str, device: str) -> Qwen25OmniBackend:
    """A backend over a freshly initialised (seeded) model of ``size`` on ``device``."""
    from transformers import Qwen2_5OmniThinkerForConditionalGeneration

    if size not in SIZES:
        raise ValueError(f"unknown model size '{size}'; choose from {sorted(SIZES)}")
    bench = SIZES[size]
    tokenizer = train_tokenizer()
    processor = build_processor(tokenizer, image_max_pixels=bench.image_max_pixels,
                                video_max_pixels=bench.video_max_pixels)
    config = build_config(tokenizer, bench.spec)
    if bench.vocab_size is not None:
        config.text_config.vocab_size = bench.vocab_size
    torch.manual_seed(bench.spec.seed)
    dtype = getattr(torch, bench.spec.dtype)
    with torch.device(device):
        model = Qwen2_5OmniThinkerForConditionalGeneration(config).to(dtype)
    model.generation_config.eos_token_id = [tokenizer.convert_tokens_to_ids("<|im_end|>")]
    model.generation_config.pad_token_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    return Qwen25OmniBackend(model, processor, model_id=f"random Qwen2.5-Omni thinker ({size})")


def parameter_count(backend: Qwen25OmniBackend) -> int:
    return sum(p.numel() for p in backend.model.parameters())
