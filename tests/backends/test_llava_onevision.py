"""LLaVA-OneVision on a tiny random model: anyres / multi-image / video layouts vs the model's packing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from omnitrace_core import AudioItem, ImageItem, InputError, SourceConfig, TextItem, VideoItem
from omnitrace_core import layout as L
from omnitrace_core.backends.llava_onevision import LlavaOnevisionBackend
from tests.backends import tiny_families as tf

TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>")
#: The llava-onevision-qwen2 chat template: images, then videos, then the texts of a turn.
TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + ' '}}{% if message['content'] is string %}"
    "{{ message['content'] }}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ '\\n' + content['text'] }}"
    "{% endfor %}{% endif %}{{'<|im_end|>'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% endif %}"
)
CROP, PATCH = 32, 8
SIDE = CROP // PATCH
PINPOINTS = [[32, 32], [32, 64], [64, 32], [64, 64]]


def build_backend():
    from transformers import (LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration,
                              LlavaOnevisionImageProcessor, LlavaOnevisionProcessor, LlavaOnevisionVideoProcessor)

    tok = tf.qwen2_tokenizer(TOKENS, eos="<|im_end|>", pad="<|endoftext|>", chat_template=TEMPLATE)
    ids = tf.ids_of(tok, *TOKENS)
    config = LlavaOnevisionConfig(
        vision_config={"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64,
                       "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": CROP, "patch_size": PATCH},
        text_config={"model_type": "qwen2", "vocab_size": tf.padded_vocab(tok), "hidden_size": 32,
                     "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                     "num_key_value_heads": 2, "max_position_embeddings": 4096, "eos_token_id": ids["<|im_end|>"]},
        image_token_index=ids["<image>"], video_token_index=ids["<video>"], image_grid_pinpoints=PINPOINTS,
        vision_feature_select_strategy="full", vision_feature_layer=-1, attn_implementation="sdpa")
    model = tf.seeded(lambda: LlavaOnevisionForConditionalGeneration(config))
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    size = {"height": CROP, "width": CROP}
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size=size, image_grid_pinpoints=PINPOINTS), tokenizer=tok,
        video_processor=LlavaOnevisionVideoProcessor(size=size), num_image_tokens=SIDE * SIDE,
        vision_feature_select_strategy="full", chat_template=TEMPLATE)
    return LlavaOnevisionBackend(model, processor, "tiny-llava-onevision")


@pytest.fixture(scope="module")
def backend():
    return build_backend()


def _scatter_mask(backend, prepared):
    model = backend.model.model
    ids = prepared.input_ids
    embeds = model.get_input_embeddings()(ids)
    image, video = model.get_placeholder_mask(ids, inputs_embeds=embeds)
    return image[0, :, 0].numpy(), video[0, :, 0].numpy()


def test_single_image_anyres_layout_follows_the_models_packing(backend, media):
    items = [TextItem("Describe it."), ImageItem(str(media["image_a"]))]
    prepared = backend.prepare(items, SourceConfig())
    lay = prepared.layout
    image_mask, _ = _scatter_mask(backend, prepared)
    with torch.no_grad():
        (features,) = backend.model.model.get_image_features(
            **{k: v for k, v in prepared.model_inputs.items() if k != "pixel_values_videos"}).pooler_output
    assert image_mask.sum() == len(features)
    tokens = np.flatnonzero(image_mask)
    assert np.array_equal(tokens[lay.kind[tokens] == L.IMAGE], lay.positions(L.IMAGE, 1))
    newlines = tokens[lay.kind[tokens] == L.NONE]
    # the base view first (row-major tiles), then the unpadded high-resolution grid row by row
    base, high = tokens[:SIDE * SIDE], tokens[SIDE * SIDE:]
    assert lay.tile[base].tolist() == list(range(SIDE * SIDE)) and lay.grids[1] == (SIDE, SIDE)
    rows = len(newlines)
    width = len(high) // rows - 1
    assert rows > SIDE and np.array_equal(newlines, high.reshape(rows, width + 1)[:, -1])  # 84x112 -> 2 crops wide
    r, c = np.divmod(np.arange(rows * width), width)
    expected = np.floor((r + 0.5) / rows * SIDE) * SIDE + np.floor((c + 0.5) / width * SIDE)
    assert np.array_equal(lay.tile[high.reshape(rows, width + 1)[:, :-1].ravel()], expected)
    tf.check_text_offsets(lay, items)


def test_several_images_get_their_base_view_and_video_its_frames(backend, media):
    items = [TextItem("Compare.\n", is_prompt=True), ImageItem(str(media["image_a"])), TextItem("with"),
             ImageItem(str(media["image_b"])), VideoItem(str(media["video"])), TextItem("What moves?")]
    prepared = backend.prepare(items, SourceConfig())
    lay = prepared.layout
    image_mask, video_mask = _scatter_mask(backend, prepared)
    media_tokens = np.isin(lay.kind, [L.IMAGE, L.VIDEO_VISUAL])
    assert np.all((image_mask | video_mask)[media_tokens])
    newlines = np.flatnonzero((image_mask | video_mask) & ~media_tokens)
    assert len(newlines) == 3 and np.all(lay.kind[newlines] == L.NONE) and video_mask[newlines[-1]]
    for item in (1, 3):  # base view only, plus one newline each
        assert lay.tile[lay.positions(L.IMAGE, item)].tolist() == list(range(SIDE * SIDE))
    assert image_mask.sum() == 2 * (SIDE * SIDE + 1)
    vis = lay.positions(L.VIDEO_VISUAL, 4)
    pooled = (SIDE + 1) // 2
    frames = prepared.media[4]["frames"]
    assert video_mask.sum() == len(vis) + 1 == frames * pooled * pooled + 1
    assert newlines[-1] == vis[-1] + 1  # the video's newline closes its block
    np.testing.assert_allclose(lay.time_start[vis], (np.arange(len(vis)) // pooled ** 2) / prepared.media[4]["fps"])
    assert lay.tile[vis].tolist() == list(range(pooled * pooled)) * frames
    tf.check_text_offsets(lay, items)


def test_signals_equal_full_eager_forward(backend, media):
    items = [TextItem("Answer briefly.\n", is_prompt=True), TextItem("Which is it?\nA. one\nB. two"),
             ImageItem(str(media["image_a"])), VideoItem(str(media["video"]))]
    tf.check_signals_equal_eager_forward(backend, items)


def test_audio_is_refused(backend, media):
    with pytest.raises(InputError, match="accepts: image, text, video"):
        backend.prepare([TextItem("Listen."), AudioItem(str(media["audio"]))], SourceConfig())


def test_checkpoint_loads_through_the_registry(backend, tmp_path, media):
    loaded = tf.check_round_trip(backend, tmp_path, LlavaOnevisionBackend)
    items = [TextItem("Describe it."), ImageItem(str(media["image_a"]))]
    expected = backend.prepare(items, SourceConfig()).input_ids
    assert torch.equal(loaded.prepare(items, SourceConfig()).input_ids, expected)
