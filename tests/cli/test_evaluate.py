"""``omnitrace evaluate`` end to end on a small slice of the benchmark with the shipped model."""

from __future__ import annotations

import json

import pytest

from omnitrace_core.assets import DEFAULT_BENCHMARK_DIR, DEFAULT_MODEL_DIR
from omnitrace_core.cli import main
from omnitrace_core.training.demo_model import CARD_FILENAME

pytestmark = pytest.mark.skipif(not (DEFAULT_MODEL_DIR / CARD_FILENAME).is_file(),
                                reason="the demo model has not been trained into assets/demo_model")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("eval")
    code = main(["evaluate", "--limit", "8", "--signals", "attmean", "--baselines", "random,embedding", "--work-dir", str(work),
                 "--json", str(work / "report.json"), "--report", str(work / "report.md"), "--no-progress"])
    return code, work, json.loads((work / "report.json").read_text())


def test_end_to_end(run, capsys):
    code, work, report = run
    assert code == 0
    assert report["samples"] == 8 and report["signals"] == ["attmean"] and report["best_signal"] == "attmean"
    assert set(report["methods"]) == {"attmean", "random", "embedding"}
    assert set(report["methods"]["attmean"]["modalities"]) == {"text", "image", "audio", "video"}
    assert set(report["ablations"]) >= {"full", "no_pos_weights", "no_confidence", "no_run_coherence", "no_p_min"}
    assert set(report["token_rules"]["attmean"]) == {"sum", "max_token"}
    assert report["baseline_settings"]["embedding"]["thresholds"]
    assert report["outputs"]["summary"]["qa_samples"] == 4
    assert sum(q["samples"] for q in report["outputs"]["question_types"]) == 4
    bars = {c["check"]: c for c in report["checks"]}
    qa = report["outputs"]["summary"]["qa_accuracy"]
    assert bars["QA answers correct >= 85%"]["value"] == pytest.approx(100 * qa, abs=0.01)
    assert bars["QA answers correct >= 85%"]["met"] == (100 * qa >= 85) and bars["QA answers correct >= 95%"]["stretch"]
    assert "description sentences exactly right >= 95%" in bars
    assert any(c.startswith("attmean text F1 against constructed labels >= 85") for c in bars)
    assert any(c.startswith("attmean ahead of random on") and c.endswith("by >= 30") for c in bars)
    assert any(c.startswith("attmean ahead of embedding on") and c.endswith("by >= 10") for c in bars)
    unmeasured = [c for c in report["checks"] if c["met"] is None]
    assert [c["check"] for c in unmeasured] == ["samples whose labels pass the removal check >= 95% "
                                                "(not measured: run with --faithfulness)"]
    text = (work / "report.md").read_text()
    assert "## Bars" in text and "- not measured: samples whose labels pass" in text
    assert "not checked by removal" in text
    assert "paper Table 2 layout" in text and "Table 3 layout" in text and "max_token" in text
    assert "QA accuracy by question type" in text and "| image_qa | colour of a shape | 1 |" in text
    assert (work / "test.attmean.jsonl").is_file() and (work / "dev.attmean.jsonl").is_file()


def test_scores_existing_traces_without_tracing(run, tmp_path):
    _, work, report = run
    code = main(["evaluate", "--limit", "8", "--traces", f"attmean={work / 'test.attmean.jsonl'}", "--baselines", "random",
                 "--no-ablations", "--tune-split", "", "--json", str(tmp_path / "again.json"), "--no-progress"])
    assert code == 0
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["methods"]["attmean"]["modalities"] == report["methods"]["attmean"]["modalities"]


def test_custom_ground_truth_file(run, tmp_path):
    _, work, _ = run
    truth = json.loads((DEFAULT_BENCHMARK_DIR / "test" / "ground_truth.json").read_text())
    truth["samples"] = truth["samples"][:2]
    (tmp_path / "labels.json").write_text(json.dumps(truth))
    code = main(["evaluate", "--questions", str(DEFAULT_BENCHMARK_DIR / "test" / "questions.json"), "--ground-truth",
                 str(tmp_path / "labels.json"), "--traces", f"attmean={work / 'test.attmean.jsonl'}",
                 "--baselines", "", "--no-ablations", "--json", str(tmp_path / "r.json"), "--no-progress"])
    assert code == 0
    assert json.loads((tmp_path / "r.json").read_text())["methods"]["attmean"]["samples"] == 2


def test_bad_usage_exits_2(tmp_path, capsys):
    assert main(["evaluate", "--benchmark", str(tmp_path)]) == 2
    assert "no benchmark split" in capsys.readouterr().err
    assert main(["evaluate", "--signals", "nope", "--limit", "1", "--traces", "x=y"]) == 2
