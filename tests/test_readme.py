"""README.md is true: its Python code runs as written, its Space configuration is valid, and its
install commands install what the app and the tests import (the app's without the test tools).

The Python blocks run in order, in one namespace (a later block may use what an earlier one
defined), in a folder holding the media files they name, written here. The only changes made to
their text, each because this offline machine cannot have what the README names:

- the model ids ``Qwen/Qwen2.5-Omni-7B`` and ``path/or/hub-id`` become the bundled demo model;
- ``device="cuda"`` becomes ``device="cpu"`` when there is no GPU;
- the speech recogniser ``openai/whisper-small`` becomes a tiny Whisper built offline.
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import re
import sys
from pathlib import Path

import pytest

from components.settings import REPO_ROOT
from omnitrace_core.assets import DEFAULT_MODEL_DIR
from tests import media_files

README = REPO_ROOT / "README.md"
MODEL_IDS = ("Qwen/Qwen2.5-Omni-7B", "path/or/hub-id")
ASR_ID = "openai/whisper-small"
#: Installed by requirements-dev.txt only: a Space installs requirements.txt and must not get them.
TEST_TOOLS = {"pytest", "hypothesis", "playwright"}
SPACE_COLOURS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
SRT = "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n2\n00:00:01,500 --> 00:00:03,000\nWhat was that?\n"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.M | re.S)


def write_media(folder: Path) -> dict[str, Path]:
    """Every media file the README's Python blocks name."""
    tone = media_files.tone
    return {
        "photo.jpg": media_files.write_image(folder / "photo.jpg", 112, 84, seed=1),
        "clip.wav": media_files.write_wav(folder / "clip.wav", tone(440, 3.0)),
        "movie.mp4": media_files.write_video(folder / "movie.mp4", media_files.colour_frames(30), 10,
                                             audio=tone(660, 3.0, 44100), audio_rate=44100),
        "talk.wav": media_files.write_wav(folder / "talk.wav", tone(330, 4.0)),
        "interview.wav": media_files.write_wav(folder / "interview.wav", tone(550, 3.0)),
        "interview.srt": _write_text(folder / "interview.srt", SRT),
        "music.wav": media_files.write_wav(folder / "music.wav", tone(880, 2.0)),
        "lecture.mp4": media_files.write_video(folder / "lecture.mp4", media_files.colour_frames(50), 10,
                                               audio=tone(220, 5.0, 44100), audio_rate=44100),
    }


def _write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def adapt(code: str, asr_dir: Path) -> str:
    """The README's code with the substitutions listed in the module docstring."""
    import torch

    for model_id in MODEL_IDS:
        code = code.replace(f'"{model_id}"', repr(str(DEFAULT_MODEL_DIR)))
    if not torch.cuda.is_available():
        code = code.replace('device="cuda"', 'device="cpu"')
    return code.replace(f'"{ASR_ID}"', repr(str(asr_dir)))


@pytest.mark.slow
def test_the_python_blocks_run_as_written(tmp_path, monkeypatch, capsys, tiny_whisper_dir):
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 3, "the README's Python API, speech and checkpoint snippets"
    media = write_media(tmp_path)
    named = {name for block in blocks for name in re.findall(r'"([\w-]+\.(?:jpg|png|wav|mp4|srt|vtt))"', block)}
    assert named <= set(media), f"the README names media this test does not write: {named - set(media)}"
    assert all(model_id in "".join(blocks) for model_id in MODEL_IDS) and ASR_ID in "".join(blocks)
    monkeypatch.chdir(tmp_path)

    namespace: dict = {"__name__": "readme"}
    for k, block in enumerate(blocks):
        exec(compile(adapt(block, tiny_whisper_dir), f"README.md python block {k + 1}", "exec"), namespace)
        if "again" in namespace and "checked" not in namespace:  # the API block's save/load round trip
            assert namespace["again"] == namespace["result"] != namespace["loose"]
            namespace["checked"] = True
    assert namespace.get("checked"), "the README's API block saves and loads a trace"
    assert capsys.readouterr().out.strip(), "the README's loops print spans and streamed tokens"


@pytest.fixture(scope="module")
def tiny_whisper_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.speech.tiny_asr import build_tiny_whisper

    return build_tiny_whisper(tmp_path_factory.mktemp("tiny_whisper") / "model")


# -- the Space configuration -------------------------------------------------------------------
def front_matter(text: str) -> dict:
    import yaml

    match = re.match(r"---\n(.*?)\n---\n", text, flags=re.S)
    assert match, "README.md must start with the YAML front matter a Hugging Face Space reads"
    return yaml.safe_load(match.group(1))


def test_the_space_configuration_names_the_pinned_gradio_and_an_existing_app_file():
    import gradio
    from packaging.specifiers import SpecifierSet

    meta = front_matter(README.read_text(encoding="utf-8"))
    assert meta["sdk"] == "gradio"
    assert meta["sdk_version"] == gradio.__version__
    assert f"gradio=={meta['sdk_version']}" in (REPO_ROOT / "requirements.txt").read_text().split()
    app_file = REPO_ROOT / meta["app_file"]
    assert app_file.is_file() and app_file.parent == REPO_ROOT
    assert meta["title"] and len(meta["short_description"]) <= 60
    assert {meta["colorFrom"], meta["colorTo"]} <= SPACE_COLOURS
    requires = re.search(r'requires-python = "([^"]+)"', (REPO_ROOT / "pyproject.toml").read_text()).group(1)
    assert str(meta["python_version"]) in SpecifierSet(requires)


def test_the_front_matter_leaves_the_ci_test_command_readable():
    lines = README.read_text(encoding="utf-8").splitlines()
    marker = lines.index("<!-- test-command -->")  # .ci/run reads the second line after it
    assert lines[marker + 1] == "```bash"
    assert lines[marker + 2] == "pip install -r requirements-dev.txt && python -m pytest -q"


# -- what the install commands install ---------------------------------------------------------
def requirement_names(path: Path) -> set[str]:
    """Canonical names of the distributions a requirements file lists (``-r`` files included)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    names: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            names |= requirement_names(path.parent / line[3:].strip())
        elif line.startswith("-e "):  # a project folder, installed editable: its name is in its pyproject.toml
            names.add(canonicalize_name(project_name(path.parent / line[3:].strip())))
        elif line:
            names.add(canonicalize_name(Requirement(line).name))
    return names


def project_name(folder: Path) -> str:
    import tomllib

    return tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))["project"]["name"]


def installed_closure(names: set[str]) -> set[str]:
    """``names`` and everything they require, as installed here."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue
        for line in requires:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def third_party_imports(paths) -> dict[str, str]:
    """Top-level modules imported by ``paths`` (not optional ones: inside ``try`` / ``except ImportError``)."""
    first_party = {"app", "components", "omnitrace_core", "tests", "tools"}
    found: dict[str, str] = {}
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        optional = {id(node) for t in ast.walk(tree) if isinstance(t, ast.Try)
                    and any(isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                            for h in t.handlers)
                    for stmt in t.body for node in ast.walk(stmt)}
        for node in ast.walk(tree):
            if id(node) in optional:
                continue
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names and top not in first_party:
                    found.setdefault(top, str(path.relative_to(REPO_ROOT)))
    return found


def missing(imports: dict[str, str], installed: set[str]) -> dict[str, str]:
    from packaging.utils import canonicalize_name

    providers = metadata.packages_distributions()
    return {module: where for module, where in imports.items()
            if not {canonicalize_name(d) for d in providers.get(module, [])} & installed}


def test_the_app_requirements_leave_out_the_test_tools_and_the_dev_requirements_add_them():
    app, dev = requirement_names(REPO_ROOT / "requirements.txt"), requirement_names(REPO_ROOT / "requirements-dev.txt")
    assert not installed_closure(app) & TEST_TOOLS
    assert app | TEST_TOOLS <= dev


def test_the_requirements_install_every_module_imported():
    app_files = [REPO_ROOT / "app.py", *sorted((REPO_ROOT / "components").rglob("*.py")),
                 *sorted((REPO_ROOT / "omnitrace_core").rglob("*.py"))]
    app_imports = third_party_imports(app_files)
    assert {"gradio", "torch", "transformers"} <= set(app_imports)
    assert missing(app_imports, installed_closure(requirement_names(REPO_ROOT / "requirements.txt"))) == {}

    # the developer tools (tools/) drive headless Chromium: they run with requirements-dev.txt
    test_files = [*sorted((REPO_ROOT / "tests").rglob("*.py")), *sorted((REPO_ROOT / "tools").rglob("*.py"))]
    test_imports = third_party_imports(test_files)
    assert {"pytest", "hypothesis", "playwright", "yaml"} <= set(test_imports)
    assert missing(test_imports, installed_closure(requirement_names(REPO_ROOT / "requirements-dev.txt"))) == {}
