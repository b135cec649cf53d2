"""The evaluation runner's traces in a work dir: a rerun resumes them only with the model and settings they
were traced with (omnitrace_core.evaluation.runner over the batch runner's fingerprint)."""

from __future__ import annotations

import shutil

import pytest

from omnitrace_core import CurationConfig, GenerationConfig, SourceConfig
from omnitrace_core.cli import main
from omnitrace_core.errors import UsageError
from omnitrace_core.evaluation import runner as R
from omnitrace_core.evaluation.groundtruth import GroundTruth

FAST = ["--limit", "1", "--signals", "attmean", "--baselines", "", "--no-ablations", "--tune-split", "",
        "--max-new-tokens", "3", "--no-progress"]


def test_a_work_dir_traced_with_another_model_is_refused_not_mixed(tiny_model_dir, tmp_path, capsys):
    work = tmp_path / "work"
    assert main(["evaluate", "--model", str(tiny_model_dir), "--work-dir", str(work), *FAST]) == 0
    assert main(["evaluate", "--model", str(tiny_model_dir), "--work-dir", str(work), *FAST]) == 0  # resumes
    capsys.readouterr()
    other = shutil.copytree(tiny_model_dir, tmp_path / "other_model")
    assert main(["evaluate", "--model", str(other), "--work-dir", str(work), *FAST]) == 2
    err = capsys.readouterr().err
    assert f"--model was {tiny_model_dir.resolve()}, now {other.resolve()}" in err and "--work-dir" in err
    assert "--overwrite" not in err  # evaluate has no such flag


def test_a_split_traced_with_another_curation_is_refused_not_mixed(tracer, tiny_model_dir, tmp_path):
    sample = {"id": 0, "prompt": "Answer briefly.", "question": [{"text": "What colour is the sky?"}]}
    split = R.Split("test", [sample], GroundTruth(()), [tmp_path])
    out = tmp_path / "test.attmean.jsonl"

    def trace(curation: CurationConfig) -> None:
        R.trace_split(lambda: tracer, split, "attmean", out, None, GenerationConfig(max_new_tokens=2), SourceConfig(),
                      False, curation=curation, model=str(tiny_model_dir), dtype="auto")

    trace(CurationConfig())
    trace(CurationConfig())  # the same settings resume
    with pytest.raises(UsageError, match=r"curation\.gamma was 2\.0, now 1\.0"):
        trace(CurationConfig(gamma=1.0))
    assert len(out.read_text().splitlines()) == 1
