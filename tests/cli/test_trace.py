"""Tests of ``omnitrace trace`` (omnitrace_core.cli.trace over omnitrace_core.batch), offline, on the tiny random-weight Qwen2.5-Omni thinker.

Random weights generate junk text: nothing here looks at the generated text itself, only at
the shape of the records. Generation is kept to 4 tokens and videos are sampled at 0.5 fps.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from omnitrace_core import TraceResult, sample_keys
from omnitrace_core.batch import parse_shard, run_batch, shard_from_env, shard_output_path
from omnitrace_core.cli import main
from omnitrace_core.errors import UsageError
from omnitrace_core.launcher import LOCAL_RANK_ENV, RANK_ENV, WORLD_SIZE_ENV
from tests import media_files
from tests.shared_files import OFFICIAL_EXAMPLES, require

OFFICIAL = OFFICIAL_EXAMPLES
REPO = Path(__file__).resolve().parents[2]
FAST = ["--max-new-tokens", "4", "--video-fps", "0.5", "--no-progress"]
MISSING = {"question_audio.json": {"0:summarization": "examples/media/01_M014_01.wav"},
           "question_video.json": {"87:qa": "examples/media/aWBRHk_-5as.mp4"},
           "question_visual_text.json": {}}


# --------------------------------------------------------------------------- helpers / fixtures
@pytest.fixture(autouse=True)
def _no_launcher_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees a distributed launcher's variables unless it sets them."""
    for name in RANK_ENV + WORLD_SIZE_ENV + LOCAL_RANK_ENV:
        monkeypatch.delenv(name, raising=False)


def _copy_tree(src: Path, dst: Path) -> Path:
    """Copy file contents only (the official folder is read-only; its modes must not come along)."""
    for path in src.rglob("*"):
        target = dst / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    return dst


@pytest.fixture(scope="session")
def official(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A writable copy of the official examples: <root>/examples/*.json and <root>/examples/media/."""
    require(OFFICIAL / "examples")
    return _copy_tree(OFFICIAL, tmp_path_factory.mktemp("official"))


@pytest.fixture(scope="session")
def small_media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli_media")
    media_files.write_image(root / "a.png", 56, 42, seed=1)
    media_files.write_image(root / "b.jpg", 42, 56, seed=2)
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" + os.urandom(64))
    return root


def _small_samples(n: int) -> list[dict]:
    """n quick samples (text + a small image), ids repeating across tasks like the official files."""
    return [{"id": i // 2, "task": "qa" if i % 2 == 0 else "caption", "prompt": "Answer briefly.\n",
             "question": [{"text": f"What is shown in picture {i}?"}, {"image": "media/a.png"}],
             "answer": f"answer {i}"} for i in range(n)]


def _write_questions(folder: Path, samples, media: Path | None = None, name: str = "questions.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if media is not None:
        _copy_tree(media, folder / "media")
    path = folder / name
    path.write_text(json.dumps(samples), encoding="utf-8")
    return path


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _trace(questions: Path, model: Path, output: Path, *extra: str) -> int:
    return main(["trace", "--questions", str(questions), "--model", str(model), "--output", str(output),
                 "--device", "cpu", *FAST, *extra])


def _ok_keys(records: list[dict]) -> list[str]:
    return [r["key"] for r in records if r["status"] == "ok"]


# --------------------------------------------------------------------------- official files
@pytest.mark.parametrize("name", sorted(MISSING))
def test_official_example_files_run_end_to_end(name, official, tiny_model_dir, tmp_path, capsys):
    questions = official / "examples" / name
    samples = json.loads(questions.read_text())
    output = tmp_path / "out.jsonl"

    assert _trace(questions, tiny_model_dir, output) == 0

    records = _records(output)
    keys = sample_keys(samples)
    assert [r["key"] for r in records] == keys  # one line per sample, in file order
    missing = MISSING[name]
    for record, raw in zip(records, samples):
        assert record["id"] == raw["id"]
        assert "question" not in record and "prompt" not in record
        for field in ("task", "source_dataset", "answer", "category"):
            if field in raw:
                assert record[field] == raw[field]
        if record["key"] in missing:
            assert record["status"] == "error"
            assert record["error_type"] == "MediaError"
            assert missing[record["key"]] in record["error"]  # names the missing file
            assert "result" not in record
        else:
            assert record["status"] == "ok", record.get("error")
            result = record["result"]
            assert len(result["tokens"]) >= 1 and len(result["spans"]) >= 1
            assert result["signal"] == "attmean" and result["generation"]["max_new_tokens"] == 4
            assert result["timings"]["tokens_per_s"] >= 0
            TraceResult.from_dict(result)  # the record is a complete, valid trace
    err = capsys.readouterr().err
    ok = len(samples) - len(missing)
    assert f"{ok} ok, {len(missing)} errors, 0 skipped" in err and str(output) in err


# --------------------------------------------------------------------------- resume
def test_resume_after_limit_and_after_a_killed_run(official, tiny_model_dir, tmp_path, capsys, monkeypatch):
    questions = official / "examples" / "question_visual_text.json"
    keys = sample_keys(json.loads(questions.read_text()))
    output = tmp_path / "out.jsonl"

    assert _trace(questions, tiny_model_dir, output, "--limit", "1") == 0
    assert [r["key"] for r in _records(output)] == keys[:1]
    assert _trace(questions, tiny_model_dir, output) == 0
    assert sorted(_ok_keys(_records(output))) == sorted(keys)
    assert "1 skipped" in capsys.readouterr().err

    # a run killed while writing the last line leaves half a JSON object behind
    lines = output.read_bytes().splitlines(keepends=True)
    output.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    with pytest.raises(json.JSONDecodeError):
        _records(output)
    assert _trace(questions, tiny_model_dir, output) == 0
    records = _records(output)  # every line parses again
    assert sorted(_ok_keys(records)) == sorted(keys) and len(records) == len(keys)
    assert f"1 ok, 0 errors, {len(keys) - 1} skipped" in capsys.readouterr().err

    # nothing left: no model is even loaded
    import omnitrace_core.cli.trace as cli

    with monkeypatch.context() as patch:
        patch.setattr(cli, "tracer_from_args", lambda *a, **k: pytest.fail("a finished run loaded the model"))
        assert _trace(questions, tiny_model_dir, output) == 0
    assert len(_records(output)) == len(keys)

    # --overwrite starts afresh
    assert _trace(questions, tiny_model_dir, output, "--overwrite", "--limit", "2") == 0
    assert [r["key"] for r in _records(output)] == keys[:2]


def test_errored_samples_are_retried_and_methods_are_not_mixed(small_media, tiny_model_dir, tmp_path, capsys):
    samples = _small_samples(2)
    samples[1]["question"][1] = {"image": "media/later.png"}
    questions = _write_questions(tmp_path / "q", samples, small_media)
    output = tmp_path / "out.jsonl"

    assert _trace(questions, tiny_model_dir, output) == 0
    first = _records(output)
    assert [r["status"] for r in first] == ["ok", "error"]
    assert "media/later.png" in first[1]["error"] and str(tmp_path / "q") in first[1]["error"]

    shutil.copyfile(small_media / "a.png", tmp_path / "q" / "media" / "later.png")
    assert _trace(questions, tiny_model_dir, output) == 0
    records = _records(output)
    assert [(r["key"], r["status"]) for r in records] == [("0:qa", "ok"), ("0:caption", "error"), ("0:caption", "ok")]
    capsys.readouterr()

    # resuming with another signal would mix results in one file
    assert _trace(questions, tiny_model_dir, output, "--method", "attraw") == 2
    assert "attmean" in capsys.readouterr().err
    assert len(_records(output)) == 3


def test_resume_refuses_other_settings_and_names_each_one(small_media, tiny_model_dir, tmp_path, capsys,
                                                          monkeypatch):
    from omnitrace_core import CurationConfig, GenerationConfig, SourceConfig

    samples = _small_samples(1)
    questions = _write_questions(tmp_path / "q", samples, small_media)
    output = tmp_path / "out.jsonl"
    assert _trace(questions, tiny_model_dir, output) == 0
    record = _records(output)[0]
    assert record["status"] == "ok" and record["settings"]["model"] == str(tiny_model_dir.resolve())
    assert record["settings"]["generation.max_new_tokens"] == 4 and record["settings"]["curation.gamma"] == 2.0
    before = output.read_bytes()
    other_model = shutil.copytree(tiny_model_dir, tmp_path / "other_model")
    capsys.readouterr()

    import omnitrace_core.cli.trace as cli

    with monkeypatch.context() as patch:
        patch.setattr(cli, "tracer_from_args", lambda *a, **k: pytest.fail("a refused run loaded the model"))
        for extra, named in [
            (["--max-new-tokens", "8"], "--max-new-tokens was 4, now 8"),
            (["--token-rule", "max_token"], "--token-rule was sum, now max_token"),
            (["--audio-bin-seconds", "2"], "--audio-bin-seconds was 1.0, now 2.0"),
            (["--video-bin-seconds", "0.5", "--signal", "attraw"],
             "--signal was attmean, now attraw; --video-bin-seconds was 1.0, now 0.5"),
            (["--model", str(other_model)], f"--model was {tiny_model_dir.resolve()}, now {other_model}"),
        ]:
            args = ["trace", "--questions", str(questions), "--model", str(tiny_model_dir), "--output", str(output),
                    "--device", "cpu", *FAST, *extra]
            assert main(args) == 2, extra
            err = capsys.readouterr().err
            assert named in err and "--overwrite" in err and "another --output" in err, err
        # settings without a flag are named as in Python
        with pytest.raises(UsageError, match=r"\(curation\.gamma was 2\.0, now 1\.0\)"):
            run_batch(lambda: pytest.fail("loaded"), samples, output, bases=[tmp_path / "q"], signal="attmean",
                      generation=GenerationConfig(max_new_tokens=4), sources=SourceConfig(video_fps=0.5),
                      curation=CurationConfig(gamma=1.0), model=str(tiny_model_dir), dtype="auto")
        assert output.read_bytes() == before
        # the same settings, the model spelled another way: resumes (nothing left to do)
        assert _trace(questions, Path(os.path.relpath(tiny_model_dir)), output) == 0
        assert "1 skipped" in capsys.readouterr().err
        # a record of a version that named the signal "method" is checked by that name (--method: the alias)
        settings = {("method" if k == "signal" else k): v for k, v in record["settings"].items()}
        output.write_text(json.dumps({**record, "settings": settings}) + "\n", encoding="utf-8")
        assert _trace(questions, tiny_model_dir, output, "--method", "attraw") == 2
        assert "--signal was attmean, now attraw" in capsys.readouterr().err
        assert _trace(questions, tiny_model_dir, output, "--method", "attmean") == 0
        assert "1 skipped" in capsys.readouterr().err
        # a record written before settings were stored is checked through its result
        legacy = {k: v for k, v in record.items() if k != "settings"}
        output.write_text(json.dumps(legacy) + "\n", encoding="utf-8")
        assert _trace(questions, tiny_model_dir, output, "--max-new-tokens", "8") == 2
        assert "--max-new-tokens was 4, now 8" in capsys.readouterr().err
    # --overwrite starts afresh under the new settings
    assert _trace(questions, tiny_model_dir, output, "--max-new-tokens", "3", "--overwrite") == 0
    assert [r["settings"]["generation.max_new_tokens"] for r in _records(output)] == [3]


def test_prompt_over_max_prompt_tokens_is_an_error_record(small_media, tiny_model_dir, tmp_path):
    questions = _write_questions(tmp_path / "q", _small_samples(2), small_media)
    output = tmp_path / "out.jsonl"
    assert _trace(questions, tiny_model_dir, output, "--max-prompt-tokens", "10") == 0
    records = _records(output)
    assert [r["status"] for r in records] == ["error", "error"] and records[0]["error_type"] == "InputError"
    assert re.match(r"the prompt is \d+ tokens, over the limit of 10 \(the maximum prompt length setting, "
                    r"--max-prompt-tokens\)\. Shorten the input: .*image 'a.png' takes \d+ tokens", records[0]["error"])
    # the limit decides only what is refused, so it is no setting that would mix results
    assert _trace(questions, tiny_model_dir, output) == 0
    assert [r["status"] for r in _records(output)] == ["error", "error", "ok", "ok"]


def test_media_limit_flags_reach_the_media_loaders(small_media, tiny_model_dir, tmp_path):
    """The settings the library's limit messages name exist on this command, and they apply."""
    questions = _write_questions(tmp_path / "q", _small_samples(1), small_media)
    output = tmp_path / "out.jsonl"
    assert _trace(questions, tiny_model_dir, output, "--max-image-pixels", "100") == 0
    (record,) = _records(output)
    assert record["status"] == "error" and "a.png' is 56x42 = 2352 pixels, over the limit of 100 pixels (the " \
        "maximum image size setting, --max-image-pixels)" in record["error"]
    assert _trace(questions, tiny_model_dir, output, "--max-file-mb", "0.001") == 0
    assert "over the limit of 1048 bytes (the maximum file size setting, --max-file-mb)" in _records(output)[-1]["error"]


# --------------------------------------------------------------------------- bad samples
def test_bad_samples_become_error_records_and_the_run_goes_on(small_media, tiny_model_dir, tmp_path):
    good = _small_samples(1)[0]
    samples = [
        {**good, "id": "corrupt", "question": [{"text": "What is this?"}, {"image": "media/corrupt.jpg"}]},
        "not a sample",
        {"id": "no-question", "prompt": "Describe."},
        {"id": "bad-entry", "question": [{"picture": "media/a.png"}]},
        {"id": "bad-prompt", "prompt": 3, "question": [{"text": "hi"}]},
        {**good, "id": "good", "status": "meta status"},
    ]
    questions = _write_questions(tmp_path / "q", samples, small_media)
    output = tmp_path / "out.jsonl"

    assert _trace(questions, tiny_model_dir, output) == 0

    records = {r["key"]: r for r in _records(output)}
    assert list(records) == sample_keys(samples)
    corrupt = records["corrupt:qa"]
    assert corrupt["status"] == "error" and corrupt["error_type"] == "MediaError"
    assert "corrupt.jpg" in corrupt["error"] and corrupt["answer"] == good["answer"]
    assert records["1"]["status"] == "error" and records["1"]["id"] is None
    assert records["1"]["error_type"] == "InputError"
    for key, needle in (("no-question", "question"), ("bad-entry", "picture"), ("bad-prompt", "prompt")):
        assert records[key]["status"] == "error" and records[key]["error_type"] == "InputError"
        assert needle in records[key]["error"]
    last = records["good:qa"]
    assert last["status"] == "ok" and last["sample_status"] == "meta status"


class _Flaky:
    """The real tracer, with one sample raising an unexpected exception."""

    def __init__(self, tracer, exc: BaseException, on_text: str) -> None:
        self.tracer, self.exc, self.on_text = tracer, exc, on_text
        self.signal = tracer.signal

    def stream(self, items, **kwargs):
        if any(getattr(i, "text", None) == self.on_text for i in items):
            raise self.exc
        return self.tracer.stream(items, **kwargs)


def test_unexpected_exceptions_are_recorded_but_keyboard_interrupt_stops(small_media, tracer, tmp_path):
    samples = _small_samples(3)
    samples[1]["question"][0] = {"text": "explode"}
    bases = [_copy_tree(small_media, tmp_path / "media").parent]
    output = tmp_path / "out.jsonl"
    gen = dict(signal="attmean", progress=False)
    from omnitrace_core import GenerationConfig
    gen["generation"] = GenerationConfig(max_new_tokens=4)

    summary = run_batch(_Flaky(tracer, RuntimeError("boom"), "explode"), samples, output, bases=bases, **gen)
    assert (summary.ok, summary.errors, summary.skipped) == (2, 1, 0)
    bad = _records(output)[1]
    assert bad["status"] == "error" and bad["error_type"] == "RuntimeError" and bad["error"] == "boom"
    assert "RuntimeError: boom" in bad["traceback"]

    with pytest.raises(KeyboardInterrupt) as stopped:
        run_batch(_Flaky(tracer, KeyboardInterrupt(), "explode"), samples, output, bases=bases, **gen)
    assert len(_records(output)) == 3  # nothing written for the interrupted sample
    assert stopped.value.summary.interrupted and stopped.value.summary.skipped == 2


# --------------------------------------------------------------------------- shards
def _shard_run(questions, model, output, *extra):
    assert _trace(questions, model, output, *extra) == 0


def test_shards_cover_every_sample_once(small_media, tiny_model_dir, tmp_path):
    samples = _small_samples(5)
    questions = _write_questions(tmp_path / "q", samples, small_media)
    keys = sample_keys(samples)
    output = tmp_path / "out" / "run.jsonl"

    _shard_run(questions, tiny_model_dir, output, "--shard", "0/2")
    _shard_run(questions, tiny_model_dir, output, "--shard", " 1 / 2 ")

    assert not output.exists()
    first, second = (_records(tmp_path / "out" / f"run.shard-{i}-of-2.jsonl") for i in (0, 1))
    assert [r["key"] for r in first] == keys[0::2] and [r["key"] for r in second] == keys[1::2]
    assert all(r["status"] == "ok" for r in first + second)


@pytest.mark.parametrize("text", ["2/2", "-1/2", "0/0", "a/b", "1", "1/2/3", ""])
def test_bad_shard_strings_exit_2(text, tmp_path, capsys):
    questions = _write_questions(tmp_path, _small_samples(1))
    code = main(["trace", "--questions", str(questions), "--model", "unused", "--output",
                 str(tmp_path / "o.jsonl"), "--shard", text])
    assert code == 2
    assert "--shard" in capsys.readouterr().err
    with pytest.raises(UsageError):
        parse_shard(text)


@pytest.mark.parametrize("rank_var, size_var", [("RANK", "WORLD_SIZE"), ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
                                                ("PMI_RANK", "PMI_SIZE")])
def test_launcher_environment_selects_the_shard(rank_var, size_var, small_media, tiny_model_dir, tmp_path,
                                                monkeypatch):
    samples = _small_samples(4)
    questions = _write_questions(tmp_path / "q", samples, small_media)
    monkeypatch.setenv(rank_var, "1")
    monkeypatch.setenv(size_var, "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    output = tmp_path / "out.jsonl"

    _shard_run(questions, tiny_model_dir, output, "--limit", "2")  # positions 0, 1 of 3 shards: only 1 is ours

    assert not output.exists()
    assert [r["key"] for r in _records(tmp_path / "out.shard-1-of-3.jsonl")] == sample_keys(samples)[1:2]


def test_shard_environment_parsing():
    assert shard_from_env({}) == (0, 1)
    assert shard_from_env({"WORLD_SIZE": "1", "RANK": "0"}) == (0, 1)
    assert shard_from_env({"WORLD_SIZE": "4", "RANK": "3", "PMI_RANK": "0"}) == (3, 4)
    assert shard_from_env({"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "1"}) == (1, 2)
    for bad in ({"WORLD_SIZE": "2"}, {"WORLD_SIZE": "2", "RANK": "2"}, {"WORLD_SIZE": "two", "RANK": "0"}):
        with pytest.raises(UsageError):
            shard_from_env(bad)
    assert shard_output_path("d/out.jsonl", 0, 1) == Path("d/out.jsonl")
    assert shard_output_path("d/out.jsonl", 2, 8) == Path("d/out.shard-2-of-8.jsonl")


# --------------------------------------------------------------------------- usage errors
@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    ("{not json", "is not valid JSON"),
    ('{"id": 1, "question": []}', "not a list"),
])
def test_unusable_questions_file_exits_2(content, message, tmp_path, capsys):
    questions = tmp_path / "questions.json"
    if content is not None:
        questions.write_text(content)
    code = main(["trace", "--questions", str(questions), "--model", str(tmp_path / "no-model"),
                 "--output", str(tmp_path / "o.jsonl")])
    err = capsys.readouterr().err
    assert code == 2
    assert str(questions) in err and message in err and "JSON list of samples" in err
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize("extra, message", [
    (["--temperature", "0"], "temperature"),
    (["--limit", "0"], "--limit"),
    (["--method", "nope"], "--method"),
    (["--media-root", "/no/such/dir"], "--media-root"),
])
def test_bad_options_exit_2(extra, message, tmp_path, capsys):
    questions = _write_questions(tmp_path, _small_samples(1))
    code = main(["trace", "--questions", str(questions), "--model", "unused", "--output",
                 str(tmp_path / "o.jsonl"), *extra])
    assert code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--seed", "-1"], "--seed must be an integer in [0, 18446744073709551615], got -1"),
    (["--top-p", "2"], "--top-p must be a finite number in (0, 1], got 2.0"),
    (["--video-bin-seconds", "0"], "--video-bin-seconds must be a finite number > 0, got 0.0"),
    (["--segment-min-seconds", "40"], "--segment-min-seconds must be <= --segment-max-seconds (30), got 40"),
])
def test_a_bad_config_value_names_the_flag_not_the_library_field(extra, message, tmp_path, capsys):
    questions = _write_questions(tmp_path, _small_samples(1))
    code = main(["trace", "--questions", str(questions), "--model", "unused", "--output",
                 str(tmp_path / "o.jsonl"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err
    assert "Config" not in err


@pytest.mark.parametrize("command", [["speech-eval", "--questions", "q.json", "--truth", "t.json", "--model", "m"],
                                     ["evaluate"]])
def test_other_commands_name_the_flag_too(command, tmp_path, capsys):
    assert main([*command, "--max-new-tokens", "0"]) == 2
    err = capsys.readouterr().err
    assert "--max-new-tokens must be an integer >= 1, got 0" in err and "Config" not in err


def test_media_root_is_searched_first(small_media, tiny_model_dir, tmp_path, capsys):
    samples = _small_samples(1)
    samples[0]["question"][1] = {"image": "b.jpg"}  # only under --media-root
    questions = _write_questions(tmp_path / "q", samples)
    output = tmp_path / "out.jsonl"
    assert _trace(questions, tiny_model_dir, output, "--media-root", str(small_media)) == 0
    record = _records(output)[0]
    assert record["status"] == "ok" and record["result"]["items"][-1]["path"] == str(small_media / "b.jpg")


def test_progress_bar_shows_tokens_per_second(small_media, tiny_model_dir, tmp_path, capsys):
    questions = _write_questions(tmp_path / "q", _small_samples(1), small_media)
    assert main(["trace", "--questions", str(questions), "--model", str(tiny_model_dir), "--output",
                 str(tmp_path / "o.jsonl"), "--max-new-tokens", "2"]) == 0
    err = capsys.readouterr().err
    assert "1/1" in err and "tok/s=" in err


def test_module_help_in_a_subprocess():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "omnitrace_core", "trace", "--help"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for needle in ("--questions", "--media-root", "--shard", "shard-I-of-N", "accelerate launch", "--method"):
        assert needle in proc.stdout


def test_interrupt_crash_and_unloadable_model_exit_codes(small_media, tracer, tmp_path, monkeypatch, capsys):
    import omnitrace_core.cli.trace as cli

    samples = _small_samples(2)
    samples[1]["question"][0] = {"text": "explode"}
    questions = _write_questions(tmp_path / "q", samples, small_media)
    output = tmp_path / "out.jsonl"
    argv = ["trace", "--questions", str(questions), "--model", "unused/model", "--output", str(output), *FAST]

    real_loader = cli.tracer_from_args
    monkeypatch.setattr(cli, "tracer_from_args", lambda *a, **k: _Flaky(tracer, KeyboardInterrupt(), "explode"))
    assert main(argv) == 130
    assert [r["key"] for r in _records(output)] == ["0:qa"]  # the finished sample was kept
    err = capsys.readouterr().err
    assert "interrupted: 1 ok, 0 errors" in err and "resume" in err

    def crash(*args, **kwargs):
        raise RuntimeError("out of cheese")

    monkeypatch.setattr(cli, "tracer_from_args", crash)
    assert main(argv) == 1
    assert "out of cheese" in capsys.readouterr().err

    monkeypatch.setattr(cli, "tracer_from_args", real_loader)
    for model in (str(tmp_path / "no-model"), "./relative/missing"):  # a fresh output: no settings to compare
        assert main([*argv[:4], model, "--output", str(tmp_path / "fresh.jsonl"), *FAST]) == 2
        assert "neither an existing checkpoint folder nor a Hugging Face model id" in capsys.readouterr().err


# --------------------------------------------------------------------------- given answers, heads, selections
def test_trace_answer_traces_each_samples_answer_field(small_media, tiny_model_dir, tmp_path, capsys):
    samples = _small_samples(3)
    del samples[2]["answer"]
    questions = _write_questions(tmp_path / "q", samples, small_media)
    output = tmp_path / "out.jsonl"
    assert _trace(questions, tiny_model_dir, output, "--trace-answer", "--heads", "--method", "attmean[-1:]") == 0
    records = _records(output)
    assert [r["status"] for r in records] == ["ok", "ok", "error"]
    assert "has no 'answer'" in records[2]["error"] and "--trace-answer" in records[2]["error"]
    for record in records[:2]:
        result = TraceResult.from_dict(record["result"])
        assert result.forced and result.text == record["answer"] and result.heads is not None
        assert result.signal == "attmean[layers=-1:]" == record["settings"]["signal"]
        assert record["settings"]["trace_answer"] is True and record["settings"]["heads"] is True
        assert all(t.logprob is not None for t in result.tokens)
    capsys.readouterr()
    # the fingerprint holds both flags: a resume without them would mix generated and given answers
    assert _trace(questions, tiny_model_dir, output, "--heads", "--method", "attmean[layers=-1:]") == 2
    assert "--trace-answer was true, now false" in capsys.readouterr().err
    assert _trace(questions, tiny_model_dir, output, "--trace-answer", "--method", "attmean[-1:]") == 2
    assert "--heads was true, now false" in capsys.readouterr().err


def test_bad_signal_selection_exits_2(tmp_path, capsys):
    questions = _write_questions(tmp_path, _small_samples(1))
    code = main(["trace", "--questions", str(questions), "--model", "unused", "--output",
                 str(tmp_path / "o.jsonl"), "--method", "attraw[layers=0]"])
    assert code == 2 and "cannot select layers" in capsys.readouterr().err
