"""Faithfulness evaluation: the aggregation on hand-made measurements, label validity and causal labels on
real demo-model measurements, and ``omnitrace evaluate --faithfulness`` with and without labels."""

from __future__ import annotations

import json

import numpy as np
import pytest

from omnitrace_core.assets import DEFAULT_BENCHMARK_DIR, DEFAULT_MODEL_DIR
from omnitrace_core.cli import main
from omnitrace_core.evaluation import faithfulness as F
from omnitrace_core.training.demo_model import CARD_FILENAME
from omnitrace_core.evaluation.groundtruth import GoldSpan, SampleTruth, SourceRef
from omnitrace_core.sources import SourceUnit

QUESTIONS = DEFAULT_BENCHMARK_DIR / "test" / "questions.json"
needs_demo = pytest.mark.skipif(not (DEFAULT_MODEL_DIR / CARD_FILENAME).is_file(),
                                reason="the demo model has not been trained into assets/demo_model")


def _check(sentence, curated, comp, suff, top):
    return {"sentence": sentence, "curated": curated, "comprehensiveness": comp, "sufficiency": suff, "top_k": top}


def test_summary_on_hand_made_measurements():
    """Two sentences over units [text, audio 0-1 s, audio 1-2 s]; threshold 1 nat."""
    measure = {
        "modalities": ["text", "audio", "audio"],
        "effects": [[0.2, 5.0, 0.5],    # sentence 0: only the first second is strong
                    [0.0, 0.1, 0.3]],   # sentence 1: nothing is strong -> not scored
        "methods": {
            "sig": {"has_curated": True, "curated": [[1, 2], [0]], "rankings": [[0.1, 0.2, 0.7], [1, 0, 0]],
                    "checks": [_check(0, [1, 2], {"all": 5.4, "text": 0.0, "audio": 5.4},
                                      {"all": 0.2, "text": 0.2, "audio": 0.0},
                                      {"all": {"1": 0.5}, "text": {"1": 0.2}, "audio": {"1": 0.5}}),
                               _check(1, [0], {"all": 0.0}, {"all": 0.4}, {"all": {"1": 0.0}})]},
            "scores_only": {"has_curated": False, "curated": None, "rankings": [[0.0, 0.9, 0.1], [0, 0, 1]],
                            "checks": [_check(0, [], {}, {}, {"all": {"1": 5.0}, "text": {"1": 0.0},
                                                              "audio": {"1": 5.0}}),
                                       _check(1, [], {}, {}, {"all": {"1": 0.3}})]}}}
    out = F.summarise([measure], threshold=1.0, ks=(1,))
    assert out["sentences"] == {"all": 1, "audio": 1} and out["sentences_total"] == 2
    assert out["sentences_without_strong_unit"] == 1
    sig = out["methods"]["sig"]
    assert set(sig) == {"all", "audio"}  # no sentence depends on text
    assert sig["all"]["comprehensiveness"] == 5.4 and sig["all"]["sufficiency"] == 0.2
    assert sig["all"]["cited"] == 2 and sig["audio"]["cited"] == 2
    assert (sig["all"]["precision"], sig["all"]["recall"]) == (50.0, 100.0)  # cites {1, 2}, strong {1}
    # scores (0.1, 0.2, 0.7) against effects (0.2, 5.0, 0.5): ranks (1, 2, 3) vs (1, 3, 2)
    assert sig["all"]["spearman"] == pytest.approx(0.5)
    assert sig["all"]["top_k"] == {"1": 0.5}
    only = out["methods"]["scores_only"]["all"]
    assert only["comprehensiveness"] is None and only["precision"] is None and only["top_k"] == {"1": 5.0}
    assert only["spearman"] == pytest.approx(1.0)  # (0, 0.9, 0.1) ranks like (0.2, 5.0, 0.5)


def test_labelled_units_by_modality():
    units = [SourceUnit(0, "text", 1, "a", char_start=0, char_end=10), SourceUnit(1, "image", 2, "img"),
             SourceUnit(2, "audio", 3, "0-1", time_start=0.0, time_end=1.0),
             SourceUnit(3, "audio", 3, "1-2", time_start=1.0, time_end=2.0)]
    assert F.labelled_units(SourceRef("text", 1, char_start=2, char_end=9), units) == {0}
    assert F.labelled_units(SourceRef("image", 2), units) == {1}
    assert F.labelled_units(SourceRef("audio", 3, time_start=1.0, time_end=2.0), units) == {3}
    assert F.labelled_units(SourceRef("audio", 3, time_start=0.9, time_end=2.0), units) == {3}  # 0.1 s is no half


def test_each_samples_labels_are_checked_against_removals():
    """Units [text 0-10, image, audio 0-1 s, audio 1-2 s]; one expected sentence per sample."""
    from types import SimpleNamespace

    units = [SourceUnit(0, "text", 1, "text item 1, sentence 1", char_start=0, char_end=10),
             SourceUnit(1, "image", 2, "image 2"), SourceUnit(2, "audio", 3, "audio 3, 0-1 s", time_start=0.0, time_end=1.0),
             SourceUnit(3, "audio", 3, "audio 3, 1-2 s", time_start=1.0, time_end=2.0)]
    result = SimpleNamespace(units=units, spans=[SimpleNamespace(index=0, text="The tone plays at second 1.")])
    label = (SourceRef("audio", 3, time_start=1.0, time_end=2.0), SourceRef("text", 1, char_start=0, char_end=10))
    truth = SampleTruth(id="s", task="audio_qa", spans=(GoldSpan("The tone plays at second 1.", label),))
    other = SampleTruth(id="o", task="audio_qa", spans=(GoldSpan("Something the model did not write.", label),))
    measures = {"valid": {"changed": [[True, False, False, True]]},
                "needless": {"changed": [[False, False, False, True]]},  # the labelled text changes nothing
                "incomplete": {"changed": [[True, True, False, True]]}}  # the unlabelled image changes it
    records = [{"key": k, "id": k} for k in ("valid", "needless", "incomplete", "unmeasured", "other")]
    checks = F.sample_label_checks([result] * 5, [truth] * 4 + [other], {**measures, "other": measures["valid"]},
                                   records, "text")
    status = {c["key"]: c["status"] for c in checks}
    assert status == {"valid": "valid", "needless": "invalid", "incomplete": "invalid", "unmeasured": "unchecked",
                      "other": "unchecked"}
    problems = {c["key"]: c["problems"] for c in checks}
    assert problems["valid"] == [] and len(problems["needless"]) == len(problems["incomplete"]) == 1
    assert "removing the labelled text of item 1 [0:10] changes nothing" in problems["needless"][0]
    assert "removing the unlabelled image 2 changes it" in problems["incomplete"][0]
    summary = F.validity_summary(checks)
    assert summary["all"] == {"valid": 1, "invalid": 2, "unchecked": 2, "valid_share": round(1 / 3, 4)}
    assert summary["tasks"]["audio_qa"] == summary["all"]


@needs_demo
def test_label_validity_and_causal_labels_on_the_demo_model():
    from omnitrace_core import Tracer
    from omnitrace_core.batch import load_questions, media_bases
    from omnitrace_core.evaluation.groundtruth import GroundTruth
    from omnitrace_core.evaluation.scoring import score
    from omnitrace_core.evaluation.predictions import from_trace
    from omnitrace_core.inputs import parse_sample

    tracer = Tracer.from_pretrained(DEFAULT_MODEL_DIR, device="cpu")
    truth = GroundTruth.load(DEFAULT_BENCHMARK_DIR / "test" / "ground_truth.json")
    raw = [s for s in load_questions(QUESTIONS) if s["task"] in ("audio_description", "image_description")][:2]
    samples = [parse_sample(s, s["id"], media_bases(QUESTIONS)) for s in raw]
    results = [tracer.trace(s.items) for s in samples]
    records = [{"key": s["id"], "id": s["id"], "task": s["task"]} for s in raw]
    truths = [truth.lookup(r) for r in records]
    methods = {"attmean": [F.signal_input(r) for r in results]}
    rows = F.measure_split(lambda: tracer.backend, records, results, methods,
                           lambda r: list(samples[[x["key"] for x in records].index(r["key"])].items),
                           mode="knockout", ks=(1, 3), progress=False)
    measures = {r["key"]: r for r in rows}
    validity = F.label_validity(results, truths, measures, [r["key"] for r in records], "text")

    labelled = changed = unlabelled = unlabelled_changed = 0  # the same shares counted here directly
    for result, t, r in zip(results, truths, records):
        flips = np.asarray(measures[r["key"]]["changed"])
        for gold in t.spans:
            j = next(s.index for s in result.spans if s.text == gold.text)
            marked = set().union(*(F.labelled_units(ref, result.units) for ref in gold.sources))
            for u in result.units:
                if u.index in marked:
                    labelled, changed = labelled + 1, changed + flips[j, u.index]
                else:
                    unlabelled, unlabelled_changed = unlabelled + 1, unlabelled_changed + flips[j, u.index]
    assert validity["all"]["labelled"] == labelled > 0 and validity["all"]["unlabelled"] == unlabelled
    assert validity["all"]["labelled_changed"] == pytest.approx(changed / labelled, abs=1e-4)
    assert validity["all"]["unlabelled_changed"] == pytest.approx(unlabelled_changed / unlabelled, abs=1e-4)

    causal = F.causal_truth(results, truths, measures, records, "text")
    assert all(isinstance(s, SampleTruth) and all(isinstance(g, GoldSpan) for g in s.spans) for s in causal.samples)
    # predicting exactly the changing units scores 100 against the causal labels
    perfect = []
    for result, r in zip(results, records):
        flips = np.asarray(measures[r["key"]]["changed"])
        base = from_trace(r, result)
        spans = tuple(type(s)(s.text, tuple(np.flatnonzero(flips[j]).tolist())) for j, s in enumerate(base.spans))
        perfect.append(type(base)(**{**base.__dict__, "spans": spans}))
    scored = score(perfect, {s.key: s for s in causal.samples}, "text").to_dict()["modalities"]
    assert scored and all(v["f1"] == 100.0 for v in scored.values())


@needs_demo
def test_evaluate_faithfulness_with_and_without_labels(tmp_path):
    work = tmp_path / "work"
    code = main(["evaluate", "--faithfulness", "--verify-mode", "knockout", "--limit", "3", "--signals", "attmean",
                 "--baselines", "random", "--no-ablations", "--tune-split", "", "--work-dir", str(work),
                 "--json", str(tmp_path / "r.json"), "--report", str(tmp_path / "r.md"), "--no-progress"])
    assert code == 0
    report = json.loads((tmp_path / "r.json").read_text())
    faith = report["faithfulness"]
    assert faith["mode"] == "knockout" and faith["top_k"] == [1, 3] and faith["forwards"] > 0
    assert set(faith["summary"]["methods"]) == {"attmean", "random"}
    assert faith["label_validity"]["all"]["labelled"] > 0 and set(faith["f1"]) == {"attmean", "random"}
    assert any(c["check"].startswith("labelled units change") for c in report["checks"])
    checks = faith["label_checks"]
    assert len(checks) == 3 and faith["label_checks_summary"]["all"]["valid"] + \
        faith["label_checks_summary"]["all"]["invalid"] + faith["label_checks_summary"]["all"]["unchecked"] == 3
    invalid = sorted(c["key"] for c in checks if c["status"] == "invalid")
    assert report["labels_left_out"] == invalid  # reported, and not scored against the constructed labels
    assert report["methods"]["attmean"]["samples"] == 3 - len(invalid)
    bars = {c["check"]: c for c in report["checks"]}
    validity_bar = bars["samples whose labels pass the removal check >= 95%"]
    assert validity_bar["value"] == pytest.approx(100 * faith["label_checks_summary"]["all"]["valid_share"], abs=0.01)
    causal_bars = [c for c in report["checks"] if "F1 against causal labels" in c["check"]]
    assert causal_bars and all(c["met"] == (c["value"] >= c["target"]) for c in causal_bars)
    text = (tmp_path / "r.md").read_text()
    assert "## Faithfulness" in text and "Are the labels causal?" in text and "causal" in text
    assert "Label check per sample" in text and "## Bars" in text
    cached = (work / "test.faithfulness.jsonl").read_text()
    assert len(cached.splitlines()) == 3
    again = ["evaluate", "--faithfulness", "--verify-mode", "knockout", "--limit", "3", "--signals", "attmean", "--baselines",
             "random", "--no-ablations", "--tune-split", "", "--work-dir", str(work), "--no-progress"]
    assert main(again) == 0 and (work / "test.faithfulness.jsonl").read_text() == cached  # nothing measured twice
    # a smaller --limit over the same work dir scores only its own samples, not every trace the files hold
    assert main([*again[:5], "2", *again[6:], "--json", str(tmp_path / "two.json")]) == 0
    two = json.loads((tmp_path / "two.json").read_text())
    assert two["samples"] == 2 and two["faithfulness"]["summary"]["sentences_total"] < \
        faith["summary"]["sentences_total"]

    # a questions file without labels: only what needs none, with the same numbers
    code = main(["evaluate", "--faithfulness", "--verify-mode", "knockout", "--questions", str(QUESTIONS), "--limit", "3",
                 "--traces", f"attmean={work / 'test.attmean.jsonl'}", "--baselines", "random",
                 "--json", str(tmp_path / "u.json"), "--work-dir", str(tmp_path / "w2"), "--no-progress"])
    assert code == 0
    unlabelled = json.loads((tmp_path / "u.json").read_text())
    assert "methods" not in unlabelled and "label_validity" not in unlabelled["faithfulness"]
    got = unlabelled["faithfulness"]["summary"]["methods"]["attmean"]["all"]
    assert got["top_k"] == faith["summary"]["methods"]["attmean"]["all"]["top_k"]
    assert got["comprehensiveness"] == faith["summary"]["methods"]["attmean"]["all"]["comprehensiveness"]
    assert unlabelled["faithfulness"]["summary"]["methods"]["random"]["all"]["comprehensiveness"] is None
