"""Input items (text, image, audio, video) and the official OmniTrace JSON sample format."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, Union

from .errors import InputError

#: The input modalities, in the order every table and view lists them.
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
    """An audio clip: a file path (any container PyAV reads) or a ``(waveform, sampling_rate)`` pair.

    ``transcript`` picks the item's source units: None follows ``SourceConfig.audio_units``;
    ``"bins"`` (time bins) or ``"asr"`` (speech segments from the recogniser) force a mode; a
    path to an .srt / .vtt / .json transcript, transcript text, or a list of ``{start, end,
    text}`` segments gives the speech segments (see :mod:`omnitrace_core.speech`).
    """

    source: Any
    name: str = ""
    transcript: Any = None
    modality: str = field(default="audio", init=False)


@dataclass(frozen=True)
class VideoItem:
    """A video file; its audio track is traced too when the source config asks for it.

    ``transcript`` is as for :class:`AudioItem`; speech segments then cut the video's timeline
    (both tracks) instead of time bins.
    """

    source: Any
    name: str = ""
    transcript: Any = None
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
        key: identifier unique within its file (see :func:`sample_keys`).
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
    An audio or video entry may add ``"transcript"``: a path to an .srt / .vtt / .json file
    (resolved like media paths), an inline list of ``{start, end, text}``, or ``"asr"`` / ``"bins"``.
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
        transcript = _entry_transcript(entry, index, kind, len(values), bases)
        for value in values:
            if kind == "text":
                if not isinstance(value, str):
                    raise InputError(f"question entry {index}: 'text' must be a string or a list of strings")
                items.append(TextItem(value))
            else:
                path = _resolve_path(value, kind, bases)
                extra = {} if transcript is None else {"transcript": transcript}
                items.append(_MEDIA_TYPES[kind](str(path), name=Path(value).name, **extra))
    return items


def _entry_transcript(entry: Mapping[str, Any], index: int, kind: str, count: int, bases: Sequence[Path]) -> Any:
    """The ``transcript`` of a question entry: a keyword, an inline list, or a resolved file path.

    The transcript itself is read when the sample is traced (before any media is decoded).
    """
    value = entry.get("transcript")
    if value is None:
        return None
    where = f"question entry {index}"
    if kind not in ("audio", "video"):
        raise InputError(f"{where}: 'transcript' belongs to an audio or video entry, not to '{kind}'")
    if count != 1:
        raise InputError(f"{where}: a 'transcript' needs a single {kind} file; give each {kind} its own entry")
    if isinstance(value, list) or (isinstance(value, str) and value.strip().lower() in ("asr", "bins")):
        return value
    if not isinstance(value, str):
        raise InputError(f"{where}: 'transcript' must be a path to an .srt, .vtt or .json file, a list of "
                         '{"start", "end", "text"} segments, "asr" or "bins"')
    path = _resolve_path(value, "transcript", bases)
    if not path.is_file():
        searched = f"'{path}'" if Path(value).expanduser().is_absolute() else ", ".join(f"'{b / value}'" for b in bases)
        raise InputError(f"{where}: transcript file '{value}' does not exist (looked for it at {searched}); "
                         "fix the path or pass --media-root")
    return str(path)


def sample_keys(samples: Sequence[Mapping[str, Any]]) -> list[str]:
    """Stable keys for the samples of one file: ``"id"``, or ``"id:task"`` whenever the sample has a task.

    A key that repeats gets ``#1``, ``#2`` ... on its later occurrences. A sample without an id
    is keyed by its position. The official files reuse ids across tasks (two samples with id 0
    in the audio file), so the id alone cannot identify a sample. Output records of the batch CLI
    and truth files of the evaluation commands use these keys.

    Example:
        >>> sample_keys([{"id": 0, "task": "qa"}, {"id": 0, "task": "qa"}, {"id": 3}, {}])
        ['0:qa', '0:qa#1', '3', '3#1']
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
