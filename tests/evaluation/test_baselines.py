"""Baseline plumbing on hand-made predictions: thresholds, option scores, self-attribution parsing."""

from __future__ import annotations

from omnitrace_core.evaluation import baselines as B
from omnitrace_core.evaluation.groundtruth import GoldSpan, SampleTruth, SourceRef
from omnitrace_core.evaluation.scoring import SamplePrediction, SpanPrediction, score
from omnitrace_core.sources import SourceUnit

QUESTION = "What colour is it?\nA. red\nB. blue"
UNITS = (
    SourceUnit(0, "text", 1, "What colour is it?", char_start=0, char_end=18),
    SourceUnit(1, "text", 1, "A. red", char_start=19, char_end=25),
    SourceUnit(2, "text", 1, "B. blue", char_start=26, char_end=33),
    SourceUnit(3, "image", 2, "image"),
    SourceUnit(4, "image", 3, "image"),
)
BASE = SamplePrediction("k", "k", "image_qa", UNITS, {1: QUESTION},
                        (SpanPrediction("It is blue.", ()), SpanPrediction("The answer is B.", ())),
                        output="It is blue. The answer is B.")
TRUTH = {"k": SampleTruth("k", (GoldSpan("It is blue.", (SourceRef("image", 3),)),
                                GoldSpan("The answer is B.", (SourceRef("text", 1, char_start=26, char_end=33),))),
                          task="image_qa")}
TABLE = [{0: 0.1, 1: 0.2, 2: 0.3, 3: 0.4, 4: 0.9}, {0: 0.1, 1: 0.5, 2: 0.8, 3: 0.2, 4: 0.3}]


def test_thresholds_select_per_modality():
    preds = B.predictions_at([BASE], [TABLE], {"text": 0.7, "image": 0.5})
    assert [s.units for s in preds[0].spans] == [(4,), (2,)]
    assert preds[0].option_masses["B"] > preds[0].option_masses["A"]   # the answer sentence scores B's line higher
    prf = score(preds, TRUTH)
    assert prf.modality("image")[0].f1 == 1.0 and prf.modality("text")[0].f1 == 1.0


def test_tune_thresholds_finds_the_separating_value():
    best = B.tune_thresholds([BASE], [TABLE], lambda p: score(p, TRUTH), steps=20)
    preds = B.predictions_at([BASE], [TABLE], best)
    assert [s.units for s in preds[0].spans] == [(4,), (2,)]


def test_random_scores_are_a_function_of_seed_and_key():
    class Result:
        units = UNITS
        spans = (1, 2)

    a, b = B.random_scores("k", Result(), 0), B.random_scores("k", Result(), 0)
    assert a == b and a != B.random_scores("other", Result(), 0)
    assert all(0 <= v < 1 for row in a for v in row.values())


def test_parse_source_list():
    assert B.parse_source_list("Sources: [2, 5]", 5) == (1, 4)
    assert B.parse_source_list("[3,1,3]", 3) == (0, 2)
    assert B.parse_source_list("[9]", 3) == ()          # out of range: parsed, nothing kept
    assert B.parse_source_list("The tone plays at second 2.", 5) is None
