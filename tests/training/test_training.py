"""Training examples are the tracer's own layout plus the answer; batching changes nothing; a run saves a loadable model."""

from __future__ import annotations

import json

import pytest
import torch

from omnitrace_core.testing.tiny_qwen2_5_omni import TinyOmniSpec
from omnitrace_core.training.demo_model import CARD_FILENAME, DemoSpec, build_model, build_processor, build_tokenizer
from omnitrace_core.tasks import synth
from omnitrace_core.tasks import generate
from omnitrace_core.training.train import SOURCE_CONFIG, TrainConfig, _backend_for, _loss, collate, encode, train
from omnitrace_core.tasks.benchmark import sample_items

SMALL = DemoSpec(model=TinyOmniSpec(text_hidden=32, text_layers=2, text_heads=2, text_kv_heads=1,
                                    text_intermediate=64, vision_hidden=16, vision_depth=1, vision_heads=1,
                                    vision_intermediate=32, audio_d_model=16, audio_layers=1, audio_heads=1,
                                    audio_ffn=32, vocab_size=700, max_position_embeddings=4096),
                 tokenizer_samples=200)


@pytest.fixture(scope="module")
def backend():
    tokenizer = build_tokenizer(SMALL)
    return _backend_for(build_model(tokenizer, SMALL), build_processor(tokenizer))


def test_example_is_prepare_plus_answer(backend, tmp_path):
    sample = generate(0, 7, "video_description")
    example = encode(backend, sample, tmp_path)
    prepared = backend.prepare(sample_items(sample, tmp_path), SOURCE_CONFIG)
    n = prepared.length
    assert torch.equal(example["input_ids"][:n], prepared.input_ids[0].cpu())
    answer = example["input_ids"][n:]
    assert backend.tokenizer.decode(answer[:-1]) == sample.answer
    assert backend.tokenizer.convert_ids_to_tokens(int(answer[-1])) == "<|im_end|>"
    assert (example["labels"][:n] == -100).all() and torch.equal(example["labels"][n:], answer)
    # generated tokens continue the M-RoPE positions the way decoding does: position + rope delta
    later = example["position_ids"][:, n:]
    assert torch.equal(later[0], torch.arange(n, n + len(answer)) + prepared.extras["rope_delta"])
    assert torch.equal(example["position_ids"][:, :n], prepared.extras["position_ids"][:, 0].cpu())
    # perception targets: on media tokens, and on the words that name a colour (here, in the answer)
    assert (example["aux"]["sound"][:n] != -100).sum() > 0
    colour_words = sum(w.strip(".") in synth.COLOURS for w in sample.answer.split())
    assert colour_words > 0 and int((example["aux"]["colour"][n:] != -100).sum()) == colour_words


def test_batched_loss_equals_separate_losses(backend, tmp_path):
    model = backend.model
    model.eval()
    samples = [generate(1, 2, "image_qa"), generate(1, 5, "audio_description"), generate(1, 6, "video_qa")]
    examples = [encode(backend, s, tmp_path) for s in samples]
    pad = backend.tokenizer.convert_tokens_to_ids("<|endoftext|>")
    with torch.no_grad():
        together, _ = _loss(model, collate(examples, pad))
        separate = [_loss(model, collate([e], pad))[0] for e in examples]
    counts = torch.tensor([float((e["labels"] != -100).sum()) for e in examples])
    expected = (torch.stack(separate) * counts).sum() / counts.sum()
    assert together.item() == pytest.approx(expected.item(), rel=1e-4)
    model.train()


def test_training_run_saves_a_loadable_model(tmp_path):
    from omnitrace_core import Tracer

    card = train(tmp_path / "model", SMALL, TrainConfig(steps=2, batch_size=2, warmup=1, eval_every=0, eval_per_task=0))
    assert card["parameters"] > 0 and card["train"]["steps"] == 2
    assert json.loads((tmp_path / "model" / CARD_FILENAME).read_text())["spec"] == SMALL.to_dict()
    tracer = Tracer.from_pretrained(tmp_path / "model", device="cpu")
    assert tracer.backend.model.config.audio_config.n_window == 500
    assert tracer.backend.processor.feature_extractor.chunk_length == 10
