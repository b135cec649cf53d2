"""MiniCPM-V 4.6 on a tiny random model (hybrid Qwen3.5 decoder): slice layout and exact signals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from omnitrace_core import AudioItem, ImageItem, InputError, SourceConfig, TextItem, VideoItem
from omnitrace_core import layout as L
from omnitrace_core.backends.minicpmv4_6 import MiniCPMV46Backend
from tests import media_files
from tests.backends import tiny_families as tf

TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|image_pad|>", "<|video_pad|>", "<image>", "</image>",
          "<slice>", "</slice>", "<image_id>", "</image_id>")
NAMED = {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>", "image_start_token": "<image>",
         "image_end_token": "</image>", "slice_start_token": "<slice>", "slice_end_token": "</slice>",
         "image_id_start_token": "<image_id>", "image_id_end_token": "</image_id>"}
TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|image_pad|>{% elif content['type'] == 'video' %}<|video_pad|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SCALE = 112  # source views of about 112 x 112 px: 8 x 8 patches of 14 px -> 2 x 2 tokens


def build_backend():
    from transformers import (MiniCPMV4_6Config, MiniCPMV4_6ForConditionalGeneration, MiniCPMV4_6ImageProcessor,
                              MiniCPMV4_6Processor, MiniCPMV4_6VideoProcessor)

    tok = tf.qwen2_tokenizer(TOKENS, eos="<|im_end|>", pad="<|endoftext|>", chat_template=TEMPLATE, named=NAMED)
    ids = tf.ids_of(tok, *TOKENS)
    config = MiniCPMV4_6Config(
        text_config={"model_type": "qwen3_5_text", "vocab_size": tf.padded_vocab(tok), "hidden_size": 32,
                     "intermediate_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4,
                     "num_key_value_heads": 2, "head_dim": 8, "linear_conv_kernel_dim": 2, "linear_key_head_dim": 8,
                     "linear_value_head_dim": 8, "linear_num_key_heads": 2, "linear_num_value_heads": 2,
                     "max_position_embeddings": 4096, "eos_token_id": ids["<|im_end|>"]},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "patch_size": 14, "image_size": SCALE, "insert_layer_id": 0},
        insert_layer_id=0, image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        attn_implementation="sdpa")
    model = tf.seeded(lambda: MiniCPMV4_6ForConditionalGeneration(config))
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    small = {"scale_resolution": SCALE, "patch_size": 14, "max_slice_nums": 4}
    processor = MiniCPMV4_6Processor(image_processor=MiniCPMV4_6ImageProcessor(**small),
                                     video_processor=MiniCPMV4_6VideoProcessor(**small, slice_mode=False),
                                     tokenizer=tok, chat_template=TEMPLATE)
    return MiniCPMV46Backend(model, processor, "tiny-minicpmv4_6")


@pytest.fixture(scope="module")
def backend():
    return build_backend()


@pytest.fixture(scope="module")
def large_image(tmp_path_factory):
    return media_files.write_image(tmp_path_factory.mktemp("minicpm") / "large.png", 336, 224, seed=3)


def test_only_softmax_layers_are_read(backend):
    from omnitrace_core import get_signal

    assert backend.text_model_config().layer_types == ["linear_attention"] * 3 + ["full_attention"]
    assert backend.attention_layers == (3,)
    assert backend.signal_layers(get_signal("attmean")) == (3,) == backend.signal_layers(get_signal("attgrads"))


def test_slice_layout_matches_the_models_scatter(backend, media, large_image):
    items = [TextItem("Compare.\n", is_prompt=True), ImageItem(str(large_image)), TextItem("with"),
             ImageItem(str(media["image_b"])), VideoItem(str(media["video"]))]
    prepared = backend.prepare(items, SourceConfig())
    lay, ids = prepared.layout, prepared.input_ids[0]
    model = backend.model.model
    inputs = prepared.model_inputs
    with torch.no_grad():
        images = torch.cat(model.get_image_features(inputs["pixel_values"], inputs["target_sizes"]).pooler_output)
        videos = torch.cat(model.get_video_features(inputs["pixel_values_videos"],
                                                    inputs["target_sizes_videos"]).pooler_output)
    embeds = model.get_input_embeddings()(ids[None])
    image_mask = model.get_placeholder_mask(ids[None], embeds, images, backend.model.config.image_token_id)
    video_mask = model.get_placeholder_mask(ids[None], embeds, videos, backend.model.config.video_token_id)
    assert np.array_equal(image_mask[0, :, 0].numpy(), lay.kind == L.IMAGE)
    assert np.array_equal(video_mask[0, :, 0].numpy(), lay.kind == L.VIDEO_VISUAL)
    # the large image is sliced; its source view's tiles come first, row-major, then every slice
    big = lay.positions(L.IMAGE, 1)
    rows, cols = lay.grids[1]
    assert len(big) > rows * cols and lay.tile[big[:rows * cols]].tolist() == list(range(rows * cols))
    slices = lay.tile[big[rows * cols:]]
    assert set(slices.tolist()) == set(range(rows * cols))  # slices cover the whole image
    # the merger's window order is row-major over merged 2x2 windows
    from transformers.models.minicpmv4_6.modeling_minicpmv4_6 import get_vision_window_index

    index, _ = get_vision_window_index(torch.tensor([[1, 4, 4]]), spatial_merge_size=1, window_size=2, patch_size=1)
    windows = index.view(-1, 4)
    assert [(int(w.min()) // 4 // 2, int(w.min()) % 4 // 2) for w in windows] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    vis = lay.positions(L.VIDEO_VISUAL, 4)
    frames = prepared.media[4]["frames"]
    np.testing.assert_allclose(np.unique(lay.time_start[vis]), np.arange(frames) / prepared.media[4]["fps"])
    tf.check_text_offsets(lay, items)


def test_signals_equal_full_eager_forward(backend, media, large_image):
    items = [TextItem("Answer briefly.\n", is_prompt=True), TextItem("Which?\nA. one\nB. two"),
             ImageItem(str(large_image)), VideoItem(str(media["video"]))]
    tf.check_signals_equal_eager_forward(backend, items)


def test_audio_is_refused(backend, media):
    with pytest.raises(InputError, match="accepts: image, text, video"):
        backend.prepare([TextItem("Listen."), AudioItem(str(media["audio"]))], SourceConfig())


def test_checkpoint_loads_through_the_registry(backend, tmp_path, media):
    loaded = tf.check_round_trip(backend, tmp_path, MiniCPMV46Backend)
    items = [TextItem("Look."), ImageItem(str(media["image_a"]))]
    expected = backend.prepare(items, SourceConfig()).input_ids
    assert torch.equal(loaded.prepare(items, SourceConfig()).input_ids, expected)
