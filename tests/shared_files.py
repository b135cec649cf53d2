"""Where the tests find the team's shared, read-only files (`../shared` beside the repository).

The real checkpoint files (`real_checkpoints/`) and the official OmniTrace examples (`external/`)
are read from there, never copied into the repository. CI checks the repository out beside
`shared/`; elsewhere a test that needs them is skipped with the reason, and fails under `CI=true`
so that a missing folder can never turn a CI run green by skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The shared folder: $OMNITRACE_SHARED, else `shared/` beside the repository.
SHARED = Path(os.environ.get("OMNITRACE_SHARED", REPO_ROOT.parent / "shared"))
OFFICIAL_EXAMPLES = SHARED / "external" / "omnitrace_examples"
REAL_CHECKPOINTS = SHARED / "real_checkpoints"
QWEN2_5_OMNI_3B = REAL_CHECKPOINTS / "qwen2_5_omni_3b"
MINICPM_O_4_5 = REAL_CHECKPOINTS / "minicpm_o_4_5"


def require(path: Path) -> Path:
    """Return ``path`` if it exists; otherwise skip the test (fail under CI) and say what is missing."""
    if path.exists():
        return path
    message = (f"{path} is absent: the shared files are expected beside the repository "
               f"({SHARED}); set OMNITRACE_SHARED to their folder")
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)
