"""One loader and one device/dtype rule for every command and the app (omnitrace_core.loading)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from omnitrace_core.errors import InputError
from omnitrace_core.loading import check_model_name, load_tracer, pick_device, pick_dtype

REPO = Path(__file__).resolve().parents[1]


def test_the_device_asked_for_wins_and_a_device_map_places_the_model_itself(monkeypatch):
    assert pick_device("cpu") == "cpu" and pick_device("cuda:1", "auto") == "cuda:1"
    assert pick_device(None, "auto") is None
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert pick_device(None) == ("cuda" if torch.cuda.device_count() == 1 else
                                 f"cuda:{3 % torch.cuda.device_count()}" if torch.cuda.is_available() else "cpu")


def test_without_a_gpu_everything_loads_on_the_cpu_even_under_a_launcher(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert pick_device(None) == "cpu"


def test_under_a_multi_gpu_launcher_each_process_takes_the_gpu_of_its_local_rank(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setenv("LOCAL_RANK", "6")
    assert pick_device(None) == "cuda:2"
    monkeypatch.delenv("LOCAL_RANK")
    assert pick_device(None) == "cuda"


def test_auto_dtype_is_the_checkpoints_own_except_float32_on_the_cpu():
    assert pick_dtype("auto", "cpu") == "float32" and pick_dtype("auto", "cuda:0") == "auto"
    assert pick_dtype("auto", None) == "auto"  # a device map: the checkpoint's
    assert pick_dtype("bfloat16", "cpu") == "bfloat16" and pick_dtype("float16", "cuda") == "float16"


def test_a_model_name_must_be_a_folder_or_a_hub_id(tmp_path):
    assert check_model_name(tmp_path) == str(tmp_path) and check_model_name("Qwen/Qwen2.5-Omni-7B")
    for bad in (tmp_path / "missing", "./relative/missing", "no-owner", "a/b/c"):
        with pytest.raises(InputError, match="neither an existing checkpoint folder nor a Hugging Face model id"):
            check_model_name(bad)


def test_load_tracer_follows_the_rule(tiny_model_dir):
    tracer = load_tracer(tiny_model_dir, device="cpu", signal="attraw")
    assert tracer.backend.input_device.type == "cpu" and tracer.signal.name == "attraw"
    assert next(tracer.backend.model.parameters()).dtype == torch.float32


def test_tracer_loading_is_written_once():
    """Every command and the app load through omnitrace_core.loading: Tracer.from_pretrained is called nowhere
    else in the product (tests and developer tools may build tracers directly)."""
    product = [*(REPO / "omnitrace_core").rglob("*.py"), *(REPO / "components").rglob("*.py"), REPO / "app.py"]
    callers = sorted(f"{path.relative_to(REPO)}:{node.lineno}" for path in product
                     for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                     if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                     and node.func.attr == "from_pretrained" and isinstance(node.func.value, ast.Name)
                     and node.func.value.id == "Tracer")
    assert callers == ["omnitrace_core/loading.py:" + str(_loader_line())]


def _loader_line() -> int:
    source = (REPO / "omnitrace_core" / "loading.py").read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(source, 1) if "Tracer.from_pretrained(" in line)
