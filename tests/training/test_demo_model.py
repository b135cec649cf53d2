"""The shipped demo model: small, loads offline, is the CLI's default, and answers a fixed sample right."""

from __future__ import annotations

import json

import pytest

from omnitrace_core.assets import DEFAULT_BENCHMARK_DIR, DEFAULT_MODEL_DIR
from omnitrace_core.training.demo_model import CARD_FILENAME
from omnitrace_core.training.train import TrainConfig

pytestmark = pytest.mark.skipif(not (DEFAULT_MODEL_DIR / CARD_FILENAME).is_file(),
                                reason="the demo model has not been trained into assets/demo_model")

#: A test-split sample of every modality the shipped model answers exactly (checked when it was trained).
FIXED = "test-0002"


def _sample(key: str):
    from omnitrace_core.batch import load_questions, media_bases
    from omnitrace_core.inputs import parse_sample

    path = DEFAULT_BENCHMARK_DIR / "test" / "questions.json"
    raw = next(s for s in load_questions(path) if s["id"] == key)
    return raw, parse_sample(raw, key, media_bases(path))


@pytest.fixture(scope="module")
def demo_tracer():
    from omnitrace_core import Tracer

    return Tracer.from_pretrained(DEFAULT_MODEL_DIR, device="cpu")


def test_size_and_card():
    total = sum(p.stat().st_size for p in DEFAULT_MODEL_DIR.rglob("*") if p.is_file())
    assert total <= 30 * 1024 * 1024
    card = json.loads((DEFAULT_MODEL_DIR / CARD_FILENAME).read_text())
    assert card["architecture"] == "Qwen2_5OmniThinkerForConditionalGeneration"
    assert card["train_seconds"] <= 90 * 60  # the budget: one seeded run within 90 minutes on 2 CPU cores
    assert card["train"]["steps"] == TrainConfig().steps  # `omnitrace train-demo` with defaults is the shipped run
    config = json.loads((DEFAULT_MODEL_DIR / "config.json").read_text())
    assert config["audio_config"]["n_window"] == 100  # the real checkpoints' 2 s encoder window


def test_loads_offline(demo_tracer, monkeypatch):
    import os

    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # set by tests/conftest.py before transformers loads
    assert type(demo_tracer.backend.model).__name__ == "Qwen2_5OmniThinkerForConditionalGeneration"


def test_cli_default_model_is_the_demo_model():
    from omnitrace_core.cli import build_parser

    args = build_parser().parse_args(["trace", "--questions", "q.json", "--output", "o.jsonl"])
    assert args.model == str(DEFAULT_MODEL_DIR)


def test_answers_a_fixed_sample_with_the_right_sources(demo_tracer):
    from omnitrace_core import GenerationConfig

    raw, sample = _sample(FIXED)
    result = demo_tracer.trace(list(sample.items), generation=GenerationConfig(max_new_tokens=64))
    assert result.text == raw["answer"]
    truth = json.loads((DEFAULT_BENCHMARK_DIR / "test" / "ground_truth.json").read_text())
    labels = next(s for s in truth["samples"] if s["id"] == FIXED)
    image = labels["spans"][0]["sources"][0]
    assert image["modality"] == "image"
    assert [s.item for s in result.spans[0].sources if s.modality == "image"] == [image["item"]]
