"""Gemma 3n on a tiny random model: image / audio layout vs the model's scatter, exact signals.

The vision tower is a timm model (Gemma 3n uses MobileNet-v5); here timm's tiny ``test_convnext``
stands in with the same output contract (a (C, s, s) feature map), so timm must be installed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from omnitrace_core import AudioItem, ImageItem, InputError, SourceConfig, TextItem, VideoItem
from omnitrace_core import layout as L
from tests.backends import tiny_families as tf
from tests.media_files import tone

pytest.importorskip("timm", reason="Gemma 3n's vision tower is a timm model")

from omnitrace_core.backends.gemma3n import Gemma3nBackend  # noqa: E402

TEXT_SPECIALS = ("<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>",
                 "<start_of_audio>")
VISION_RANGE = ("<end_of_image>", "<image_soft_token>")  # embedded by embed_vision, as in Gemma 3n
AUDIO_RANGE = ("<end_of_audio>", "<audio_soft_token>", "<audio_pad>")  # the last id is the padding slot
NAMED = {"image_token": "<image_soft_token>", "boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
         "audio_token": "<audio_soft_token>", "boa_token": "<start_of_audio>", "eoa_token": "<end_of_audio>"}
#: The Gemma 3n chat template (texts are trimmed, as in the official one).
TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% set role = 'model' if message['role'] == 'assistant' "
    "else message['role'] %}<start_of_turn>{{ role }}\n{% if message['content'] is string %}"
    "{{ message['content'] | trim }}{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'audio' %}<audio_soft_token>{% elif item['type'] == 'image' %}<image_soft_token>"
    "{% elif item['type'] == 'text' %}{{ item['text'] | trim }}{% endif %}{% endfor %}{% endif %}"
    "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
IMAGE_PX, SIDE = 64, 2  # test_convnext downsamples 32x: 2 x 2 soft tokens per image
AUDIO_SLOTS = 20  # audio slots per clip (188 in the real model): 3.2 s at 160 ms


def build_backend():
    from transformers import (Gemma3nAudioFeatureExtractor, Gemma3nConfig, Gemma3nForConditionalGeneration,
                              Gemma3nProcessor, SiglipImageProcessor)

    tok = tf.qwen2_tokenizer(TEXT_SPECIALS + VISION_RANGE + AUDIO_RANGE, eos="<end_of_turn>", pad="<pad>",
                             bos="<bos>", chat_template=TEMPLATE, named=NAMED)
    ids = tf.ids_of(tok, *TEXT_SPECIALS, *VISION_RANGE, *AUDIO_RANGE)
    vision_offset, audio_offset = ids["<end_of_image>"], ids["<end_of_audio>"]
    config = Gemma3nConfig(
        text_config={"vocab_size": len(tok), "vocab_size_per_layer_input": vision_offset, "hidden_size": 32,
                     "hidden_size_per_layer_input": 8, "intermediate_size": 64, "num_hidden_layers": 4,
                     "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8, "sliding_window": 24,
                     "layer_types": ["sliding_attention", "full_attention"] * 2, "num_kv_shared_layers": 2,
                     "laurel_rank": 4, "altup_num_inputs": 2, "activation_sparsity_pattern": [0.0] * 4,
                     "max_position_embeddings": 4096, "pad_token_id": ids["<pad>"],
                     "eos_token_id": ids["<end_of_turn>"],
                     "bos_token_id": ids["<bos>"]},
        vision_config={"architecture": "test_convnext", "hidden_size": 64, "vocab_size": len(VISION_RANGE),
                       "vocab_offset": vision_offset},
        audio_config={"vocab_size": len(AUDIO_RANGE), "vocab_offset": audio_offset, "input_feat_size": 128,
                      "hidden_size": 16, "conf_num_attention_heads": 2, "conf_num_hidden_layers": 1,
                      "sscp_conv_channel_size": [8, 4], "conf_attention_chunk_size": 4,
                      "conf_attention_context_left": 5},
        audio_soft_tokens_per_image=AUDIO_SLOTS, vision_soft_tokens_per_image=SIDE * SIDE,
        boi_token_id=ids["<start_of_image>"], eoi_token_id=ids["<end_of_image>"],
        image_token_id=ids["<image_soft_token>"], boa_token_id=ids["<start_of_audio>"],
        eoa_token_id=ids["<end_of_audio>"], audio_token_id=ids["<audio_soft_token>"], attn_implementation="sdpa")
    model = tf.seeded(lambda: Gemma3nForConditionalGeneration(config))
    model.generation_config.eos_token_id = ids["<end_of_turn>"]
    processor = Gemma3nProcessor(
        feature_extractor=Gemma3nAudioFeatureExtractor(), tokenizer=tok, chat_template=TEMPLATE,
        image_processor=SiglipImageProcessor(size={"height": IMAGE_PX, "width": IMAGE_PX}),
        audio_seq_length=AUDIO_SLOTS, image_seq_length=SIDE * SIDE)
    return Gemma3nBackend(model, processor, "tiny-gemma3n")


@pytest.fixture(scope="module")
def backend():
    return build_backend()


def _items(media):
    return [TextItem("Answer briefly.\n", is_prompt=True), TextItem("Which one?\nA. tone\nB. image"),
            ImageItem(str(media["image_a"])), AudioItem((tone(300, 1.0), 16000)), TextItem("Why?")]


def test_layout_matches_the_models_scatter(backend, media):
    items = _items(media) + [AudioItem(str(media["audio"]))]
    prepared = backend.prepare(items, SourceConfig())
    lay, ids = prepared.layout, prepared.input_ids[0]
    model = backend.model.model
    inputs = prepared.model_inputs
    with torch.no_grad():
        image = model.get_image_features(inputs["pixel_values"]).pooler_output
        audio = model.get_audio_features(inputs["input_features"], ~inputs["input_features_mask"])
    embeds = model.get_input_embeddings()(ids[None])
    image_mask, audio_mask = model.get_placeholder_mask(ids[None], embeds, image_features=image)
    image_mask, audio_mask = image_mask[0, :, 0].numpy(), audio_mask[0, :, 0].numpy()
    assert np.array_equal(image_mask, lay.kind == L.IMAGE)
    assert lay.grids[2] == (SIDE, SIDE) and lay.tile[lay.kind == L.IMAGE].tolist() == list(range(SIDE * SIDE))
    # audio: the slots the model fills with encoder output (not its padding) are the layout's tokens
    real = (~audio.audio_mel_mask).sum(-1).tolist()
    slots = np.flatnonzero(audio_mask).reshape(2, AUDIO_SLOTS)
    for k, (item, n) in enumerate(zip((3, 5), real)):
        assert np.array_equal(lay.positions(L.AUDIO, item), slots[k, :n])
        assert np.all(lay.kind[slots[k, n:]] == L.NONE)
        np.testing.assert_allclose(lay.time_start[slots[k, :n]], 0.16 * np.arange(n))
    assert real == [7, 19]  # 1 s and 3 s at 160 ms per slot (the window is 3.2 s)
    tf.check_text_offsets(lay, items, trimmed=True)  # the template trims texts


def test_signals_equal_full_eager_forward_with_sliding_window_layers(backend, media):
    prepared = backend.prepare(_items(media), SourceConfig())
    assert prepared.length > 2 * backend.model.config.text_config.sliding_window
    tf.check_signals_equal_eager_forward(backend, _items(media))


def test_video_is_refused(backend, media):
    with pytest.raises(InputError, match="accepts: audio, image, text"):
        backend.prepare([TextItem("Watch."), VideoItem(str(media["video"]))], SourceConfig())


def test_checkpoint_loads_through_the_registry(backend, tmp_path, media):
    loaded = tf.check_round_trip(backend, tmp_path, Gemma3nBackend)
    assert torch.equal(loaded.prepare(_items(media), SourceConfig()).input_ids,
                       backend.prepare(_items(media), SourceConfig()).input_ids)
