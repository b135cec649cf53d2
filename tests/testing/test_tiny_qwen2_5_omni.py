"""Tests of the offline tiny Qwen2.5-Omni thinker builder (omnitrace_core.testing.tiny_qwen2_5_omni).

Media sizes used below, with the built processor: images of 100x150 and 300x200 pixels become
8x10 and 18x12 patch grids (20 + 54 = 74 image tokens); 3 s of 16 kHz audio is 75 audio tokens.
Video frames (48x64) are resized by Qwen2_5OmniProcessor's class-level per-frame size (at least
128*28*28 pixels) unless the folder's small bounds are passed per call (see the builder module).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import (
    AutoModelForMultimodalLM,
    AutoProcessor,
    Qwen2_5OmniThinkerForConditionalGeneration,
)

from omnitrace_core.testing.tiny_qwen2_5_omni import SPEC_FILENAME, TinyOmniSpec, build_config, build_tiny_qwen2_5_omni
from omnitrace_core.testing.tiny_tokenizer import ADDED_TOKENS, CHAT_TEMPLATE, DEFAULT_CORPUS, train_tokenizer

SAMPLING_RATE = 16000
VIDEO_FPS = 2.0


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def processor(tiny_model_dir: Path):
    return AutoProcessor.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path):
    return Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(tiny_model_dir).eval()


def _image(seed: int, height: int, width: int) -> Image.Image:
    pixels = np.random.RandomState(seed).randint(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _waveform(seconds: float, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLING_RATE)) / SAMPLING_RATE
    noise = np.random.RandomState(seed).randn(t.size) * 0.01
    return (0.3 * np.sin(2 * np.pi * 440.0 * t) + noise).astype(np.float32)


def _video(frames: int, seed: int = 0) -> np.ndarray:
    return np.random.RandomState(seed).randint(0, 256, (frames, 48, 64, 3), dtype=np.uint8)


def _count(input_ids: torch.Tensor, tokenizer, token: str) -> int:
    return int((input_ids == tokenizer.convert_tokens_to_ids(token)).sum())


def _audio_tokens(feature_attention_mask: torch.Tensor) -> list[int]:
    """Audio token count per clip, as the audio encoder computes it (conv stride 2, pool 2)."""
    frames = feature_attention_mask.sum(-1)
    after_conv = (frames - 1) // 2 + 1
    return [int(n) for n in (after_conv - 2) // 2 + 1]


def _merged_tokens(grid_thw: torch.Tensor, merge_size: int = 2) -> list[int]:
    return [int(n) for n in grid_thw.prod(-1) // merge_size**2]


@pytest.fixture(scope="module")
def interleaved_inputs(processor):
    """2 images, 1 audio clip (3 s) and 1 video (8 frames at 2 fps), interleaved with text."""
    images = [_image(0, 100, 150), _image(1, 300, 200)]
    audio = _waveform(3.0)
    video = _video(8)
    conversation = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look at the first picture:"},
                {"type": "image", "image": images[0]},
                {"type": "text", "text": "and the second one:"},
                {"type": "image", "image": images[1]},
                {"type": "text", "text": "Listen:"},
                {"type": "audio", "audio": audio},
                {"type": "text", "text": "Watch:"},
                {"type": "video", "video": video},
                {"type": "text", "text": "Which colour is the square?\nA. red\nB. blue"},
            ],
        }
    ]
    text = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    inputs = processor(
        text=text,
        images=images,
        audio=[audio],
        videos=[video],
        videos_kwargs={"fps": VIDEO_FPS},
        return_tensors="pt",
    )
    return text, inputs


# --------------------------------------------------------------------------- tokenizer
@pytest.mark.parametrize(
    "text",
    [
        "Hello world! The red square is left of the blue circle.",
        "A. cat\nB. dog\nC. bird\nD. fish",
        "Numbers 0 1 2 3.14 1,000,000 and 50% at 09:30.",
        "Café naïve jalapeño — emoji 🙂 and 中文 never seen in training.",
        "  leading spaces, tabs\tand\n\nblank lines  ",
    ],
)
def test_tokenizer_round_trips_text(processor, text: str) -> None:
    tokenizer = processor.tokenizer
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text


def test_tokenizer_keeps_special_tokens_whole_inside_text(processor) -> None:
    tokenizer = processor.tokenizer
    text = "<|im_start|>user\nHi<|vision_bos|><|IMAGE|><|vision_eos|><|im_end|>"
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text
    assert _count(torch.tensor(ids), tokenizer, "<|IMAGE|>") == 1


def test_every_added_token_is_one_id_in_official_order(processor) -> None:
    tokenizer = processor.tokenizer
    ids = []
    for token, special in ADDED_TOKENS:
        encoded = tokenizer.encode(token, add_special_tokens=False)
        assert len(encoded) == 1, token
        assert encoded[0] == tokenizer.convert_tokens_to_ids(token)
        ids.append(encoded[0])
    assert len(ADDED_TOKENS) == 22
    first = ids[0]
    assert ids == list(range(first, first + 22))  # appended after the BPE vocabulary, in order
    assert len(tokenizer) == first + 22
    assert [t for t, _ in ADDED_TOKENS[:3]] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def test_tokenizer_special_token_settings_match_official(processor) -> None:
    tokenizer = processor.tokenizer
    assert type(tokenizer).__name__ == "Qwen2Tokenizer"
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer.bos_token is None
    assert tokenizer.model_max_length == 32768
    assert tokenizer.image_token == "<|IMAGE|>"
    assert tokenizer.video_token == "<|VIDEO|>"
    assert tokenizer.audio_token == "<|AUDIO|>"
    assert tokenizer.vision_bos_token == "<|vision_bos|>"
    assert tokenizer.audio_eos_token == "<|audio_eos|>"
    assert tokenizer.chat_template == CHAT_TEMPLATE
    assert processor.chat_template == CHAT_TEMPLATE
    # Special tokens vanish with skip_special_tokens; the tool/fim tokens are not special.
    ids = tokenizer.encode("<|im_start|>hi<tool_call><|im_end|>", add_special_tokens=False)
    assert tokenizer.decode(ids, skip_special_tokens=True) == "hi<tool_call>"


def test_train_tokenizer_is_deterministic_and_respects_vocab_size() -> None:
    corpus = list(DEFAULT_CORPUS[:20])
    first = train_tokenizer(corpus, vocab_size=400)
    second = train_tokenizer(corpus, vocab_size=400)
    assert first.backend_tokenizer.to_str() == second.backend_tokenizer.to_str()
    assert len(first) <= 400
    assert train_tokenizer(vocab_size=2048).get_vocab() == train_tokenizer().get_vocab()
    with pytest.raises(ValueError):
        train_tokenizer(corpus, vocab_size=100)


def test_chat_template_renders_the_official_layout(processor) -> None:
    conversation = [
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "audio"}, {"type": "text", "text": "Hi"}],
        }
    ]
    text = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_bos|><|IMAGE|><|vision_eos|>"
        "<|audio_bos|><|AUDIO|><|audio_eos|>Hi"
        "<|im_end|>\n<|im_start|>assistant\n"
    )


# --------------------------------------------------------------------------- config
def test_config_ids_come_from_the_tokenizer(tiny_model_dir: Path, processor, model) -> None:
    tokenizer = processor.tokenizer
    config = model.config
    tid = tokenizer.convert_tokens_to_ids
    assert config.image_token_id == tid("<|IMAGE|>")
    assert config.video_token_id == tid("<|VIDEO|>")
    assert config.audio_token_id == tid("<|AUDIO|>")
    assert config.audio_start_token_id == tid("<|audio_bos|>")
    assert config.audio_end_token_id == tid("<|audio_eos|>")
    assert config.vision_start_token_id == tid("<|vision_bos|>")
    assert config.vision_end_token_id == tid("<|vision_eos|>")
    assert config.position_id_per_seconds == 25
    assert config.seconds_per_chunk == 2
    assert config.vision_config.out_hidden_size == config.text_config.hidden_size
    assert config.audio_config.output_dim == config.text_config.hidden_size
    assert config.text_config.vocab_size >= len(tokenizer)
    assert model.config._attn_implementation == "sdpa"
    generation = json.loads((tiny_model_dir / "generation_config.json").read_text())
    assert generation["eos_token_id"] == [tid("<|im_end|>"), tid("<|endoftext|>")]
    assert generation["pad_token_id"] == tid("<|endoftext|>")


@pytest.mark.parametrize(
    "spec",
    [
        TinyOmniSpec(),
        TinyOmniSpec(
            text_hidden=1024, text_layers=12, text_heads=16, text_kv_heads=4, text_intermediate=2816
        ),
        TinyOmniSpec(text_hidden=96, text_heads=2, text_kv_heads=1),
    ],
)
def test_mrope_section_sums_to_half_the_head_dim(processor, spec: TinyOmniSpec) -> None:
    config = build_config(processor.tokenizer, spec)
    head_dim = spec.text_hidden // spec.text_heads
    section = config.text_config.rope_parameters["mrope_section"]
    assert len(section) == 3 and sum(section) == head_dim // 2


def test_spec_rejects_inconsistent_dimensions() -> None:
    with pytest.raises(ValueError):
        TinyOmniSpec(text_hidden=64, text_heads=5)
    with pytest.raises(ValueError):
        TinyOmniSpec(text_heads=4, text_kv_heads=3)
    with pytest.raises(ValueError):
        TinyOmniSpec(text_layers=0)
    with pytest.raises(ValueError):
        TinyOmniSpec(dtype="int8")


def test_default_spec_is_small(model) -> None:
    assert sum(p.numel() for p in model.parameters()) < 2_000_000


# --------------------------------------------------------------------------- reload + processor
def test_folder_reloads_offline_with_auto_classes(tiny_model_dir: Path, processor, model) -> None:
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    assert type(processor).__name__ == "Qwen2_5OmniProcessor"
    assert type(model).__name__ == "Qwen2_5OmniThinkerForConditionalGeneration"
    auto_model = AutoModelForMultimodalLM.from_pretrained(tiny_model_dir)
    assert type(auto_model).__name__ == "Qwen2_5OmniThinkerForConditionalGeneration"


def test_interleaved_placeholder_counts_match_grids(processor, interleaved_inputs) -> None:
    text, inputs = interleaved_inputs
    tokenizer = processor.tokenizer
    input_ids = inputs["input_ids"]
    assert input_ids.shape[0] == 1

    image_tokens = _merged_tokens(inputs["image_grid_thw"])
    assert inputs["image_grid_thw"].tolist() == [[1, 8, 10], [1, 18, 12]]
    assert _count(input_ids, tokenizer, "<|IMAGE|>") == sum(image_tokens) == 74

    assert _audio_tokens(inputs["feature_attention_mask"]) == [75]
    assert _count(input_ids, tokenizer, "<|AUDIO|>") == 75

    video_grid = inputs["video_grid_thw"]
    assert int(video_grid[0, 0]) == 4  # 8 frames / temporal patch 2
    assert _count(input_ids, tokenizer, "<|VIDEO|>") == sum(_merged_tokens(video_grid))
    assert inputs["video_second_per_grid"].tolist() == pytest.approx([2 / VIDEO_FPS])

    # Blocks keep the conversation's order: image, image, audio, video.
    decoded = tokenizer.decode(input_ids[0])
    blocks = re.findall(r"<\|(IMAGE|AUDIO|VIDEO)\|>(?:<\|\1\|>)*", decoded)
    assert blocks == ["IMAGE", "IMAGE", "AUDIO", "VIDEO"]
    assert _count(input_ids, tokenizer, "<|vision_bos|>") == 3
    assert _count(input_ids, tokenizer, "<|audio_bos|>") == 1


def test_apply_chat_template_tokenize_matches_two_step_call(processor) -> None:
    image = _image(2, 56, 84)
    audio = _waveform(1.0)
    conversation = [
        {
            "role": "user",
            "content": [
                {"type": "image", "image": image},
                {"type": "audio", "audio": audio},
                {"type": "text", "text": "Describe both."},
            ],
        }
    ]
    one_step = processor.apply_chat_template(
        conversation,
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
    )
    text = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    two_step = processor(text=text, images=[image], audio=[audio], return_tensors="pt")
    assert torch.equal(one_step["input_ids"], two_step["input_ids"])
    assert _count(one_step["input_ids"], processor.tokenizer, "<|AUDIO|>") == 25


def test_video_frames_use_the_folder_bounds_only_when_passed(processor) -> None:
    video = _video(4)
    text = "<|vision_bos|><|VIDEO|><|vision_eos|>"
    default = processor(
        text=text, videos=[video], videos_kwargs={"fps": VIDEO_FPS}, return_tensors="pt"
    )
    _, h, w = default["video_grid_thw"][0].tolist()
    assert h * w * 14 * 14 >= 128 * 28 * 28  # the processor's class default upsamples small frames
    small = processor(
        text=text,
        videos=[video],
        videos_kwargs={"fps": VIDEO_FPS, "size": dict(processor.video_processor.size)},
        return_tensors="pt",
    )
    assert small["video_grid_thw"].tolist() == [[2, 4, 4]]  # 56x56 pixels per frame
    assert _count(small["input_ids"], processor.tokenizer, "<|VIDEO|>") == 8


# --------------------------------------------------------------------------- model
def test_forward_and_generate_on_interleaved_input(model, interleaved_inputs) -> None:
    _, inputs = interleaved_inputs
    with torch.no_grad():
        out = model(**inputs)
    length = inputs["input_ids"].shape[1]
    assert out.logits.shape == (1, length, model.config.text_config.vocab_size)
    assert torch.isfinite(out.logits).all()
    generated = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert length < generated.shape[1] <= length + 3
    assert torch.equal(generated[:, :length], inputs["input_ids"])


@pytest.mark.parametrize("flag", ["load_audio_from_video", "use_audio_in_video"])
def test_audio_in_video_interleaves_chunks_and_runs(processor, model, flag: str) -> None:
    # 6 frames at 2 fps = 3 s of video (3 temporal groups at 0, 1, 2 s) with a 3 s soundtrack.
    video = _video(6, seed=5)
    soundtrack = _waveform(3.0, seed=6)
    conversation = [
        {
            "role": "user",
            "content": [
                {"type": "video", "video": video},
                {"type": "text", "text": "What happens?"},
            ],
        }
    ]
    text = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    inputs = processor(
        text=text,
        videos=[video],
        audio=[soundtrack],
        audio_from_video_indices=[0],  # the one audio clip is video 0's soundtrack
        videos_kwargs={"fps": VIDEO_FPS},
        return_tensors="pt",
        **{flag: True},
    )
    tokenizer = processor.tokenizer
    input_ids = inputs["input_ids"]
    grid = inputs["video_grid_thw"]
    per_group = int(grid[0, 1] * grid[0, 2]) // 4
    assert int(grid[0, 0]) == 3
    assert _count(input_ids, tokenizer, "<|VIDEO|>") == sum(_merged_tokens(grid)) == 3 * per_group
    audio_tokens = _audio_tokens(inputs["feature_attention_mask"])
    assert _count(input_ids, tokenizer, "<|AUDIO|>") == audio_tokens[0] == 75

    # 2-second chunks (50 position ids at 25/s): groups at 0 s and 1 s, 50 audio tokens,
    # then the group at 2 s and the remaining 25 audio tokens, all inside one audio_bos/eos pair.
    decoded = tokenizer.decode(input_ids[0])
    runs = [
        (m.group(1), len(m.group(0)) // len(f"<|{m.group(1)}|>"))
        for m in re.finditer(r"<\|(VIDEO|AUDIO)\|>(?:<\|\1\|>)*", decoded)
    ]
    assert runs == [("VIDEO", 2 * per_group), ("AUDIO", 50), ("VIDEO", per_group), ("AUDIO", 25)]
    assert "<|vision_bos|><|audio_bos|><|VIDEO|>" in decoded
    assert "<|AUDIO|><|audio_eos|><|vision_eos|>" in decoded

    with torch.no_grad():
        out = model(**inputs, use_audio_in_video=True)
    assert torch.isfinite(out.logits).all()
    generated = model.generate(**inputs, use_audio_in_video=True, max_new_tokens=3, do_sample=False)
    assert generated.shape[1] <= input_ids.shape[1] + 3
    assert torch.equal(generated[:, : input_ids.shape[1]], input_ids)


# --------------------------------------------------------------------- determinism, idempotence
def test_same_spec_gives_identical_bytes(tiny_model_dir: Path, tmp_path: Path) -> None:
    again = build_tiny_qwen2_5_omni(tmp_path / "again")
    for name in ("model.safetensors", "tokenizer.json", "config.json", "processor_config.json"):
        assert (again / name).read_bytes() == (tiny_model_dir / name).read_bytes(), name
    other_seed = build_tiny_qwen2_5_omni(tmp_path / "seed1", TinyOmniSpec(seed=1))
    weights = (tiny_model_dir / "model.safetensors").read_bytes()
    assert (other_seed / "model.safetensors").read_bytes() != weights


def test_builder_is_idempotent(tiny_model_dir: Path, tmp_path: Path) -> None:
    weights = tiny_model_dir / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert build_tiny_qwen2_5_omni(tiny_model_dir) == tiny_model_dir
    assert weights.stat().st_mtime_ns == before

    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    spec = TinyOmniSpec(text_layers=1)
    build_tiny_qwen2_5_omni(copy, spec)  # different spec: rebuilt in place
    stored = json.loads((copy / SPEC_FILENAME).read_text())
    assert stored["spec"]["text_layers"] == 1
    assert json.loads((copy / "config.json").read_text())["text_config"]["num_hidden_layers"] == 1
    rebuilt = (copy / "model.safetensors").stat().st_mtime_ns
    build_tiny_qwen2_5_omni(copy, spec)
    assert (copy / "model.safetensors").stat().st_mtime_ns == rebuilt
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".copy.building-")]


def test_builder_refuses_a_foreign_folder(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not a checkpoint")
    with pytest.raises(FileExistsError):
        build_tiny_qwen2_5_omni(foreign)
    assert (foreign / "notes.txt").read_text() == "not a checkpoint"
