"""Qwen3-VL (dense and MoE) on tiny random models: layout vs M-RoPE ids and timestamps, exact signals."""

from __future__ import annotations

import re

import numpy as np
import pytest

from omnitrace_core import ImageItem, SourceConfig, TextItem, VideoItem
from omnitrace_core import layout as L
from omnitrace_core.backends.qwen3_vl import Qwen3VLBackend
from tests.backends import tiny_families as tf
from tests.backends.test_qwen2_5_vl import QWEN_VL_TOKENS, SPECIAL_TEXTS, check_positions_follow_the_prompt_ids

PATCH = 16


def build_backend(moe: bool = False):
    import transformers
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

    tok = tf.qwen2_tokenizer(QWEN_VL_TOKENS, eos="<|im_end|>", pad="<|endoftext|>", chat_template=tf.QWEN_VL_TEMPLATE)
    ids = tf.ids_of(tok, *QWEN_VL_TOKENS)
    text = {"vocab_size": tf.padded_vocab(tok), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8, "max_position_embeddings": 4096,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1],
                                "mrope_interleaved": True},
            "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"]}
    if moe:
        text.update(moe_intermediate_size=16, num_experts=4, num_experts_per_tok=2, decoder_sparse_step=1)
    vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "patch_size": PATCH,
              "spatial_merge_size": 2, "temporal_patch_size": 2, "out_hidden_size": 32,
              "num_position_embeddings": 64, "deepstack_visual_indexes": [0]}
    prefix = "Qwen3VLMoe" if moe else "Qwen3VL"
    config = getattr(transformers, f"{prefix}Config")(
        text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"], attn_implementation="sdpa")
    model = tf.seeded(lambda: getattr(transformers, f"{prefix}ForConditionalGeneration")(config))
    if moe:  # the grouped-GEMM experts take no float64, which the exactness check runs in
        model.set_experts_implementation("eager")
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    small = {"patch_size": PATCH, "merge_size": 2, "temporal_patch_size": 2}
    processor = Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=64 * 64, max_pixels=128 * 128, **small),
        tokenizer=tok, chat_template=tf.QWEN_VL_TEMPLATE,
        video_processor=Qwen3VLVideoProcessor(size={"shortest_edge": 64 * 64, "longest_edge": 64 * 64 * 4}, **small))
    return Qwen3VLBackend(model, processor, f"tiny-{prefix.lower()}")


@pytest.fixture(scope="module", params=[False, True], ids=["dense", "moe"])
def backend(request):
    return build_backend(request.param)


def _items(media):
    return [TextItem("Answer briefly.\n", is_prompt=True), TextItem("Look.\nA. first\nB. second"),
            ImageItem(str(media["image_a"])), VideoItem(str(media["video"])), TextItem("What changed?")]


def test_layout_matches_rope_ids_and_frame_timestamps(backend, media):
    items = _items(media)
    prepared = backend.prepare(items, SourceConfig())
    lay, pos = prepared.layout, prepared.extras["position_ids"][:, 0].numpy()
    ids = prepared.input_ids[0].numpy()
    config = backend.model.config
    tf.check_placeholder_mask(lay, ids, np.isin(ids, [config.image_token_id, config.video_token_id]),
                              [L.IMAGE, L.VIDEO_VISUAL])
    (image, positions), = tf.blocks(lay, L.IMAGE).items()
    rows, cols = lay.grids[image]
    p = pos[:, positions] - pos[:, positions[0]][:, None]
    assert np.array_equal(p[1], lay.tile[positions] // cols) and np.array_equal(p[2], lay.tile[positions] % cols)
    (video, vis), = tf.blocks(lay, L.VIDEO_VISUAL).items()
    rows, cols = lay.grids[video]
    groups = np.split(vis, np.flatnonzero(np.diff(vis) > 1) + 1)  # frame groups are separated by text
    tokenizer = backend.tokenizer
    previous_end = None
    for group in groups:
        g = pos[:, group]
        assert np.all(g[0] == g[0, 0])  # one temporal id per group: time is in the timestamp text
        assert np.array_equal(g[1] - g[1].min(), lay.tile[group] // cols)
        # the text before the group is "<t seconds><|vision_start|>", t the group's mid time
        before = tokenizer.decode(ids[(previous_end or 0):group[0]].tolist())
        stamp = float(re.findall(r"<([0-9.]+) seconds>", before)[-1])
        # the processor stamps the mean of its frames' start times; the layout covers the group's span
        first, last = lay.time_start[group[0]], lay.time_end[group[0]] - 1 / prepared.media[video]["fps"]
        assert stamp == pytest.approx((first + last) / 2, abs=0.05 + 1e-9)
        assert np.all(lay.time_start[group] == lay.time_start[group[0]])
        previous_end = group[-1] + 1
    assert len(groups) == 4 and lay.durations[video] == pytest.approx(4.0, abs=0.1)
    tf.check_text_offsets(lay, items)


def test_signals_equal_full_eager_forward(backend, media):
    tf.check_signals_equal_eager_forward(backend, _items(media))


def test_user_text_spelling_special_tokens_gets_the_models_positions_for_its_ids(backend, media):
    items = [TextItem(SPECIAL_TEXTS[0]), ImageItem(str(media["image_a"])), TextItem(SPECIAL_TEXTS[1]),
             VideoItem(str(media["video"])), TextItem("What changed?")]
    check_positions_follow_the_prompt_ids(backend, items)


def test_checkpoint_loads_through_the_registry(tmp_path, media):
    loaded = tf.check_round_trip(build_backend(), tmp_path, Qwen3VLBackend)
    assert loaded.prepare(_items(media), SourceConfig()).length > 0
