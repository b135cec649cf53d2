"""README.md is true: its Python code runs as written, and its Space configuration is valid.

The Python blocks run in order, in one namespace (a later block may use what an earlier one
defined), in a folder holding the media files they name, written here. The only changes made to
their text, each because this offline machine cannot have what the README names:

- the model ids ``Qwen/Qwen2.5-Omni-7B`` and ``path/or/hub-id`` become the bundled demo model;
- ``device="cuda"`` becomes ``device="cpu"`` when there is no GPU;
- the speech recogniser ``openai/whisper-small`` becomes a tiny Whisper built offline.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from components.settings import REPO_ROOT
from omnitrace_core.defaults import DEFAULT_MODEL_DIR
from tests import media_files

README = REPO_ROOT / "README.md"
MODEL_IDS = ("Qwen/Qwen2.5-Omni-7B", "path/or/hub-id")
ASR_ID = "openai/whisper-small"
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
