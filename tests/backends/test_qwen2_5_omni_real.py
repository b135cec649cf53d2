"""Qwen2.5-Omni-3B's real tokenizer, processor, chat template and config (reduced depth, random weights).

The layout against the model's own M-RoPE positions (image, audio, video with and without its audio
track) is checked for this folder in test_qwen2_5_omni.py; here: the prompt ids are the processor's
own, the video token budget is the processor's default, and text items rebuild exactly from their
tokens whatever they spell.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from omnitrace_core import AudioItem, ImageItem, SourceConfig, TextItem, VideoItem
from omnitrace_core import layout as L
from omnitrace_core.backends.qwen2_5_omni import DEFAULT_SYSTEM_PROMPT, has_own_video_settings
from omnitrace_core.media.files import write_video
from tests.backends import tiny_families as tf
from tests.shared_files import OFFICIAL_EXAMPLES, QWEN2_5_OMNI_3B, require

#: Strings Qwen2.5-Omni's tokenizer reads as special tokens, mixed into the generated texts.
SPECIALS = ("<|IMAGE|>", "<|AUDIO|>", "<|VIDEO|>", "<|vision_bos|>", "<|im_end|>", "<|im_start|>", "<|endoftext|>",
            "<tool_call>", "<|fim_pad|>")  # the last two: added tokens that are not special, text all the same


def _message_part(item):
    return {"type": "text", "text": item.text} if item.modality == "text" else {"type": item.modality}


@pytest.mark.parametrize("audio_in_video", [False, True])
def test_prompt_ids_equal_the_processors_own(real_qwen_omni, media, audio_in_video):
    backend = real_qwen_omni
    items = [TextItem("Answer briefly.\n", is_prompt=True), TextItem("What do you see and hear?"),
             ImageItem(str(media["image_a"])), AudioItem(str(media["audio"])), VideoItem(str(media["video"])),
             TextItem("Which came first?")]
    sources = SourceConfig(use_audio_in_video=audio_in_video)
    prepared = backend.prepare(items, sources)
    mb = backend.load_media(items, sources)
    # what a transformers user writes: the official chat template, then the processor with its defaults
    processor = backend.processor
    messages = [{"role": "system", "content": [{"type": "text", "text": DEFAULT_SYSTEM_PROMPT}]},
                {"role": "user", "content": [_message_part(it) for it in items]}]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    extra = {"load_audio_from_video": True, "audio_from_video_indices": mb.audio_video} if audio_in_video else {}
    own = processor(text=text, images=mb.images, audio=mb.audio, videos=mb.videos, videos_kwargs={"fps": mb.video_fps},
                    return_tensors="pt", **extra)
    assert prepared.input_ids[0].tolist() == own["input_ids"][0].tolist()
    assert (prepared.layout.kind == L.VIDEO_AUDIO).any() == audio_in_video


def test_video_token_budget_is_the_processors_default(real_qwen_omni, real_qwen_omni_dir, tmp_path):
    """A real folder has no video processor settings of its own: a 1280x720 frame is resized to at most
    768 x 28 x 28 pixels (560 x 1008: 720 tokens per 2-frame group), not to the image bounds (1196)."""
    assert not has_own_video_settings(str(real_qwen_omni_dir))
    assert "video_processor" not in json.loads((real_qwen_omni_dir / "config.json").read_text())
    frames = np.random.RandomState(0).randint(0, 256, (4, 720, 1280, 3), dtype=np.uint8)
    clip = write_video(tmp_path / "hd.mp4", frames, 2)
    prepared = real_qwen_omni.prepare([TextItem("Describe."), VideoItem(str(clip))],
                                      SourceConfig(use_audio_in_video=False))
    visual = prepared.layout.positions(L.VIDEO_VISUAL, 1)
    assert prepared.layout.grids[1] == (20, 36) and len(visual) == 2 * 720
    grid = real_qwen_omni.processor.video_processor(videos=[frames], return_tensors="pt")["video_grid_thw"]
    assert grid.tolist() == [[2, 52, 92]]  # the folder's own video processor alone: the image bounds


@st.composite
def _texts(draw):
    """1-3 text items of arbitrary Unicode, with special-token strings mixed in, maybe an image between."""
    piece = st.one_of(st.text(min_size=1, max_size=12), st.sampled_from(SPECIALS))
    texts = draw(st.lists(st.lists(piece, min_size=1, max_size=4).map("".join), min_size=1, max_size=3))
    image_after = draw(st.integers(-1, len(texts) - 1))
    return texts, image_after


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=_texts())
def test_text_items_rebuild_exactly_from_their_tokens(real_qwen_omni, case):
    texts, image_after = case
    items = []
    for k, text in enumerate(texts):
        items.append(TextItem(text, is_prompt=k == 0 and len(texts) > 1))
        if k == image_after:
            items.append(ImageItem(Image.new("RGB", (56, 56), (200, 30, 30))))
    prepared = real_qwen_omni.prepare(items, SourceConfig())
    tf.check_text_offsets(prepared.layout, items)
    ids = prepared.input_ids[0].numpy()
    image = real_qwen_omni.tokens["image"]
    # user text never becomes a placeholder: every <|IMAGE|> id is the image's own
    assert np.array_equal(ids == image, prepared.layout.kind == L.IMAGE)


def test_official_sample_text_with_an_image_token_string_is_traced_as_text(real_qwen_omni):
    """The MANTIS samples write a literal ``<image>`` (SmolVLM's image token) in the question."""
    samples = json.loads((require(OFFICIAL_EXAMPLES) / "examples" / "question_visual_text.json").read_text())
    question = next(part["text"] for sample in samples for part in sample["question"]
                    if "<image>" in part.get("text", ""))
    items = [TextItem(question), ImageItem(Image.new("RGB", (56, 56))), TextItem("<|IMAGE|> is a token, too.")]
    prepared = real_qwen_omni.prepare(items, SourceConfig())
    tf.check_text_offsets(prepared.layout, items)
    image = prepared.input_ids[0].numpy() == real_qwen_omni.tokens["image"]
    assert np.array_equal(image, prepared.layout.kind == L.IMAGE) and image.sum() == 4  # one 56x56 image


def test_real_folder_files_are_the_released_ones():
    """The tests above run on the real files (PROVENANCE.md): 151,643 BPE tokens + 22 added ones."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(require(QWEN2_5_OMNI_3B))
    assert len(tokenizer) == 151665 and tokenizer.convert_tokens_to_ids("<|IMAGE|>") == 151655
