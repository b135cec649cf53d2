"""Train the bundled demo model (a tiny Qwen2.5-Omni thinker) and write it to assets/demo_model.

    python scripts/train_demo_model.py                      # the shipped run (seeded, CPU, 1 thread)
    python scripts/train_demo_model.py --out /tmp/demo --steps 300

All options: ``python scripts/train_demo_model.py --help`` (see omnitrace_core/training/train.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from omnitrace_core.defaults import DEFAULT_MODEL_DIR  # noqa: E402
from omnitrace_core.training.train import main  # noqa: E402

if __name__ == "__main__":
    argv = sys.argv[1:]
    if not any(a == "--out" or a.startswith("--out=") for a in argv):
        argv = ["--out", str(DEFAULT_MODEL_DIR)] + argv
    raise SystemExit(main(argv))
