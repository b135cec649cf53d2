"""Backend fixtures: a reduced random-weight Qwen2.5-Omni-3B on its real files, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.shared_files import QWEN2_5_OMNI_3B, require


@pytest.fixture(scope="session")
def real_qwen_omni_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Qwen2.5-Omni-3B's real tokenizer, processor, chat template and config, reduced depth, random weights."""
    from tests.backends.real_checkpoints import reduced_qwen2_5_omni

    return reduced_qwen2_5_omni(require(QWEN2_5_OMNI_3B), tmp_path_factory.mktemp("qwen2_5_omni_3b") / "model")


@pytest.fixture(scope="session")
def real_qwen_omni(real_qwen_omni_dir: Path):
    """The project's backend on that folder, loaded the way a user loads a checkpoint."""
    from omnitrace_core import load_backend

    return load_backend(str(real_qwen_omni_dir), device="cpu", dtype="float32")
