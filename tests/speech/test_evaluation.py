"""Time-F1 (worked by hand) and the bins-vs-segments comparison."""

from __future__ import annotations

import json

import pytest

from omnitrace_core import AudioItem, GenerationConfig, InputError, TextItem, Tracer
from omnitrace_core.evaluation import PRF, mean_prf, set_f1, time_bins, time_f1
from omnitrace_core.cli import main
from omnitrace_core.evaluation.speech_eval import compare_audio_units, load_truth, predicted_intervals
from tests.speech.conftest import EnergyRecognizer


def _prf(score: PRF) -> tuple[float, float, float]:
    return pytest.approx((score.precision, score.recall, score.f1))


# --------------------------------------------------------------------------- time_f1 by hand
@pytest.mark.parametrize("predicted, truth, expected", [
    ([(0, 2)], [(1, 3)], (0.5, 0.5, 0.5)),              # bins {0, 1} vs {1, 2}
    ([(0.2, 0.4)], [(0, 1)], (1.0, 1.0, 1.0)),          # both touch bin 0 only
    ([(0.5, 3.2)], [(2.0, 2.0)], (0.25, 1.0, 0.4)),     # {0, 1, 2, 3} vs the instant's bin {2}
    ([(1.0, 2.0)], [(1.5, 1.9)], (1.0, 1.0, 1.0)),      # an interval ending on a bin edge does not enter the next
    ([(0, 2), (1, 3)], [(0, 3)], (1.0, 1.0, 1.0)),      # overlapping predictions count each bin once
    ([(0, 1)], [(5, 6)], (0.0, 0.0, 0.0)),
    ([], [], (1.0, 1.0, 1.0)),                          # nothing to find, nothing claimed
    ([], [(0, 1)], (0.0, 0.0, 0.0)),
    ([(0, 1)], [], (0.0, 0.0, 0.0)),
])
def test_time_f1_hand_worked(predicted, truth, expected):
    assert _prf(time_f1(predicted, truth)) == expected


def test_time_f1_counts_and_wider_bins_and_items():
    score = time_f1([(0.5, 3.2)], [(2.0, 2.0)])
    assert (score.predicted, score.true, score.hits) == (4, 1, 1)
    assert _prf(time_f1([(0, 3)], [(2.5, 5)], bin_seconds=2.0)) == (0.5, 0.5, 0.5)  # {0, 1} vs {1, 2}
    # the same seconds of two different media are different bins
    assert _prf(time_f1([(0, 0, 2), (1, 0, 1)], [(0, 0, 1)])) == (1 / 3, 1.0, 0.5)
    assert time_bins([(2.5, 4.0)]) == {(None, 2), (None, 3)}


@pytest.mark.parametrize("interval", [(-1, 2), (3, 2), (1,), (0, float("inf"))])
def test_time_bins_reject_bad_intervals(interval):
    with pytest.raises(InputError):
        time_bins([interval])


def test_set_f1_and_mean():
    assert _prf(set_f1({"a", "b"}, {"b", "c"})) == (0.5, 0.5, 0.5)
    assert _prf(set_f1([], [])) == (1.0, 1.0, 1.0)
    assert _prf(mean_prf([PRF(1, 0.5, 2 / 3), PRF(0, 0, 0)])) == (0.5, 0.25, 1 / 3)
    assert _prf(mean_prf([])) == (0.0, 0.0, 0.0)


# --------------------------------------------------------------------------- bins vs segments
def _samples(audio):
    return [{"id": 7, "prompt": "Describe the audio.\n", "question": [{"audio": str(audio)}]},
            {"id": 8, "prompt": "Describe the audio.\n", "question": [{"audio": str(audio)}]}]


def test_truth_formats_and_errors(tmp_path):
    assert load_truth({"7": [[0.5, 2.5], {"start": 4, "end": 6.5, "item": 1}]}) == {"7": [(0, 0.5, 2.5), (1, 4.0, 6.5)]}
    assert load_truth([{"key": 7, "intervals": [[1, 2]]}]) == {"7": [(0, 1.0, 2.0)]}
    path = tmp_path / "truth.json"
    path.write_text('{"7": [[2, 1]]}', encoding="utf-8")
    with pytest.raises(InputError, match="truth for sample 7: interval"):
        load_truth(path)
    with pytest.raises(InputError, match="cannot be read as JSON"):
        load_truth(tmp_path / "missing.json")


def test_bins_and_segments_are_scored_on_the_same_generation(tracer, speech_media):
    traced = Tracer(tracer.backend, recognizer=EnergyRecognizer())
    truth = {"7": [(0, 0.5, 2.5)]}  # sample 8 has no truth: not scored
    report = compare_audio_units(traced, _samples(speech_media["audio"]), truth,
                                 generation=GenerationConfig(max_new_tokens=4))
    assert set(report.scores["bins"]) == set(report.scores["segments"]) == {"7"} and not report.errors
    for mode in ("bins", "segments"):
        score = report.scores[mode]["7"]
        assert 0 <= score.f1 <= 1 and score.true == 3  # [0.5, 2.5) touches bins 0, 1 and 2
    table = report.table()
    assert "bins" in table and "segments" in table and "time-F1" in table
    assert json.loads(json.dumps(report.to_dict()))["modes"]["segments"]["samples"]["7"]["true"] == 3


def test_predictions_are_the_cited_time_ranges(tracer, speech_media):
    traced = Tracer(tracer.backend, recognizer=EnergyRecognizer())
    items = [TextItem("Describe.\n", is_prompt=True), AudioItem(str(speech_media["audio"]), transcript="asr")]
    result = traced.trace(items, generation=GenerationConfig(max_new_tokens=4))
    cited = {(src.time_start, src.time_end) for span in result.spans for src in span.sources}
    assert cited and {(a, b) for _, a, b in predicted_intervals(result)} == cited
    assert cited <= {(u.time_start, u.time_end) for u in result.units}


def test_speech_eval_command_line(tiny_model_dir, speech_media, tmp_path, capsys):
    questions = tmp_path / "q.json"
    samples = _samples(speech_media["audio"])
    for sample, (start, end) in zip(samples, [(0.5, 2.5), (4.0, 6.5)]):  # transcripts: no recogniser is loaded
        sample["question"][0]["transcript"] = [{"start": start, "end": end, "text": "A tone."}]
    questions.write_text(json.dumps(samples), encoding="utf-8")
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps({"7": [[0.5, 2.5]], "8": [[4.0, 6.5]]}), encoding="utf-8")
    report = tmp_path / "report.json"
    code = main(["speech-eval", "--questions", str(questions), "--truth", str(truth), "--model", str(tiny_model_dir),
                 "--asr-model", str(tmp_path / "never-loaded"), "--max-new-tokens", "2", "--device", "cpu",
                 "--output", str(report)])
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split() == ["units", "samples", "precision", "recall", "time-F1"]
    data = json.loads(report.read_text(encoding="utf-8"))
    assert set(data["modes"]) == {"bins", "segments"} and not data["errors"]
    assert set(data["modes"]["bins"]["samples"]) == set(data["modes"]["segments"]["samples"]) == {"7", "8"}
    # in the segments run each sample has one unit, so everything cited is exactly the true interval
    assert data["modes"]["segments"]["mean"]["f1"] == 1.0
    assert main(["speech-eval", "--questions", str(tmp_path / "none.json"), "--truth", str(truth), "--model", "x"]) == 2


def test_truth_keys_follow_the_sample_keys_and_unknown_ones_are_errors(tiny_model_dir, speech_media, tmp_path,
                                                                        capsys):
    """A sample with a task is keyed "id:task" (as the batch CLI writes it); a truth file keyed by the bare
    id used to score nothing and print an all-zero table with exit status 0."""
    samples = _samples(speech_media["audio"])
    for sample, (start, end) in zip(samples, [(0.5, 2.5), (4.0, 6.5)]):
        sample["task"] = "asr"
        sample["question"][0]["transcript"] = [{"start": start, "end": end, "text": "A tone."}]
    questions = tmp_path / "q.json"
    questions.write_text(json.dumps(samples), encoding="utf-8")
    truth = tmp_path / "truth.json"

    def evaluate(data) -> int:
        truth.write_text(json.dumps(data), encoding="utf-8")
        return main(["speech-eval", "--questions", str(questions), "--truth", str(truth), "--model", str(tiny_model_dir),
                     "--max-new-tokens", "2", "--device", "cpu"])

    assert evaluate({"7": [[0.5, 2.5]], "8:asr": [[4.0, 6.5]]}) == 2
    err = capsys.readouterr().err
    assert ("the truth names 1 sample key(s) the questions file does not have: '7'. A key is the sample's id, or "
            "'id:task' when the sample has a task ('7' is the id of '7:asr'; the file's keys: '7:asr', '8:asr')") in err
    assert evaluate({}) == 2 and "names no sample" in capsys.readouterr().err
    assert evaluate({"7:asr": [[0.5, 2.5]], "8:asr": [[4.0, 6.5]]}) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:2] == ["bins", "2"]
