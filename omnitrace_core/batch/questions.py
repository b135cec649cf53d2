"""Samples files in the official OmniTrace format: reading them, and where their media paths point."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import MediaError, UsageError

#: The official format, as usage errors describe it.
SAMPLE_FORMAT = (
    'a JSON list of samples, each like {"id": 0, "prompt": "...", "question": '
    '[{"text": "..."}, {"image": "media/x.jpg"}, {"audio": "a.wav", "transcript": "a.srt"}, {"video": "v.mp4"}], '
    '...metadata} ("transcript" is optional)'
)
MEDIA_KINDS = ("image", "audio", "video")


def load_questions(path: str | Path) -> list[Any]:
    """Read a questions file in the official format; raise UsageError naming the file if it is unusable."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"questions file '{path}' does not exist; pass {SAMPLE_FORMAT}")
    if path.is_dir():
        raise UsageError(f"questions file '{path}' is a directory; pass a JSON file holding {SAMPLE_FORMAT}")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"questions file '{path}' cannot be read ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"questions file '{path}' is not UTF-8 text ({exc}); pass {SAMPLE_FORMAT}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"questions file '{path}' is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            f"pass {SAMPLE_FORMAT}") from exc
    if not isinstance(data, list):
        kind = {dict: "an object", str: "a string"}.get(type(data), type(data).__name__)
        raise UsageError(f"questions file '{path}' holds {kind}, not a list; pass {SAMPLE_FORMAT}")
    return data


def check_media_root(media_root: str | Path | None) -> None:
    """UsageError when ``--media-root`` is given and is not a folder."""
    if media_root is not None and not Path(media_root).expanduser().is_dir():
        raise UsageError(f"--media-root '{media_root}' is not a folder")


def media_bases(questions: str | Path, media_root: str | Path | None = None) -> list[Path]:
    """Folders relative media paths are looked up in, in order.

    ``media_root`` (when given), then the questions file's folder, then that folder's parent
    (the official example files name media ``examples/media/x.jpg`` relative to the folder above
    their own). The first folder where the file exists wins.
    """
    folder = Path(questions).expanduser().resolve().parent
    bases = [Path(media_root).expanduser()] if media_root is not None else []
    bases += [folder, folder.parent]
    unique: list[Path] = []
    for base in bases:
        if base not in unique:
            unique.append(base)
    return unique


def check_media(raw: Mapping[str, Any], key: str, bases: Sequence[Path]) -> None:
    """Name every folder that was searched when a media file of the sample cannot be found."""
    for index, entry in enumerate(raw.get("question") or ()):
        for kind in MEDIA_KINDS:
            if kind not in entry:
                continue
            values = entry[kind] if isinstance(entry[kind], list) else [entry[kind]]
            for value in values:
                path = Path(value).expanduser()
                candidates = [path] if path.is_absolute() else [base / path for base in bases]
                if not any(c.exists() for c in candidates):
                    where = ", ".join(f"'{c}'" for c in candidates)
                    raise MediaError(f"sample {key}, question entry {index}: {kind} file '{value}' does not exist "
                                     f"(looked for it at {where}); fix the path or pass --media-root")
