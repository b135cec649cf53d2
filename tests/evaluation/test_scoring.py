"""Metrics and scoring on hand-worked cases, including empty predictions and empty ground truth."""

from __future__ import annotations

import pytest

from omnitrace_core.errors import InputError
from omnitrace_core.evaluation.groundtruth import GoldSpan, GroundTruth, SampleTruth, SourceRef
from omnitrace_core.evaluation.metrics import attributed_option, option_consistency, set_f1, time_f1
from omnitrace_core.evaluation.outputs import output_accuracy, parse_option, sentences
from omnitrace_core.evaluation.scoring import (SamplePrediction, SpanPrediction, align, predicted_sets, score,
                                               score_sets, truth_sets)
from omnitrace_core.sources import SourceUnit


def test_set_f1_hand_worked():
    prf = set_f1({1, 2, 3}, {2, 3, 4, 5})  # P = 2/3, R = 2/4, F1 = 2*(2/3)(1/2)/(2/3+1/2) = 4/7
    assert prf.precision == pytest.approx(2 / 3) and prf.recall == pytest.approx(0.5)
    assert prf.f1 == pytest.approx(4 / 7)


def test_set_f1_empty_cases():
    assert set_f1(set(), set()).f1 == 1.0            # nothing to find, nothing claimed
    empty_pred = set_f1(set(), {"a"})
    assert (empty_pred.precision, empty_pred.recall, empty_pred.f1) == (0.0, 0.0, 0.0)
    empty_truth = set_f1({"a"}, set())
    assert (empty_truth.precision, empty_truth.recall, empty_truth.f1) == (0.0, 0.0, 0.0)


def test_time_f1_hand_worked():
    # prediction [0.5, 2.0) touches bins 0, 1; truth [1, 3) is bins 1, 2: P = R = 1/2
    prf = time_f1([(0.5, 2.0)], [(1.0, 3.0)])
    assert (prf.precision, prf.recall, prf.f1) == (0.5, 0.5, 0.5)
    # items keep timelines apart: the same seconds of another item are not a hit
    assert time_f1([(1, 0.0, 1.0)], [(2, 0.0, 1.0)]).f1 == 0.0
    assert time_f1([], [(0.0, 1.0)]).f1 == 0.0 and time_f1([(0.0, 1.0)], []).f1 == 0.0
    assert time_f1([], []).f1 == 1.0


def test_option_consistency_hand_worked():
    masses = [{"A": 0.1, "B": 0.7}, {"A": 0.2, "B": 0.2}, {"A": 0.0, "B": 0.0}, {"C": 1.0}]
    chosen = ["B", "A", "A", None]
    # sample 1 consistent; sample 2 a tie -> A (first letter) consistent; sample 3 all zero -> inconsistent;
    # sample 4 has no parsed option -> not scored
    assert option_consistency(masses, chosen) == (pytest.approx(2 / 3), 3)
    assert attributed_option({"A": 0.0}) is None
    assert option_consistency([], []) == (0.0, 0)
    with pytest.raises(InputError):
        option_consistency([{"A": 1.0}], [])


def test_parse_option_and_sentences():
    assert parse_option("The drum is red. The answer is B.") == "B"
    assert parse_option("The answer is (C).") == "C"
    assert parse_option("The drum is red.") is None
    assert sentences(" A b.  C  d! E? ") == ["A b.", "C d!", "E?"]


def test_output_accuracy():
    class S:
        def __init__(self, task, option, answer):
            self.task, self.option, self.answer = task, option, answer

    samples = [S("x_qa", "B", "It is red. The answer is B."), S("x_qa", "A", "It is red. The answer is A."),
               S("x_description", None, "One. Two. Three.")]
    acc = output_accuracy(samples, ["It is red. The answer is B.", "It is blue. The answer is C.", "One. Two."])
    assert acc["summary"]["qa_accuracy"] == 0.5
    assert acc["summary"]["description_sentence_accuracy"] == pytest.approx(2 / 3)
    assert acc["summary"]["exact_outputs"] == pytest.approx(1 / 3)
    assert acc["question_types"] == []


def test_output_accuracy_by_question_type():
    class S:
        def __init__(self, task, option, question_type):
            self.task, self.option, self.answer, self.question_type = task, option, "", question_type

    samples = [S("b_qa", "A", "count"), S("a_qa", "B", "time"), S("a_qa", "C", "time"), S("a_qa", "D", "colour"),
               S("a_qa", "A", None), S("x_description", None, "time")]
    acc = output_accuracy(samples, ["The answer is A.", "The answer is B.", "The answer is A.", "The answer is D.",
                                    "The answer is A.", ""])
    assert acc["question_types"] == [
        {"task": "a_qa", "question_type": "colour", "samples": 1, "qa_accuracy": 1.0},
        {"task": "a_qa", "question_type": "time", "samples": 2, "qa_accuracy": 0.5},
        {"task": "b_qa", "question_type": "count", "samples": 1, "qa_accuracy": 1.0}]
    assert acc["tasks"]["a_qa"]["qa_accuracy"] == 0.75  # the untyped sample still counts for its task


UNITS = (
    SourceUnit(0, "text", 1, "Mia has a red kite.", char_start=0, char_end=19),
    SourceUnit(1, "text", 1, "Leo has a blue drum.", char_start=20, char_end=40),
    SourceUnit(2, "image", 2, "image"),
    SourceUnit(3, "image", 3, "image"),
    SourceUnit(4, "audio", 4, "a 0-1", time_start=0.0, time_end=1.0),
    SourceUnit(5, "audio", 4, "a 1-2", time_start=1.0, time_end=2.0),
    SourceUnit(6, "audio", 4, "a 2-3", time_start=2.0, time_end=3.0),
)


def test_truth_and_prediction_sets():
    truth = truth_sets([SourceRef("text", 1, char_start=20, char_end=40), SourceRef("image", 3),
                        SourceRef("audio", 4, time_start=1.0, time_end=3.0)], UNITS)
    assert truth["text"] == {("unit", 1)} and truth["image"] == {3}
    pred = predicted_sets([1, 2, 5], UNITS)
    scores = score_sets(pred, truth)
    assert scores["text"].f1 == 1.0
    assert scores["image"].f1 == 0.0                         # image 2 predicted, image 3 true
    assert scores["audio"].precision == 1.0 and scores["audio"].recall == 0.5
    assert "video" not in scores                             # neither side has video: not scored
    # a true range no unit stands for (e.g. an instruction that is no source) stays a miss
    assert truth_sets([SourceRef("text", 0, char_start=0, char_end=5)], UNITS)["text"] == {("range", 0, 0, 5)}


def test_align():
    assert align(["A b.", "C d."], ["a  B.", "x.", "C d."]) == [(0, 0), (1, 2)]
    assert align(["A b.", "C d."], ["C d.", "A b."]) == [(0, 1)]   # in order only
    assert align(["A.", "B."], ["X."], mode="index") == [(0, 0)]


def test_score_end_to_end():
    truth = SampleTruth("s1", (GoldSpan("Leo has a blue drum.", (SourceRef("text", 1, char_start=20, char_end=40),)),
                               GoldSpan("Not said.", (SourceRef("image", 2),)),
                               GoldSpan("The tone plays at second 1.",
                                        (SourceRef("audio", 4, time_start=1.0, time_end=2.0),))),
                        task="mixed")
    pred = SamplePrediction("s1", "s1", "mixed", UNITS, {1: ""},
                            (SpanPrediction("Leo has a blue drum.", (1, 2)),
                             SpanPrediction("The tone plays at second 1.", ())))
    scores = score([pred], {"s1": truth})
    assert (scores.expected, scores.aligned) == (3, 2)
    assert scores.task("mixed", "text")[0].f1 == 1.0
    # the image predicted for a text-only sentence costs the image column; the silent sentence costs audio
    assert scores.task("mixed", "image")[0].f1 == 0.0
    assert scores.task("mixed", "audio")[0].f1 == 0.0
    assert scores.to_dict()["modalities"]["text"]["f1"] == 100.0
    assert score([pred], {}).missing == ["s1"]


def test_ground_truth_validation(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "omnitrace-ground-truth", "version": 1, "samples": '
                   '[{"id": 1, "spans": [{"text": "x", "sources": [{"modality": "audio", "item": 1, '
                   '"time_start": 3, "time_end": 2}]}]}]}')
    with pytest.raises(InputError, match="time_start < time_end"):
        GroundTruth.load(bad)
    bad.write_text('{"format": "omnitrace-ground-truth", "version": 1, "samples": '
                   '[{"id": 1, "question_type": 3, "spans": []}]}')
    with pytest.raises(InputError, match="'question_type' must be a non-empty string"):
        GroundTruth.load(bad)
    bad.write_text('{"samples": []}')
    with pytest.raises(InputError, match="not a ground-truth file"):
        GroundTruth.load(bad)
    truth = GroundTruth((SampleTruth("7", (), task="a"), SampleTruth("7", (), task="b"), SampleTruth("8", (), key="k")))
    assert truth.lookup({"key": "7:b", "id": 7, "task": "b"}).task == "b"
    assert truth.lookup({"key": "k", "id": 0}).id == "8"
    assert truth.lookup({"key": "z", "id": 9}) is None
