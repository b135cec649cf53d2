"""``python -m omnitrace_core verify`` on demo-model benchmark traces: the API's numbers, resume, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from omnitrace_core import TraceResult
from omnitrace_core.cli import main
from omnitrace_core.assets import DEFAULT_BENCHMARK_DIR, DEFAULT_MODEL_DIR

QUESTIONS = DEFAULT_BENCHMARK_DIR / "test" / "questions.json"


def _lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    out = tmp_path_factory.mktemp("verify_cli") / "traces.jsonl"
    assert main(["trace", "--questions", str(QUESTIONS), "--limit", "3", "--output", str(out), "--no-progress"]) == 0
    return out


def test_verify_command_matches_the_api_and_resumes(traces, tmp_path):
    from omnitrace_core import Tracer

    out = tmp_path / "verified.jsonl"
    args = ["verify", "--traces", str(traces), "--output", str(out), "--mode", "knockout", "--no-progress"]
    assert main(args) == 0
    records = _lines(out)
    assert [r["key"] for r in records] == [r["key"] for r in _lines(traces)]
    assert all(r["status"] == "ok" and r["verify"]["mode"] == "knockout" for r in records)

    tracer = Tracer.from_pretrained(DEFAULT_MODEL_DIR, device="cpu")
    for record, traced in zip(records, _lines(traces)):
        stored = TraceResult.from_dict(record["result"]).verification
        api = tracer.verify(TraceResult.from_dict(traced["result"]), "knockout")
        assert stored.units == api.units and len(stored.sentences) == len(api.sentences) > 0
        np.testing.assert_allclose(stored.effects, api.effects, atol=1e-5)
        np.testing.assert_allclose([c.comprehensiveness["all"] for c in stored.sentences],
                                   [c.comprehensiveness["all"] for c in api.sentences], atol=1e-5)
        np.testing.assert_allclose([c.sufficiency["all"] for c in stored.sentences],
                                   [c.sufficiency["all"] for c in api.sentences], atol=1e-5)

    # a killed run leaves a half-written line: the rerun drops it and verifies only what is missing
    text = out.read_text(encoding="utf-8").splitlines(keepends=True)
    out.write_text("".join(text[:1]) + text[1][:40], encoding="utf-8")
    assert main(args) == 0
    again = _lines(out)
    assert [r["key"] for r in again] == [r["key"] for r in records]
    assert again[0] == records[0] and all(r["status"] == "ok" for r in again)
    for fresh, first in zip(again[1:], records[1:]):
        np.testing.assert_allclose(fresh["result"]["verification"]["effects"],
                                   first["result"]["verification"]["effects"])

    # other settings on the same output are refused, not mixed in
    assert main(["verify", "--traces", str(traces), "--output", str(out), "--mode", "input", "--no-progress"]) == 2


def test_verifying_a_verified_file_measures_and_counts_nothing_again(traces, tmp_path, capsys):
    once, twice = tmp_path / "once.jsonl", tmp_path / "twice.jsonl"
    common = ["--mode", "knockout", "--limit", "1", "--no-progress"]
    assert main(["verify", "--traces", str(traces), "--output", str(once), *common]) == 0
    assert " 0 forwards in" not in capsys.readouterr().err
    assert main(["verify", "--traces", str(once), "--output", str(twice), *common]) == 0
    assert "1 ok, 0 errors, 0 skipped (already verified) of 1 traces, 0 forwards in" in capsys.readouterr().err
    (first,), (second,) = _lines(once), _lines(twice)
    assert second["result"]["verification"] == first["result"]["verification"]  # its cost counted once


def test_a_trace_that_cannot_be_verified_gets_an_error_record(traces, tmp_path, capsys):
    bad = tmp_path / "traces.jsonl"
    records = _lines(traces)[1:3]
    media = next(i for i in records[0]["result"]["items"] if i.get("path"))
    media["path"] = str(tmp_path / "gone.flac")
    bad.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    out = tmp_path / "verified.jsonl"
    assert main(["verify", "--traces", str(bad), "--output", str(out), "--mode", "knockout", "--no-progress"]) == 0
    first, second = _lines(out)
    assert first["status"] == "error" and first["error_type"] == "MediaError" and "gone.flac" in first["error"]
    assert "result" not in first and second["status"] == "ok"
    assert "1 ok, 1 errors" in capsys.readouterr().err


def test_verify_usage_errors(tmp_path, capsys):
    assert main(["verify", "--traces", str(tmp_path / "none.jsonl"), "--output", str(tmp_path / "o.jsonl")]) == 2
    assert "is not a file" in capsys.readouterr().err
    assert main(["verify", "--traces", "x", "--output", "y", "--top-k", "0"]) == 2
    assert "--top-k" in capsys.readouterr().err
