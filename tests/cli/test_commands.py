"""The ``omnitrace`` command: its subcommands, the model options they share, the spellings kept working."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from omnitrace_core.cli import build_parser, main
from omnitrace_core.training.demo_model import CARD_FILENAME

REPO = Path(__file__).resolve().parents[2]
MODEL_OPTIONS = ["--model", "m/x", "--dtype", "float32", "--device", "cpu", "--device-map", "auto",
                 "--trust-remote-code", "--max-file-mb", "5", "--max-image-pixels", "100", "--max-audio-seconds", "7",
                 "--max-video-seconds", "8"]
REQUIRED = {"trace": ["--questions", "q.json", "--output", "o.jsonl"], "verify": ["--traces", "t", "--output", "o"],
            "evaluate": [], "speech-eval": ["--questions", "q.json", "--truth", "t.json"]}


def test_every_subcommand_is_there():
    commands = build_parser()._subparsers._group_actions[0].choices
    assert set(commands) == {"trace", "verify", "evaluate", "speech-eval", "bench", "train-demo"}


@pytest.mark.parametrize("command", sorted(REQUIRED))
def test_the_commands_that_load_a_model_share_one_set_of_model_options(command):
    args = build_parser().parse_args([command, *REQUIRED[command], *MODEL_OPTIONS])
    assert (args.model, args.dtype, args.device, args.device_map, args.trust_remote_code) == (
        "m/x", "float32", "cpu", "auto", True)
    assert (args.max_file_mb, args.max_image_pixels, args.max_audio_seconds, args.max_video_seconds) == (5, 100, 7, 8)


def test_the_reference_implementations_spellings_are_aliases():
    parse = build_parser().parse_args
    new = parse(["trace", "--questions", "q.json", "--output", "o", "--signal", "attraw", "--video-fps", "0.5"])
    old = parse(["trace", "--questions_path", "q.json", "--output", "o", "--method", "attraw", "--qwen-video-fps",
                 "0.5"])
    assert vars(new) == vars(old)


@pytest.mark.parametrize("spelling", [["-m", "omnitrace_core", "trace"], ["-m", "omnitrace_core.evaluate"],
                                      ["-m", "omnitrace_core.bench"], ["-m", "omnitrace_core.evaluation.speech_eval"]])
def test_the_module_spellings_still_run(spelling, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, *spelling, "--help"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "usage: python -m omnitrace_core" in proc.stdout, proc.stderr


@pytest.mark.slow
def test_train_demo_trains_and_saves_a_model(tmp_path):
    out = tmp_path / "demo"
    assert main(["train-demo", "--out", str(out), "--steps", "1", "--batch-size", "1", "--warmup", "1",
                 "--eval-every", "0", "--eval-per-task", "0", "--workers", "0"]) == 0
    card = json.loads((out / CARD_FILENAME).read_text())
    assert card["train"]["steps"] == 1 and (out / "model.safetensors").is_file()
