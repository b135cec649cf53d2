"""``python app.py --model X`` for a model it cannot serve: a non-zero exit and one line, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

from components.settings import REPO_ROOT
from omnitrace_core import list_backends


def test_an_unsupported_model_is_refused_in_one_line_naming_what_is_supported(tmp_path):
    from transformers import GPT2Config

    GPT2Config(n_layer=1, n_embd=8, n_head=2).save_pretrained(tmp_path / "gpt2")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNITRACE_", "GRADIO_"))}
    env.update(HF_HUB_OFFLINE="1", TMPDIR=str(tmp_path))
    run = subprocess.run([sys.executable, "app.py", "--model", str(tmp_path / "gpt2")], cwd=REPO_ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and "Traceback" not in run.stderr
    line = run.stderr.strip().splitlines()[-1]
    assert line.startswith(f"omnitrace: cannot serve {tmp_path / 'gpt2'}: no backend supports model_type 'gpt2'")
    assert all(model_type in line for model_type in list_backends())
