"""Qwen2.5-VL / Qwen2-VL on tiny random models: layout vs the model's M-RoPE ids, exact signals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from omnitrace_core import AudioItem, ImageItem, InputError, SourceConfig, TextItem, Tracer, VideoItem
from omnitrace_core import layout as L
from omnitrace_core.backends.qwen2_5_vl import Qwen25VLBackend
from tests.backends import tiny_families as tf

QWEN_VL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                  "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")
TOKENS_PER_SECOND = 2


def build_tokenizer():
    return tf.qwen2_tokenizer(QWEN_VL_TOKENS, eos="<|im_end|>", pad="<|endoftext|>",
                              chat_template=tf.QWEN_VL_TEMPLATE)


def build_processor(tokenizer, cls_name="Qwen2_5_VLProcessor"):
    import transformers
    from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    small = {"min_pixels": 56 * 56, "max_pixels": 112 * 112, "patch_size": 14, "merge_size": 2,
             "temporal_patch_size": 2}
    return getattr(transformers, cls_name)(
        image_processor=Qwen2VLImageProcessor(**small), tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**small, do_sample_frames=False), chat_template=tf.QWEN_VL_TEMPLATE)


def build_backend(version="2.5"):
    import transformers

    tok = build_tokenizer()
    ids = tf.ids_of(tok, *QWEN_VL_TOKENS)
    text = {"vocab_size": tf.padded_vocab(tok), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 4096,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1]},
            "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"]}
    vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "patch_size": 14,
              "spatial_merge_size": 2, "temporal_patch_size": 2}
    if version == "2.5":
        vision.update(out_hidden_size=32, window_size=56, fullatt_block_indexes=[1],
                      tokens_per_second=TOKENS_PER_SECOND)
        config_cls, model_cls = "Qwen2_5_VLConfig", "Qwen2_5_VLForConditionalGeneration"
        processor = "Qwen2_5_VLProcessor"
    else:
        vision.update(embed_dim=32, mlp_ratio=2)
        config_cls, model_cls, processor = "Qwen2VLConfig", "Qwen2VLForConditionalGeneration", "Qwen2VLProcessor"
    config = getattr(transformers, config_cls)(
        text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"], attn_implementation="sdpa")
    model = tf.seeded(lambda: getattr(transformers, model_cls)(config))
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    return Qwen25VLBackend(model, build_processor(tok, processor), f"tiny-qwen{version}-vl")


@pytest.fixture(scope="module", params=["2.5", "2"])
def backend(request):
    return build_backend(request.param)


def _items(media, video=True):
    items = [TextItem("Answer briefly.\n", is_prompt=True), TextItem("Look at these.\nA. first\nB. second"),
             ImageItem(str(media["image_a"])), TextItem("and"), ImageItem(str(media["image_b"]))]
    if video:
        items += [VideoItem(str(media["video"])), TextItem("What changed?")]
    return items


def test_layout_matches_model_rope_positions(backend, media):
    items = _items(media)
    prepared = backend.prepare(items, SourceConfig())
    lay, pos = prepared.layout, prepared.extras["position_ids"][:, 0].numpy()
    ids = prepared.input_ids[0].numpy()
    config = backend.model.config
    tf.check_placeholder_mask(lay, ids, np.isin(ids, [config.image_token_id, config.video_token_id]),
                              [L.IMAGE, L.VIDEO_VISUAL])
    for item, positions in tf.blocks(lay, L.IMAGE).items():
        rows, cols = lay.grids[item]
        assert len(positions) == rows * cols
        p = pos[:, positions] - pos[:, positions[0]][:, None]
        assert np.array_equal(p[1], lay.tile[positions] // cols) and np.array_equal(p[2], lay.tile[positions] % cols)
        assert np.all(p[0] == 0)
    (video, vis), = tf.blocks(lay, L.VIDEO_VISUAL).items()
    rows, cols = lay.grids[video]
    assert np.array_equal(pos[1, vis] - pos[1, vis].min(), lay.tile[vis] // cols)
    assert np.array_equal(pos[2, vis] - pos[2, vis].min(), lay.tile[vis] % cols)
    temporal = pos[0, vis] - pos[0, vis].min()
    if backend.model.config.model_type == "qwen2_5_vl":  # temporal ids advance tokens_per_second per second
        np.testing.assert_allclose(lay.time_start[vis], temporal / TOKENS_PER_SECOND, atol=1e-9)
    else:  # Qwen2-VL: one temporal id per group of two frames (1 s at 2 fps)
        np.testing.assert_allclose(lay.time_start[vis], temporal * 2 / prepared.media[video]["fps"], atol=1e-9)
    assert sorted(set(lay.time_start[vis].tolist())) == [0.0, 1.0, 2.0, 3.0]
    assert len(lay.positions(L.VIDEO_AUDIO)) == 0  # no audio track in this family
    tf.check_text_offsets(lay, items)


def test_signals_equal_full_eager_forward(backend, media):
    tf.check_signals_equal_eager_forward(backend, _items(media))


#: user texts that spell the family's special tokens: read as plain text, they change the prompt's length
#: against the processor's own tokenisation (which sees them masked), before and between media runs
SPECIAL_TEXTS = ("Is <|vision_start|> or <|im_start|> here?", "<|image_pad|><|im_end|> and <|video_pad|> after")


def check_positions_follow_the_prompt_ids(backend, items):
    """Tracing works, and the prompt's M-RoPE ids, token types and ``generate`` arguments are what the
    model makes of the prompt ids themselves (token types: its image / video placeholders among them)."""
    prepared = backend.prepare(items, SourceConfig())
    ids, config, lay = prepared.input_ids, backend.model.config, prepared.layout
    for item in (i for i, it in enumerate(items) if it.modality == "text"):  # user text stayed text
        assert not np.isin(ids[0, lay.positions(L.TEXT, item)].numpy(), list(backend.tokenizer.all_special_ids)).any()
    types = (ids == config.image_token_id).long() + 2 * (ids == config.video_token_id).long()
    grids = {k: prepared.model_inputs[k] for k in ("image_grid_thw", "video_grid_thw") if k in prepared.model_inputs}
    if "second_per_grid_ts" in prepared.extras:
        grids["second_per_grid_ts"] = prepared.extras["second_per_grid_ts"]
    expected, delta = backend.model.model.get_rope_index(ids, mm_token_type_ids=types, **grids)
    assert torch.equal(prepared.extras["position_ids"], expected) and prepared.extras["rope_delta"] == int(delta)
    assert torch.equal(prepared.extras["mm_token_type_ids"], types)
    tf.check_text_offsets(lay, items)
    result = Tracer(backend).trace(items, generation=tf.GEN)
    assert len(result.tokens) == tf.GEN.max_new_tokens and result.sources.num_atoms > 0
    with torch.no_grad():  # the untraced baseline takes the same arrays
        out = backend.model.generate(**backend.generate_kwargs(prepared), max_new_tokens=2, do_sample=False)
    assert out.shape == (1, prepared.length + 2)


def test_user_text_spelling_special_tokens_gets_the_models_positions_for_its_ids(backend, media):
    items = [TextItem(SPECIAL_TEXTS[0]), ImageItem(str(media["image_a"])), TextItem(SPECIAL_TEXTS[1]),
             ImageItem(str(media["image_b"])), VideoItem(str(media["video"])), TextItem("What changed?")]
    check_positions_follow_the_prompt_ids(backend, items)


def test_user_text_that_moves_the_image_but_keeps_the_length_gets_the_models_positions(backend, media):
    # the special string before the image reads as two tokens more than the processor's masked text; the
    # texts after it, split at item boundaries (" world" would join them), as two fewer: same length, the
    # image run two tokens later than the processor's token types put it
    items = [TextItem("<|im_start|>"), ImageItem(str(media["image_a"])),
             *(TextItem(t) for t in ("Hello ", "world", "Good ", "day"))]
    check_positions_follow_the_prompt_ids(backend, items)


def test_audio_is_refused_with_the_accepted_modalities(backend, media):
    with pytest.raises(InputError, match="accepts: image, text, video"):
        backend.prepare([TextItem("Listen."), AudioItem(str(media["audio"]))], SourceConfig())


def test_checkpoint_loads_through_the_registry(tmp_path, media):
    loaded = tf.check_round_trip(build_backend("2.5"), tmp_path, Qwen25VLBackend)
    assert loaded.prepare(_items(media, video=False), SourceConfig()).length > 0
