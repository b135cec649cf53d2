"""``python app.py`` as its own process: started the way a Hugging Face Space starts it, then stopped.

A Space installs ``requirements.txt`` only and runs ``python app.py`` with ``GRADIO_SERVER_NAME=0.0.0.0``
and the port in ``GRADIO_SERVER_PORT``. Here the app runs exactly so, on the default (demo)
model, with the test tools made unimportable in its process (a ``sitecustomize`` on
``PYTHONPATH``), and with its temporary folder (``TMPDIR``) under the test's own folder. Stopped by SIGTERM
(how a Space, docker or systemd stop a process) or SIGINT (Ctrl-C), it must leave none of its
sessions' files behind; a normal exit neither.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from components.settings import REPO_ROOT
from tests.components.app_harness import free_port, media_path

pytestmark = pytest.mark.slow
gradio_client = pytest.importorskip("gradio_client")

TEST_TOOLS = ("pytest", "_pytest", "hypothesis", "playwright")
NO_TEST_TOOLS = f'''"""Test tools are not installed on a Space: hide them from every import in this process."""
import sys
from importlib.machinery import PathFinder

HIDDEN = {TEST_TOOLS!r}


class _PathFinderWithoutTestTools(PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        return None if name.split(".")[0] in HIDDEN else super().find_spec(name, path, target)


sys.meta_path[:] = [_PathFinderWithoutTestTools if f is PathFinder else f for f in sys.meta_path]
'''
START_SECONDS = 180


def space_env(tmp_path: Path, port: int) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(NO_TEST_TOOLS, encoding="utf-8")
    temp = tmp_path / "tmp"
    temp.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNITRACE_", "GRADIO_"))}
    env.update(GRADIO_SERVER_NAME="0.0.0.0", GRADIO_SERVER_PORT=str(port), PYTHONPATH=str(site), TMPDIR=str(temp),
               HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    return env


@contextmanager
def space_app(tmp_path: Path) -> Iterator[tuple[subprocess.Popen, str, Path]]:
    """``python app.py`` started as a Space starts it; yields (process, local URL, its temp folder)."""
    port = free_port()
    env = space_env(tmp_path, port)
    log = tmp_path / "app.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO_ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if proc.poll() is not None:
                pytest.fail(f"app.py exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"app.py did not serve {url} within {START_SECONDS} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield proc, url, Path(env["TMPDIR"])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_the_sitecustomize_really_hides_the_test_tools(tmp_path):
    env = space_env(tmp_path, 0)
    for tool in ("pytest", "hypothesis", "playwright.sync_api"):
        run = subprocess.run([sys.executable, "-c", f"import {tool}"], env=env, capture_output=True, text=True)
        assert run.returncode != 0 and "ModuleNotFoundError: No module named" in run.stderr
    found = "import importlib.util; assert importlib.util.find_spec('hypothesis') is None"
    assert subprocess.run([sys.executable, "-c", found], env=env).returncode == 0
    assert subprocess.run([sys.executable, "-c", "import gradio, torch"], env=env).returncode == 0


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_space_style_start_serves_and_a_stop_removes_every_session_file(tmp_path, stop):
    with space_app(tmp_path) as (proc, url, temp):
        client = gradio_client.Client(url, verbose=False)
        client.predict("Describe the image.", False, api_name="/add_text")
        client.predict([gradio_client.handle_file(str(media_path("scene.png")))], api_name="/add_media")
        client.predict(signal="attmean", max_new_tokens=4, api_name="/trace")
        exported = [*client.predict(api_name="/export_json"), *client.predict(api_name="/export_html")]
        assert len(exported) == 2
        written = files_under(temp)
        assert len([p for p in written if p.suffix in (".json", ".html") and p.parent.name.startswith("session_")]) == 2
        assert any(p.name == "scene.png" for p in written), "Gradio's copy of the upload is in the temp folder too"

        proc.send_signal(stop)
        assert proc.wait(timeout=60) == 0
    assert files_under(temp) == [], "every session folder, export and upload is removed at shutdown"
    assert not list(temp.glob("omnitrace_explorer_*"))


def test_a_normal_exit_removes_the_session_folders(tmp_path):
    env = space_env(tmp_path, 0)
    code = ("from components.session import Session\n"
            "session = Session()\n"
            "(session.workdir / 'trace.json').write_text('{}')\n"
            "print(session.workdir)\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    workdir = Path(run.stdout.strip().splitlines()[-1])
    assert workdir.is_relative_to(Path(env["TMPDIR"])) and not workdir.parent.exists()
