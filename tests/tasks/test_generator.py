"""The known-truth generator: determinism (same seed, same bytes) and ground truth that fits the tracer."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from omnitrace_core.tasks import synth
from omnitrace_core.tasks.benchmark import official_sample, sample_truth, write_benchmark
from omnitrace_core.evaluation.groundtruth import GroundTruth
from omnitrace_core.tasks import TASK_NAMES, generate
from omnitrace_core.nlp import segment_generation, sentence_spans

SPLITS = {"dev": (11, 1), "test": (22, 1)}


def test_same_seed_same_bytes(tmp_path):
    a = write_benchmark(tmp_path / "a", SPLITS)
    b = write_benchmark(tmp_path / "b", SPLITS)
    manifest_a = (a / "manifest.json").read_bytes()
    assert manifest_a == (b / "manifest.json").read_bytes()
    files = json.loads(manifest_a)["files"]
    assert {f.split(".")[-1] for f in files} == {"json", "png", "flac", "mp4"}
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_other_seed_other_samples():
    assert generate(1, 0).entries[0].value != generate(2, 0).entries[0].value
    assert generate(1, 3).answer == generate(1, 3).answer


def test_sample_alone_equals_sample_in_stream():
    alone = generate(5, 9)
    stream = [generate(5, i) for i in range(10)]
    assert alone.answer == stream[9].answer and alone.task == stream[9].task


@pytest.mark.parametrize("task", TASK_NAMES)
def test_ground_truth_fits_source_units_and_output_sentences(task):
    for index in range(12):
        sample = generate(3, index, task)
        assert sample.spans, "every sample has expected sentences"
        units = {k + 1: sentence_spans(e.value, split_lines=True)
                 for k, e in enumerate(sample.entries) if e.kind == "text"}
        for span in sample.spans:
            assert span.sources, f"{task}: every sentence has a known source"
            for src in span.sources:
                entry = sample.entries[src.item - 1]
                assert entry.kind == src.modality
                if src.modality == "text":  # a true text range is exactly one tracer unit
                    hits = [(a, b) for a, b in units[src.item] if a < src.char_end and src.char_start < b]
                    assert len(hits) == 1 and abs(hits[0][0] - src.char_start) <= 1 and abs(hits[0][1] - src.char_end) <= 1
                elif src.modality in ("audio", "video"):
                    assert src.time_end - src.time_start == 1.0 and src.time_start == int(src.time_start)
        text = sample.answer
        offsets = [(m.start(), m.end()) for m in re.finditer(r"\S+\s*", text)]
        spans = segment_generation(text, offsets, split_lines=True).spans
        assert [text[s.char_start:s.char_end].strip() for s in spans] == [s.text for s in sample.spans]


@pytest.mark.parametrize("task", TASK_NAMES)
def test_distractors_are_present(task):
    for index in range(10):
        sample = generate(4, index, task)
        kinds = [e.kind for e in sample.entries]
        cited = {src.item for span in sample.spans for src in span.sources}
        if task.startswith("image"):
            assert kinds.count("image") >= 2
        if task.startswith("text"):
            assert sum(len(sentence_spans(e.value)) for e in sample.entries if e.kind == "text") > len(sample.spans)
        if task.startswith(("audio", "video")):
            timed = [src for span in sample.spans for src in span.sources if src.modality != "text"]
            assert len({src.time_start for src in timed}) < synth.CLIP_SECONDS  # some seconds are never cited
        if task.endswith("_qa"):
            assert len(sample.options) == 4 and sample.option in sample.options
            letters = re.findall(r"answer is ([A-D])", sample.answer)
            assert letters == [sample.option]
        assert len(sample.entries) + 1 > len(cited)


def test_official_format_and_ground_truth_round_trip(tmp_path):
    sample = generate(6, 2, "image_qa")
    record = official_sample(sample, "test")
    assert record["answer"] == sample.answer and record["option"] == sample.option
    assert [next(iter(q)) for q in record["question"]] == [e.kind for e in sample.entries]
    truth = GroundTruth((sample_truth(sample, "test"),))
    again = GroundTruth.load(truth.save(tmp_path / "gt.json"))
    assert again.to_dict() == truth.to_dict()
    assert again.samples[0].question_type == sample.question_type


def test_every_qa_sample_names_its_question_type():
    types = {}
    for task in TASK_NAMES:
        for index in range(40):
            sample = generate(9, index, task)
            assert (sample.question_type is None) == (sample.option is None)
            if sample.question_type:
                types.setdefault(task, set()).add(sample.question_type)
    assert types == {
        "text_qa": {"colour of a thing"},
        "image_qa": {"colour of a shape", "shape of a colour", "count of a colour and shape"},
        "audio_qa": {"time of a sound", "sound at a time"},
        "video_qa": {"shape at a time", "colour at a time", "time of a colour and shape", "time of the sound"}}


@pytest.mark.parametrize("task", [t for t in TASK_NAMES if t.endswith("_qa")])
def test_a_qa_answer_is_labelled_with_the_question_line_it_copies(task):
    for index in range(12):
        sample = generate(5, index, task)
        content, letter = sample.spans
        question_item = sample.options["A"].item
        text = sample.entries[question_item - 1].value
        question_line = text.split("\n")[0]
        lines = [r for r in content.sources if r.modality == "text" and r.item == question_item]
        assert [(r.char_start, r.char_end) for r in lines] == [(0, len(question_line))]
        assert question_line.endswith("?")
        # the sentence copies the question's subject ("What colour is the kite?" -> "The kite is red.")
        assert len(set(re.findall(r"[a-z]+", question_line.lower())) & set(re.findall(r"[a-z]+", content.text.lower()))) >= 2
        assert len(content.sources) == 2  # the evidence and the question line
        assert letter.sources == (sample.options[sample.option],)


def test_media_are_what_the_ground_truth_says():
    rng = np.random.default_rng(0)
    wave = synth.soundtrack({1: "tone", 3: "hiss"}, rng)
    energy = [float(np.sqrt(np.mean(wave[s * 16000:(s + 1) * 16000] ** 2))) for s in range(4)]
    assert energy[1] > 0.1 and energy[3] > 0.1 and energy[0] < 0.01 and energy[2] < 0.01
    clip = synth.video_clip({2: ("red", "circle")}, {0: "buzz"}, rng)
    assert clip.frames.shape == (8, synth.FRAME_SIZE, synth.FRAME_SIZE, 3)
    red = (clip.frames[..., 0] > 180) & (clip.frames[..., 1] < 90)
    assert red[4:6].any() and not red[:4].any() and not red[6:].any()
    image = synth.draw_cells({4: ("blue", "square")}, rng)
    blue = (image[..., 2] > 180) & (image[..., 0] < 90)
    assert blue[28:56, 28:56].sum() == blue.sum() > 100


def test_the_shipped_benchmark_is_what_the_generator_writes(tmp_path):
    import hashlib

    from omnitrace_core.assets import DEFAULT_BENCHMARK_DIR
    from omnitrace_core.tasks.benchmark import SPLITS as SHIPPED, write_media

    manifest = json.loads((DEFAULT_BENCHMARK_DIR / "manifest.json").read_text())
    assert {s: (v["seed"], v["per_task"]) for s, v in manifest["splits"].items()} == SHIPPED
    assert sum(v["samples"] for s, v in manifest["splits"].items() if s == "test") >= 300
    for split, (seed, _) in SHIPPED.items():
        records = json.loads((DEFAULT_BENCHMARK_DIR / split / "questions.json").read_text())
        shipped_truth = {t.id: t for t in GroundTruth.load(DEFAULT_BENCHMARK_DIR / split / "ground_truth.json").samples}
        for index in range(len(TASK_NAMES)):  # one sample of every task, media bytes included
            sample = generate(seed, index)
            assert official_sample(sample, split) == records[index]
            assert shipped_truth[sample_truth(sample, split).id] == sample_truth(sample, split)
            for path in write_media(sample, tmp_path / split, split).values():
                name = f"{split}/media/{path.name}"
                assert hashlib.sha256(path.read_bytes()).hexdigest() == manifest["files"][name], name
