"""Input items (text, image, audio, video) and the official OmniTrace JSON sample format."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, Union

import numpy as np

from .errors import InputError

MODALITIES = ("text", "image", "audio", "video")


@dataclass(frozen=True)
class TextItem:
    """A piece of input text. ``is_prompt`` marks the task instruction (not a source by default)."""

    text: str
    is_prompt: bool = False
    modality: str = field(default="text", init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise InputError(f"text item must hold a string, got {type(self.text).__name__}")


@dataclass(frozen=True)
class ImageItem:
    """An image: a file path or an in-memory ``PIL.Image.Image``."""

    source: Any
    name: str = ""
    modality: str = field(default="image", init=False)


@dataclass(frozen=True)
class AudioItem:
    """An audio clip: a file path (any container PyAV reads) or a ``(waveform, sampling_rate)`` pair."""

    source: Any
    name: str = ""
    modality: str = field(default="audio", init=False)


@dataclass(frozen=True)
class VideoItem:
    """A video file; its audio track is traced too when the source config asks for it."""

    source: Any
    name: str = ""
    modality: str = field(default="video", init=False)


Item = Union[TextItem, ImageItem, AudioItem, VideoItem]
_MEDIA_TYPES = {"image": ImageItem, "audio": AudioItem, "video": VideoItem}


def item_label(item: Item) -> str:
    """A short human-readable name for an item (file name for media, a text excerpt otherwise)."""
    if isinstance(item, TextItem):
        text = " ".join(item.text.split())
        return text if len(text) <= 40 else text[:37] + "..."
    if item.name:
        return item.name
    if isinstance(item.source, (str, os.PathLike)):
        return Path(item.source).name
    return f"<{item.modality} in memory>"


def validate_items(items: Sequence[Item]) -> None:
    """Check that a list of items can be traced; raise InputError naming the first problem."""
    if not items:
        raise InputError("the input is empty: give at least one text, image, audio or video item")
    for index, item in enumerate(items):
        if not isinstance(item, (TextItem, ImageItem, AudioItem, VideoItem)):
            raise InputError(
                f"item {index} is a {type(item).__name__}; accepted item types: "
                "TextItem, ImageItem, AudioItem, VideoItem"
            )
    if not any(not (isinstance(i, TextItem) and (i.is_prompt or not i.text.strip())) for i in items):
        raise InputError("the input has nothing to trace: add a non-empty text or a media item")


@dataclass(frozen=True)
class Sample:
    """One sample of the official JSON format, resolved to items.

    Attributes:
        key: identifier unique within its file (``id``, plus ``task`` when ids repeat).
        items: the instruction prompt (if any) followed by the question items, in order.
        raw: the sample as read, for copying metadata (answer, task, ...) to outputs.
    """

    key: str
    items: tuple[Item, ...]
    raw: Mapping[str, Any]


def _resolve_path(value: Any, field_name: str, bases: Sequence[Path]) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"'{field_name}' must be a file path string, got {value!r}")
    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    candidates = [base / path for base in bases]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    return candidates[0]  # missing: the media loader reports it with its name


def items_from_question(
    question: Iterable[Mapping[str, Any]], bases: Sequence[Path] = (Path("."),)
) -> list[Item]:
    """Convert the ``question`` list of the official format into items.

    Each entry is a one-key mapping: ``{"text": str | [str, ...]}``, ``{"image": path | [path, ...]}``,
    ``{"audio": path}`` or ``{"video": path}``. Relative paths resolve against ``bases`` in order.
    """
    items: list[Item] = []
    for index, entry in enumerate(question):
        if not isinstance(entry, Mapping):
            raise InputError(f"question entry {index} must be an object like {{'text': ...}}")
        keys = [k for k in entry if k in MODALITIES]
        if len(keys) != 1:
            raise InputError(
                f"question entry {index} has keys {sorted(entry)}; it needs exactly one of "
                f"{list(MODALITIES)}"
            )
        kind = keys[0]
        values = entry[kind] if isinstance(entry[kind], list) else [entry[kind]]
        for value in values:
            if kind == "text":
                if not isinstance(value, str):
                    raise InputError(f"question entry {index}: 'text' must be a string or a list of strings")
                items.append(TextItem(value))
            else:
                path = _resolve_path(value, kind, bases)
                items.append(_MEDIA_TYPES[kind](str(path), name=Path(value).name))
    return items


def sample_keys(samples: Sequence[Mapping[str, Any]]) -> list[str]:
    """Stable keys for the samples of one file: the ``id``, disambiguated by ``task`` and position.

    The official files reuse ids across tasks (two samples with id 0 in the audio file), so the
    id alone cannot identify a sample.
    """
    base = []
    for position, sample in enumerate(samples):
        sid = sample.get("id", position) if isinstance(sample, Mapping) else position
        task = sample.get("task") if isinstance(sample, Mapping) else None
        base.append(f"{sid}" if task is None else f"{sid}:{task}")
    seen: dict[str, int] = {}
    keys = []
    for key in base:
        count = seen.get(key, 0)
        seen[key] = count + 1
        keys.append(key if count == 0 else f"{key}#{count}")
    return keys


def parse_sample(
    raw: Mapping[str, Any], key: str, bases: Sequence[Path] = (Path("."),)
) -> Sample:
    """Resolve one sample of the official format into items (prompt first, then the question)."""
    if not isinstance(raw, Mapping):
        raise InputError(f"sample {key} must be a JSON object, got {type(raw).__name__}")
    question = raw.get("question")
    if not isinstance(question, list) or not question:
        raise InputError(f"sample {key} needs a non-empty 'question' list")
    items: list[Item] = []
    prompt = raw.get("prompt")
    if prompt is not None:
        if not isinstance(prompt, str):
            raise InputError(f"sample {key}: 'prompt' must be a string")
        if prompt.strip():
            items.append(TextItem(prompt, is_prompt=True))
    items.extend(items_from_question(question, bases))
    return Sample(key=key, items=tuple(items), raw=raw)


def waveform_item(waveform: np.ndarray, sampling_rate: int, name: str = "") -> AudioItem:
    """An audio item from an in-memory waveform (mono or (channels, samples))."""
    return AudioItem((np.asarray(waveform), int(sampling_rate)), name=name)
