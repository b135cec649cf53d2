"""Default locations of the bundled assets: the demo model and the known-truth benchmark."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
#: The bundled demo model (a tiny trained Qwen2.5-Omni thinker): the CLI's and the app's default.
DEFAULT_MODEL_DIR = REPO_ROOT / "assets" / "demo_model"
#: The frozen known-truth benchmark (``dev`` and ``test`` splits).
DEFAULT_BENCHMARK_DIR = REPO_ROOT / "assets" / "benchmark"
