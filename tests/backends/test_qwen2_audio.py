"""Qwen2-Audio on a tiny random model: audio layout vs the model's placeholder scatter, exact signals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from omnitrace_core import AudioItem, ImageItem, InputError, SourceConfig, TextItem
from omnitrace_core import layout as L
from omnitrace_core.backends.qwen2_audio import Qwen2AudioBackend
from tests.backends import tiny_families as tf
from tests.media_files import tone

TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>")
#: The Qwen2-Audio-7B-Instruct chat template.
TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if 'audio' in content or 'audio_url' in content or content['type'] == 'audio' %}"
    "{% set audio_count.value = audio_count.value + 1 %}Audio {{ audio_count.value }}: "
    "<|audio_bos|><|AUDIO|><|audio_eos|>\n{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_backend():
    from transformers import (Qwen2AudioConfig, Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor,
                              WhisperFeatureExtractor)

    tok = tf.qwen2_tokenizer(TOKENS, eos="<|im_end|>", pad="<|endoftext|>", chat_template=TEMPLATE)
    ids = tf.ids_of(tok, *TOKENS)
    config = Qwen2AudioConfig(
        audio_config={"num_mel_bins": 128, "encoder_layers": 1, "encoder_attention_heads": 2, "encoder_ffn_dim": 32,
                      "d_model": 16, "max_source_positions": 1500},
        text_config={"model_type": "qwen2", "vocab_size": tf.padded_vocab(tok), "hidden_size": 32,
                     "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                     "num_key_value_heads": 2, "max_position_embeddings": 4096, "eos_token_id": ids["<|im_end|>"]},
        audio_token_index=ids["<|AUDIO|>"], attn_implementation="sdpa")
    model = tf.seeded(lambda: Qwen2AudioForConditionalGeneration(config))
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    fe = WhisperFeatureExtractor(feature_size=128, sampling_rate=16000, hop_length=160, chunk_length=30, n_fft=400,
                                 padding_value=0.0, return_attention_mask=True)
    return Qwen2AudioBackend(model, Qwen2AudioProcessor(fe, tok, chat_template=TEMPLATE), "tiny-qwen2-audio")


@pytest.fixture(scope="module")
def backend():
    return build_backend()


def _items(media):
    return [TextItem("Answer briefly.\n", is_prompt=True), TextItem("Which sound?\nA. tone\nB. speech"),
            AudioItem(str(media["audio"])), TextItem("And this one?"), AudioItem((tone(300, 1.0), 16000))]


def test_audio_layout_matches_the_models_feature_scatter(backend, media):
    items = _items(media)
    prepared = backend.prepare(items, SourceConfig())
    lay, ids = prepared.layout, prepared.input_ids[0].numpy()
    tf.check_placeholder_mask(lay, ids, ids == backend.model.config.audio_token_index, [L.AUDIO])
    # the model scatters, in order, the first n_k features of audio k: n_k from its own length rule
    lengths = prepared.model_inputs["feature_attention_mask"].sum(-1)
    _, per_audio = backend.model.model.audio_tower._get_feat_extract_output_lengths(lengths)
    blocks = tf.blocks(lay, L.AUDIO)
    assert [len(p) for p in blocks.values()] == per_audio.tolist() == [75, 25]  # 3 s and 1 s at 40 ms
    for item, positions in blocks.items():
        assert np.array_equal(positions, np.arange(positions[0], positions[0] + len(positions)))
        np.testing.assert_allclose(lay.time_start[positions], 0.04 * np.arange(len(positions)), atol=1e-9)
        assert lay.time_end[positions].max() <= prepared.media[item]["duration"] + 1e-9
    tf.check_text_offsets(lay, items)


def test_long_audio_is_cut_into_encoder_windows(backend):
    window = backend.audio_window_seconds
    prepared = backend.prepare([TextItem("Listen."), AudioItem((tone(300, window + 2.0), 16000))], SourceConfig())
    times = prepared.layout.time_start[prepared.layout.positions(L.AUDIO, 1)]
    assert window == 30.0 and prepared.media[1]["windows"] == 2
    assert times.max() == pytest.approx(window + 2.0 - 0.04, abs=0.05) and np.all(np.diff(times) > 0)


def test_signals_equal_full_eager_forward(backend, media):
    tf.check_signals_equal_eager_forward(backend, _items(media))


def test_images_are_refused(backend, media):
    with pytest.raises(InputError, match="accepts: audio, text"):
        backend.prepare([TextItem("Look."), ImageItem(str(media["image_a"]))], SourceConfig())


def test_checkpoint_loads_through_the_registry(backend, tmp_path, media):
    loaded = tf.check_round_trip(backend, tmp_path, Qwen2AudioBackend)
    assert torch.equal(loaded.prepare(_items(media), SourceConfig()).input_ids,
                       backend.prepare(_items(media), SourceConfig()).input_ids)
