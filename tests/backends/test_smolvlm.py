"""SmolVLM on a tiny random model: crop layout vs the processor's crops and the model's scatter."""

from __future__ import annotations

import numpy as np
import pytest

from omnitrace_core import AudioItem, InputError, ImageItem, SourceConfig, TextItem, VideoItem
from omnitrace_core import layout as L
from tests.backends import tiny_families as tf

pytest.importorskip("num2words", reason="transformers' SmolVLM processor needs num2words")

from omnitrace_core.backends.smolvlm import SmolVLMBackend  # noqa: E402

CROPS = tuple(f"<row_{r}_col_{c}>" for r in range(1, 5) for c in range(1, 5))
TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<end_of_utterance>", "<fake_token_around_image>",
          "<image>", "<global-img>", *CROPS)
#: SmolVLM's chat template (transformers' processing_smolvlm.DEFAULT_CHAT_TEMPLATE).
TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% elif line['type'] == 'video' %}{{ '<video>' }}{% endif %}"
    "{% endfor %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
CROP_PX, PATCH, SCALE = 32, 4, 2
SIDE = CROP_PX // PATCH // SCALE  # global grid side: 4 -> 16 tokens per crop


def build_backend():
    from transformers import (SmolVLMConfig, SmolVLMForConditionalGeneration, SmolVLMImageProcessor,
                              SmolVLMProcessor, SmolVLMVideoProcessor)

    tok = tf.qwen2_tokenizer(TOKENS, eos="<end_of_utterance>", pad="<|endoftext|>", chat_template=TEMPLATE,
                             named={"image_token": "<image>", "fake_image_token": "<fake_token_around_image>",
                                    "global_image_token": "<global-img>",
                                    "end_of_utterance_token": "<end_of_utterance>"})
    ids = tf.ids_of(tok, *TOKENS)
    config = SmolVLMConfig(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": CROP_PX, "patch_size": PATCH},
        text_config={"model_type": "llama", "vocab_size": tf.padded_vocab(tok), "hidden_size": 32,
                     "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                     "num_key_value_heads": 2, "max_position_embeddings": 4096,
                     "pad_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<end_of_utterance>"]},
        scale_factor=SCALE, image_token_id=ids["<image>"], attn_implementation="sdpa")
    model = tf.seeded(lambda: SmolVLMForConditionalGeneration(config))
    model.generation_config.eos_token_id = ids["<end_of_utterance>"]
    processor = SmolVLMProcessor(
        image_processor=SmolVLMImageProcessor(size={"longest_edge": 2 * CROP_PX},
                                              max_image_size={"longest_edge": CROP_PX}),
        tokenizer=tok, video_processor=SmolVLMVideoProcessor(), image_seq_len=SIDE * SIDE, chat_template=TEMPLATE)
    return SmolVLMBackend(model, processor, "tiny-smolvlm")


@pytest.fixture(scope="module")
def backend():
    return build_backend()


def _items(media):
    return [TextItem("Answer briefly.\n", is_prompt=True), TextItem("Which is brighter?\nA. left\nB. right"),
            ImageItem(str(media["image_a"])), TextItem("or"), ImageItem(str(media["image_b"])),
            ImageItem(str(media["image_a"]), name="again")]


def test_crop_layout_matches_the_processor_and_the_models_scatter(backend, media):
    import torch

    items = _items(media)
    prepared = backend.prepare(items, SourceConfig())
    lay, ids = prepared.layout, prepared.input_ids[0]
    model = backend.model.model
    embeds = model.get_input_embeddings()(ids[None])
    with torch.no_grad():  # the model's own features: their count must fill the placeholders exactly
        features = torch.cat(model.get_image_features(**prepared.model_inputs).pooler_output)
    mask = model.get_placeholder_mask(ids[None], inputs_embeds=embeds, image_features=features)[0, :, 0].numpy()
    tf.check_placeholder_mask(lay, ids.numpy(), mask, [L.IMAGE])
    # the image processor's own crop grid per image, and its pixel geometry
    from PIL import Image

    images = [Image.open(items[i].source).convert("RGB") for i in (2, 4, 5)]
    out = backend.processor.image_processor(images, return_row_col_info=True)
    grids = [(r, c) for r, c in zip(np.ravel(out["rows"]), np.ravel(out["cols"]))]
    assert grids == [(2, 2), (2, 1), (2, 2)]  # 112x84 -> 64x48 -> 2x2 crops; 56x112 (w x h) -> 2x1
    for (item, positions), (rows, cols) in zip(tf.blocks(lay, L.IMAGE).items(), grids):
        assert lay.grids[item] == (SIDE, SIDE) and len(positions) == (rows * cols + 1) * SIDE * SIDE
        expected = []
        for r in range(rows):  # crop tokens: the global tile under the token's centre, in pixels
            for c in range(cols):
                for i in range(SIDE):
                    for j in range(SIDE):
                        y = (r + (i + 0.5) / SIDE) * CROP_PX / (rows * CROP_PX)
                        x = (c + (j + 0.5) / SIDE) * CROP_PX / (cols * CROP_PX)
                        expected.append(int(y * SIDE) * SIDE + int(x * SIDE))
        expected += list(range(SIDE * SIDE))  # the global crop comes last, row-major
        assert lay.tile[positions].tolist() == expected
    tf.check_text_offsets(lay, items)
    assert torch.equal(torch.as_tensor(mask), ids == backend.model.config.image_token_id)


def test_signals_equal_full_eager_forward(backend, media):
    tf.check_signals_equal_eager_forward(backend, _items(media)[:5])


@pytest.mark.parametrize("make", [lambda m: AudioItem(str(m["audio"])), lambda m: VideoItem(str(m["video"]))])
def test_audio_and_video_are_refused(backend, media, make):
    with pytest.raises(InputError, match="accepts: image, text"):
        backend.prepare([TextItem("Hm."), make(media)], SourceConfig())


def test_checkpoint_loads_through_the_registry(backend, tmp_path, media):
    loaded = tf.check_round_trip(backend, tmp_path, SmolVLMBackend)
    assert loaded.prepare(_items(media), SourceConfig()).length == backend.prepare(_items(media), SourceConfig()).length


def idefics3_folder(backend, folder):
    """The tiny SmolVLM saved the way SmolVLM-256M/500M-Instruct are: an ``idefics3`` checkpoint (same weights)
    with an ``Idefics3Processor`` around the same tokenizer and image settings."""
    import copy

    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessor, Idefics3Processor

    config = backend.model.config.to_dict()
    config["vision_config"].pop("model_type")
    model = Idefics3ForConditionalGeneration(Idefics3Config(**{
        k: v for k, v in config.items() if k not in ("model_type", "architectures", "transformers_version")}))
    model.load_state_dict(backend.model.state_dict(), strict=True)
    image = backend.processor.image_processor
    processor = Idefics3Processor(
        image_processor=Idefics3ImageProcessor(size=dict(image.size), max_image_size=dict(image.max_image_size)),
        tokenizer=copy.deepcopy(backend.tokenizer), image_seq_len=backend.processor.image_seq_len,
        chat_template=TEMPLATE)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def test_idefics3_folders_of_smolvlm_are_served_as_smolvlm(backend, tmp_path, media):
    import torch

    from omnitrace_core import Tracer, load_backend

    loaded = load_backend(str(idefics3_folder(backend, tmp_path)), device="cpu")
    assert type(loaded) is SmolVLMBackend
    assert (type(loaded.model).__name__, type(loaded.processor).__name__) == (
        "Idefics3ForConditionalGeneration", "Idefics3Processor")
    items = _items(media)[:5]
    ours, theirs = backend.prepare(items, SourceConfig()), loaded.prepare(items, SourceConfig())
    assert torch.equal(ours.input_ids, theirs.input_ids)
    for field in ("kind", "item", "tile", "char_start", "char_end"):
        assert np.array_equal(getattr(ours.layout, field), getattr(theirs.layout, field))
    a = Tracer(backend).trace(items, signal="attmean", generation=tf.GEN)
    b = Tracer(loaded).trace(items, signal="attmean", generation=tf.GEN)
    assert [t.token_id for t in a.tokens] == [t.token_id for t in b.tokens]
    np.testing.assert_allclose(a.atom_sum, b.atom_sum, rtol=1e-5, atol=1e-7)
    tf.check_signals_equal_eager_forward(loaded, items)


def test_text_holding_the_image_token_string_stays_text(backend, media):
    """The official MANTIS samples write a literal ``<image>`` in the question: SmolVLM's image placeholder."""
    question = "Is the time shown in clock or watch in both <image> and <image> the same?"
    items = [TextItem(question), ImageItem(str(media["image_a"]))]
    prepared = backend.prepare(items, SourceConfig())
    ids, lay = prepared.input_ids[0].numpy(), prepared.layout
    image = backend.token_id("<image>")
    assert np.array_equal(ids == image, lay.kind == L.IMAGE)  # the image's placeholders only
    assert len(lay.positions(L.IMAGE, 1)) == (2 * 2 + 1) * SIDE * SIDE  # one image, 2x2 crops + global
    tf.check_text_offsets(lay, items)
