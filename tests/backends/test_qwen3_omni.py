"""Qwen3-Omni thinker on a tiny random MoE model: layout vs its M-RoPE ids, with and without audio in video."""

from __future__ import annotations

import numpy as np
import pytest

from omnitrace_core import AudioItem, ImageItem, SourceConfig, TextItem, VideoItem
from omnitrace_core import layout as L
from omnitrace_core.backends.qwen3_omni import Qwen3OmniBackend
from tests.backends import tiny_families as tf

TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|audio_start|>", "<|audio_end|>", "<|audio_pad|>",
          "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")
NAMED = {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>", "audio_token": "<|audio_pad|>",
         "vision_bos_token": "<|vision_start|>", "vision_eos_token": "<|vision_end|>",
         "audio_bos_token": "<|audio_start|>", "audio_eos_token": "<|audio_end|>"}
#: The Qwen3-Omni chat template, in the parts the backend relies on.
TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'audio' %}<|audio_start|><|audio_pad|><|audio_end|>"
    "{% elif content['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
IDS_PER_SECOND = 13


def build_backend():
    from transformers import (Qwen2VLImageProcessor, Qwen2VLVideoProcessor, Qwen3OmniMoeProcessor,
                              Qwen3OmniMoeThinkerConfig, Qwen3OmniMoeThinkerForConditionalGeneration,
                              WhisperFeatureExtractor)

    tok = tf.qwen2_tokenizer(TOKENS, eos="<|im_end|>", pad="<|endoftext|>", chat_template=TEMPLATE, named=NAMED)
    ids = tf.ids_of(tok, *TOKENS)
    config = Qwen3OmniMoeThinkerConfig(
        audio_config={"num_mel_bins": 128, "encoder_layers": 1, "encoder_attention_heads": 2, "encoder_ffn_dim": 32,
                      "d_model": 16, "output_dim": 32, "n_window": 50, "n_window_infer": 400,
                      "downsample_hidden_size": 8, "max_source_positions": 1500},
        vision_config={"depth": 1, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "patch_size": 16,
                       "spatial_merge_size": 2, "temporal_patch_size": 2, "out_hidden_size": 32,
                       "num_position_embeddings": 64, "deepstack_visual_indexes": [0]},
        text_config={"vocab_size": tf.padded_vocab(tok), "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
                     "moe_intermediate_size": 16, "num_experts": 4, "num_experts_per_tok": 2,
                     "max_position_embeddings": 4096, "eos_token_id": ids["<|im_end|>"],
                     "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1],
                                         "mrope_interleaved": True}},
        position_id_per_seconds=IDS_PER_SECOND, audio_token_id=ids["<|audio_pad|>"],
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        audio_start_token_id=ids["<|audio_start|>"], vision_start_token_id=ids["<|vision_start|>"],
        attn_implementation="sdpa")
    model = tf.seeded(lambda: Qwen3OmniMoeThinkerForConditionalGeneration(config))
    model.set_experts_implementation("eager")  # grouped GEMM takes no float64 (the exactness check)
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    small = {"min_pixels": 64 * 64, "max_pixels": 128 * 128, "patch_size": 16, "merge_size": 2,
             "temporal_patch_size": 2}
    processor = Qwen3OmniMoeProcessor(
        image_processor=Qwen2VLImageProcessor(**small), video_processor=Qwen2VLVideoProcessor(**small),
        feature_extractor=WhisperFeatureExtractor(feature_size=128, sampling_rate=16000, hop_length=160,
                                                  chunk_length=300, n_fft=400, return_attention_mask=True),
        tokenizer=tok, chat_template=TEMPLATE)
    return Qwen3OmniBackend(model, processor, "tiny-qwen3-omni")


@pytest.fixture(scope="module")
def backend():
    return build_backend()


def _items(media):
    return [TextItem("Answer briefly.\n", is_prompt=True), TextItem("Which one?\nA. first\nB. second"),
            ImageItem(str(media["image_a"])), AudioItem(str(media["audio"])), VideoItem(str(media["video"])),
            TextItem("What changed?")]


@pytest.mark.parametrize("audio_in_video", [False, True])
def test_layout_matches_model_rope_positions(backend, media, audio_in_video):
    items = _items(media)
    prepared = backend.prepare(items, SourceConfig(use_audio_in_video=audio_in_video))
    lay, pos = prepared.layout, prepared.extras["position_ids"][:, 0].numpy()
    ids = prepared.input_ids[0].numpy()
    config = backend.model.config
    tf.check_placeholder_mask(lay, ids, np.isin(ids, [config.image_token_id, config.audio_token_id,
                                                      config.video_token_id]),
                              [L.IMAGE, L.AUDIO, L.VIDEO_VISUAL, L.VIDEO_AUDIO])
    (image, positions), = tf.blocks(lay, L.IMAGE).items()
    rows, cols = lay.grids[image]
    p = pos[:, positions] - pos[:, positions[0]][:, None]
    assert np.array_equal(p[1], lay.tile[positions] // cols) and np.array_equal(p[2], lay.tile[positions] % cols)

    def check_audio(audio, start):
        ticks = pos[0, audio] - start  # one id per audio token, 13 per 1 s chunk
        assert np.array_equal(ticks, np.arange(len(audio)))
        np.testing.assert_array_equal(np.floor(lay.time_start[audio] + 1e-9), ticks // IDS_PER_SECOND)
        assert np.all(np.abs(lay.time_start[audio] - ticks / IDS_PER_SECOND) < 1 / IDS_PER_SECOND)

    (_, audio), = tf.blocks(lay, L.AUDIO).items()
    assert len(audio) == 39  # 3 s: 13 per 1 s chunk
    check_audio(audio, pos[0, audio[0]])
    (video, vis), = tf.blocks(lay, L.VIDEO_VISUAL).items()
    track = lay.positions(L.VIDEO_AUDIO, video)
    start = pos[0, vis].min() if not len(track) else min(pos[0, vis].min(), pos[0, track].min())
    np.testing.assert_allclose(lay.time_start[vis], (pos[0, vis] - start) / IDS_PER_SECOND, atol=1e-9)
    rows, cols = lay.grids[video]
    assert np.array_equal(pos[1, vis] - pos[1, vis].min(), lay.tile[vis] // cols)
    if audio_in_video:
        assert len(track) in (52, 53) and vis.max() > track.min()  # a 4 s track (+ codec padding), interleaved
        check_audio(track, start)
    else:
        assert len(track) == 0
    tf.check_text_offsets(lay, items)


def test_signals_equal_full_eager_forward(backend, media):
    tf.check_signals_equal_eager_forward(backend, _items(media))


def test_checkpoint_loads_through_the_registry(backend, tmp_path, media):
    loaded = tf.check_round_trip(backend, tmp_path, Qwen3OmniBackend)
    assert loaded.prepare(_items(media)[:4], SourceConfig()).length == \
        backend.prepare(_items(media)[:4], SourceConfig()).length
