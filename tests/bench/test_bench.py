"""The benchmark runs end to end on the tiny model and reports honestly (no timing assertions)."""

from __future__ import annotations

import json
import math

import pytest

from omnitrace_core.bench import methods
from omnitrace_core.cli import main
from omnitrace_core.bench.report import growth_exponent, markdown


def test_smoke_run_prints_every_method_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--smoke", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    for method in ("plain", "attmean", "attraw", "attgrads", "naive_attention", "naive_attgrads"):
        assert f"| {method}" in printed
    assert "Memory growth with context" in printed
    runs = json.loads(out.read_text())["tiny-cpu"]
    assert len(runs) == 2 and runs[0]["context"] < runs[1]["context"]
    for run in runs:
        statuses = {m["method"]: m["status"] for m in run["measurements"]}
        assert statuses["plain"] == statuses["attmean"] == statuses["attgrads"] == "ok"
        for m in run["measurements"]:
            if m["status"] == "ok":
                assert m["wall_s"] > 0 and m["first_token_s"] > 0 and m["peak_mb"] >= 0
                assert m["new_tokens"] == 4


def test_growth_exponent_tells_linear_from_quadratic():
    assert growth_exponent([(1000, 10.0), (2000, 20.0), (4000, 40.0)]) == pytest.approx(1.0)
    assert growth_exponent([(1000, 10.0), (4000, 160.0)]) == pytest.approx(2.0)
    assert math.isnan(growth_exponent([(1000, 10.0)]))


def test_report_marks_targets_and_misses():
    run = {"context": 1000, "measurements": [
        {"method": "plain", "context": 1000, "new_tokens": 8, "status": "ok", "wall_s": 10.0, "first_token_s": 2.0,
         "per_token_s": 1.0, "peak_mb": 100.0, "note": ""},
        {"method": "attmean", "context": 1000, "new_tokens": 8, "status": "ok", "wall_s": 11.0,
         "first_token_s": 2.1, "per_token_s": 1.1, "peak_mb": 130.0, "note": ""},
        {"method": "naive_attention", "context": 1000, "new_tokens": 8, "status": "oom", "wall_s": float("nan"),
         "first_token_s": float("nan"), "per_token_s": float("nan"), "peak_mb": float("nan"),
         "note": "predicted 9.0 GiB"}]}
    table = markdown([run], "test")
    assert "time ✓" in table and "mem ✗ (+18%)" in table and "1st ✓" in table
    assert "oom: predicted 9.0 GiB" in table


def test_naive_attention_reports_oom_instead_of_crashing(tracer, monkeypatch):
    monkeypatch.setattr(methods, "available_bytes", lambda device: 1024)
    result = methods.run_naive_attention(tracer.backend, [], None, 4, length=8000)
    assert result.status == "oom" and "GiB" in result.note
    result = methods.run_naive_attgrads(tracer.backend, [], None, 4, 8000, [1, 2], 10.0, 1.0, 1.0)
    assert result.status == "oom"


def test_linear_fit_of_memory():
    from omnitrace_core.bench.report import linear_fit

    slope, r2 = linear_fit([(1000, 110.0), (2000, 120.0), (4000, 140.0)])
    assert slope == pytest.approx(10.0) and r2 == pytest.approx(1.0)
    assert math.isnan(linear_fit([(1000, 1.0), (2000, 2.0)])[0])
