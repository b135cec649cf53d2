"""The examples gallery: on the demo model it leads with one example per modality that the model
answers right (checked by running them); on a real checkpoint the official samples lead."""

from __future__ import annotations

import pytest

from components.samples import DEMO_DATASET, gallery, sample_items
from components.settings import AppSettings, InputLimits
from omnitrace_core.assets import DEFAULT_MODEL_DIR
from omnitrace_core.training.demo_model import CARD_FILENAME

MODALITIES = ((), ("image",), ("audio",), ("video",))


def media_kinds(sample) -> tuple[str, ...]:
    return tuple(sorted({kind for entry in sample["question"] for kind in entry if kind != "text"}))


def test_on_the_default_model_the_demo_examples_lead_one_per_modality():
    examples = gallery(demo_first=True)
    lead = examples.samples[:len(MODALITIES)]
    assert all(s["source_dataset"] == DEMO_DATASET for s in lead)
    assert tuple(media_kinds(s) for s in lead) == MODALITIES
    labels = [label for label, _ in examples.choices()]
    assert [label.split(":")[0] for label in labels[:4]] == ["Text", "Image", "Audio", "Video"]
    assert sorted(examples.keys) == sorted(gallery().keys), "no example is dropped, only reordered"


def test_on_a_real_checkpoint_the_official_samples_lead():
    examples = gallery()
    assert examples.samples[0]["source_dataset"] != DEMO_DATASET
    assert examples.samples[-1]["source_dataset"] == DEMO_DATASET


@pytest.mark.slow
@pytest.mark.skipif(not (DEFAULT_MODEL_DIR / CARD_FILENAME).is_file(), reason="no demo model in assets/demo_model")
def test_the_demo_model_answers_each_leading_example_right():
    from components.model_loading import load_tracer
    from components.trace_panel import run_settings

    settings = AppSettings()  # the app's default: the demo model, its default generation length
    tracer, _, _ = load_tracer(settings)
    examples = gallery(demo_first=True)
    for key, sample in list(zip(examples.keys, examples.samples))[:len(MODALITIES)]:
        items = sample_items(examples, key, InputLimits())
        generation, sources = run_settings(settings.default_new_tokens, 1.0, 1.0, False, settings.limits,
                                           tracer.sources)
        result = tracer.trace(tuple(item.to_engine() for item in items), signal="attmean", generation=generation,
                              sources=sources)
        assert result.text.strip() == sample["answer"], key
