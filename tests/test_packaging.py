"""One installable package: pyproject.toml and requirements.txt agree, the wheel holds every package and
the bundled assets, and an installed wheel's ``omnitrace`` command traces from any folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.test_readme import project_name, requirement_names

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
BUNDLED = "omnitrace_core._bundled"


def _names(requirements) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def test_requirements_txt_pins_exactly_the_packages_pyproject_requires():
    pinned = requirement_names(REPO / "requirements.txt") - {canonicalize_name(project_name(REPO))}
    project = PYPROJECT["project"]
    assert pinned == _names(project["dependencies"]) | _names(project["optional-dependencies"]["app"])
    assert not _names(project["dependencies"]) & {"gradio", "plotly"}  # the library never needs the app's


def test_the_wheel_configuration_lists_every_package_and_every_asset_folder():
    packages = set(PYPROJECT["tool"]["setuptools"]["packages"])
    code = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "omnitrace_core").rglob("__init__.py")}
    assert {p for p in packages if not p.startswith(BUNDLED)} == code
    assets = REPO / PYPROJECT["tool"]["setuptools"]["package-dir"][BUNDLED]
    folders = {".".join((BUNDLED, *d.relative_to(assets).parts)) for name in ("demo_model", "benchmark")
               for d in [assets / name, *(assets / name).rglob("*")] if d.is_dir()}
    assert {p for p in packages if p.startswith(BUNDLED + ".")} == folders
    assert PYPROJECT["project"]["scripts"] == {"omnitrace": "omnitrace_core.cli:main"}


def _venv(folder: Path) -> Path:
    """A fresh virtual environment that sees this environment's packages (no download) but not this checkout."""
    # without its own pip and setuptools: those of this environment build and install (setuptools >= 70.1)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, capture_output=True,
                   timeout=300)
    python = folder / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "project_environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    return python


def _source(folder: Path) -> Path:
    """What the wheel is built from, copied (building writes build/ and *.egg-info/ into its source)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    folder.mkdir()
    shutil.copy(REPO / "pyproject.toml", folder / "pyproject.toml")
    shutil.copytree(REPO / "omnitrace_core", folder / "omnitrace_core", ignore=ignore)
    for name in ("demo_model", "benchmark"):
        shutil.copytree(REPO / "assets" / name, folder / "assets" / name)
    return folder


def _run(python: Path, *args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OMNITRACE_SHARED")}
    env["HF_HUB_OFFLINE"] = "1"
    run = subprocess.run([str(python), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


@pytest.mark.slow
def test_an_installed_wheel_traces_with_its_bundled_assets_from_another_folder(tmp_path):
    source = _source(tmp_path / "src")
    python = _venv(tmp_path / "venv")
    _run(python, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"),
         str(source), cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("omnitrace_explorer-*.whl")
    _run(python, "-m", "pip", "install", "--no-deps", "-q", str(wheel), cwd=tmp_path)
    shutil.rmtree(source)  # nothing of a checkout is left to fall back on
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = json.loads(_run(python, "-c", "import json, omnitrace_core.assets as a; print(json.dumps("
                            "[str(a.DEFAULT_MODEL_DIR), str(a.DEFAULT_BENCHMARK_DIR)]))", cwd=work).stdout)
    installed = tmp_path / "venv" / "lib"
    assert all(Path(p).is_dir() and Path(p).is_relative_to(installed) for p in where)
    omnitrace = tmp_path / "venv" / "bin" / "omnitrace"
    assert "train-demo" in _run(omnitrace, "--help", cwd=work).stdout
    questions = Path(where[1]) / "test" / "questions.json"
    _run(omnitrace, "trace", "--questions", str(questions), "--limit", "1", "--output", "out.jsonl",
         "--no-progress", cwd=work)
    (record,) = [json.loads(line) for line in (work / "out.jsonl").read_text().splitlines()]
    assert record["status"] == "ok" and record["settings"]["model"] == where[0]


@pytest.mark.slow
def test_an_editable_install_uses_the_checkouts_assets(tmp_path):
    source = _source(tmp_path / "src")
    python = _venv(tmp_path / "venv")
    _run(python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q", "-e", str(source), cwd=tmp_path)
    model = _run(python, "-c", "import omnitrace_core.assets as a; print(a.DEFAULT_MODEL_DIR)", cwd=tmp_path).stdout
    assert Path(model.strip()) == source / "assets" / "demo_model"
