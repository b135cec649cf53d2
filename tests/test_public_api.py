"""The public API: ``from omnitrace_core import ...`` names what the README uses, and the library (tracing,
the CLI, evaluation) never imports the app's gradio."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import omnitrace_core

REPO = Path(__file__).resolve().parents[1]

TRACE_WITHOUT_THE_APP = """
import json, sys
import omnitrace_core
from omnitrace_core import TextItem, Tracer
import omnitrace_core.batch, omnitrace_core.cli, omnitrace_core.evaluation.runner, omnitrace_core.verification
result = Tracer.from_pretrained(sys.argv[1], device="cpu").trace([TextItem("Say hi.")], generation={"max_new_tokens": 2})
print(json.dumps({"tokens": len(result.tokens), "loaded": sorted(m for m in ("gradio", "plotly") if m in sys.modules)}))
"""


def test_every_public_name_is_importable():
    assert {"Tracer", "TraceResult", "DEFAULT_SIGNAL", "MODALITIES", "list_signals", "list_backends"} <= set(
        omnitrace_core.__all__)
    for name in omnitrace_core.__all__:
        assert getattr(omnitrace_core, name) is not None, name


def test_importing_and_tracing_never_import_the_apps_gradio(tiny_model_dir):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "-c", TRACE_WITHOUT_THE_APP, str(tiny_model_dir)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == {"tokens": 2, "loaded": []}
