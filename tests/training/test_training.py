"""Training examples are the tracer's own layout plus the answer; batching changes nothing; a run saves a loadable model."""

from __future__ import annotations

import json

import pytest
import torch

from omnitrace_core.testing.tiny_qwen2_5_omni import TinyOmniSpec
from omnitrace_core.training.demo_model import CARD_FILENAME, DemoSpec, build_model, build_processor, build_tokenizer
from omnitrace_core.tasks import synth
from omnitrace_core.tasks import generate
from omnitrace_core.training.train import (EASY_QUESTION_TYPES, SOURCE_CONFIG, TrainConfig, _backend_for, _Batches,
                                           _loss, batch_schedule, collate, encode, train)
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
    assert tracer.backend.model.config.audio_config.n_window == 100  # 2 s windows, as the real checkpoints'
    assert tracer.backend.processor.feature_extractor.chunk_length == 10


@pytest.mark.parametrize("index, task, key", [(0, "image_qa", "colour_l1"), (1, "image_qa", "shape_l1"),
                                              (0, "audio_qa", "second"), (1, "audio_qa", "sound_l1")])
def test_answer_slot_carries_the_key_its_sentence_named(backend, tmp_path, index, task, key):
    sample = generate(5, index, task)
    example = encode(backend, sample, tmp_path)
    ids, labels, aux = example["input_ids"], example["labels"], example["aux"]
    n = int((labels == -100).sum())
    content = sample.spans[0].text  # e.g. "The blue object is a square."
    answer_word = content.rstrip(".").split()[-1]
    slot = next(p for p in range(n, len(ids)) if backend.tokenizer.decode(ids[n:p + 1]).endswith(answer_word)) - 1
    named = {"colour_l1": synth.COLOURS, "shape_l1": synth.SHAPES, "sound_l1": synth.SOUNDS, "second": range(10)}[key]
    words = content[:content.rindex(answer_word)].split()
    expected = next(k + 1 for k, v in enumerate(named) if str(v) in words) if key != "second" else int(words[words.index("second") + 1])
    assert int(aux[key][slot]) == expected
    # only there in the answer, beside the words that name it; without answer keys, not at the slot
    plain = encode(backend, sample, tmp_path, answer_keys=False)["aux"]
    assert int(plain[key][slot]) == -100
    assert int(((aux[key] != plain[key])[n:]).sum()) == 1


def test_curriculum_replaces_only_the_easy_question_types(backend):
    schedule = batch_schedule(["text_qa", "image_qa", "image_description", "video_qa"], qa_weight=2)
    stream = _Batches(backend, seed=3, batch_size=12, start=0, stop=8, schedule=schedule, curriculum_steps=4)
    for step in range(8):
        group = schedule[step % len(schedule)]
        for k in range(12):
            sample = stream.draw(step, k, group)
            plain = generate(3, step * 12 + k, group[k % len(group)])
            if step >= 4 or plain.question_type not in EASY_QUESTION_TYPES:
                assert sample.answer == plain.answer and sample.task == plain.task
            else:
                assert sample.task.endswith("_qa") and sample.question_type not in EASY_QUESTION_TYPES
