"""Read a user's transcript: SubRip (.srt), WebVTT (.vtt) or a JSON list of {start, end, text}.

Every reader returns :class:`~omnitrace_core.speech.segments.SpeechSegment` tuples in file order
and raises :class:`~omnitrace_core.errors.InputError` naming the file, the line and what is
accepted when the text is malformed. Checking the times against the media (order, overlap,
duration) is :func:`~omnitrace_core.speech.segments.validate_segments`' job.
"""

from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..errors import InputError
from .segments import ACCEPTED_SEGMENT, SpeechSegment

ACCEPTED_TRANSCRIPTS = (
    "an SRT file (.srt), a WebVTT file (.vtt), or JSON (.json): a list of {\"start\": s, \"end\": s, "
    "\"text\": ...} (or an object whose \"segments\" list holds them)"
)
MAX_TRANSCRIPT_BYTES = 20 * 1024 * 1024

_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[,.](\d{1,3}))?"
_TIMING = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}(?:\s+.*)?$")
_TAG = re.compile(r"<[^>]*>|\{\\[^}]*\}")  # HTML-like tags (<i>, <v Bob>, <00:01.000>) and ASS overrides ({\an8})


def _seconds(hours: str | None, minutes: str, seconds: str, fraction: str | None) -> float:
    value = int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds)
    return value + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


def _clean_text(lines: Sequence[str]) -> str:
    text = " ".join(_TAG.sub("", line) for line in lines)
    return " ".join(html.unescape(text).split())


def _blocks(lines: Sequence[str], first: int = 0) -> Iterator[tuple[int, list[str]]]:
    """Runs of non-blank lines as (1-based line number of the run's first line, lines)."""
    block: list[str] = []
    start = 0
    for number, line in enumerate(lines[first:], first + 1):
        if line.strip():
            if not block:
                start = number
            block.append(line)
        elif block:
            yield start, block
            block = []
    if block:
        yield start, block


def _timing(line: str, number: int, where: str, example: str) -> tuple[float, float]:
    match = _TIMING.match(line)
    if not match:
        raise InputError(f"{where}line {number}: cannot read the time range {line.strip()!r}; expected '{example}'")
    groups = match.groups()
    start, end = _seconds(*groups[:4]), _seconds(*groups[4:])
    if end < start:
        raise InputError(f"{where}line {number}: the cue ends ({end:.3f} s) before it starts ({start:.3f} s)")
    return start, end


def _where(name: str | None) -> str:
    return f"transcript '{name}', " if name else "transcript, "


def _lines(text: str) -> list[str]:
    return text.lstrip("\ufeff").splitlines()


def parse_srt(text: str, name: str | None = None) -> tuple[SpeechSegment, ...]:
    """Parse SubRip text: blocks of ``index``, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``, text lines.

    The index line may be missing; ``.`` is accepted for ``,``; tags (``<i>``, ``{\\an8}``) are
    removed and the text lines of a cue are joined with spaces.
    """
    where = _where(name)
    example = "HH:MM:SS,mmm --> HH:MM:SS,mmm"
    segments = []
    for number, block in _blocks(_lines(text)):
        if "-->" in block[0]:
            timing_at = 0
        elif len(block) > 1 and "-->" in block[1] and block[0].strip().isdigit():
            timing_at = 1
        else:
            raise InputError(f"{where}line {number}: expected a cue number followed by a '{example}' line, "
                             f"got {block[0].strip()!r}; accepted: {ACCEPTED_TRANSCRIPTS}")
        start, end = _timing(block[timing_at], number + timing_at, where, example)
        segments.append(SpeechSegment(start, end, _clean_text(block[timing_at + 1:])))
    if not segments:
        raise InputError(f"{where.rstrip(', ')} holds no subtitle cues; accepted: {ACCEPTED_TRANSCRIPTS}")
    return tuple(segments)


def parse_vtt(text: str, name: str | None = None) -> tuple[SpeechSegment, ...]:
    """Parse WebVTT: a ``WEBVTT`` header, then cues (optional identifier, timing line, payload).

    NOTE, STYLE and REGION blocks are skipped; cue settings after the timing are ignored;
    voice/class/timestamp tags are removed and entities (``&amp;``) decoded.
    """
    where = _where(name)
    example = "HH:MM:SS.mmm --> HH:MM:SS.mmm (hours optional)"
    lines = _lines(text)
    if not lines or not re.match(r"^WEBVTT(?:[ \t].*)?$", lines[0]):
        raise InputError(f"{where}line 1: a WebVTT file must start with 'WEBVTT'; accepted: {ACCEPTED_TRANSCRIPTS}")
    header_end = next((i for i, line in enumerate(lines) if not line.strip()), len(lines))
    segments = []
    for number, block in _blocks(lines, header_end):
        head = block[0].strip()
        if re.match(r"^(NOTE|STYLE|REGION)(?:\s|$)", head) and "-->" not in head:
            continue
        if "-->" in block[0]:
            timing_at = 0
        elif len(block) > 1 and "-->" in block[1]:
            timing_at = 1  # cue identifier first
        else:
            raise InputError(f"{where}line {number}: expected a cue timing line '{example}', got {head!r}")
        start, end = _timing(block[timing_at], number + timing_at, where, example)
        segments.append(SpeechSegment(start, end, _clean_text(block[timing_at + 1:])))
    if not segments:
        raise InputError(f"{where.rstrip(', ')} holds no cues; accepted: {ACCEPTED_TRANSCRIPTS}")
    return tuple(segments)


def _json_time(entry: Any, key: str, index: int, where: str) -> float:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{where}entry {index + 1}: '{key}' must be a number of seconds, got {value!r}; "
                         f"each entry is {ACCEPTED_SEGMENT}")
    return float(value)


def segments_from_json(data: Any, name: str | None = None) -> tuple[SpeechSegment, ...]:
    """Segments from decoded JSON: a list of ``{start, end, text}`` (or ``{"segments": [...]}``).

    Entries may also give ``"timestamp": [start, end]`` instead of ``start``/``end`` (the output
    of transformers' speech-recognition pipeline).
    """
    where = _where(name)
    if isinstance(data, dict):
        for key in ("segments", "chunks"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
    if not isinstance(data, list):
        raise InputError(f"{where}JSON must be a list of segments; accepted: {ACCEPTED_TRANSCRIPTS}")
    if not data:
        raise InputError(f"{where}JSON list is empty; give at least one {ACCEPTED_SEGMENT}")
    segments = []
    for index, entry in enumerate(data):
        if isinstance(entry, SpeechSegment):
            segments.append(entry)
            continue
        if not isinstance(entry, dict):
            raise InputError(f"{where}entry {index + 1} is {type(entry).__name__}, not an object; "
                             f"each entry is {ACCEPTED_SEGMENT}")
        if "start" not in entry and isinstance(entry.get("timestamp"), (list, tuple)) and len(entry["timestamp"]) == 2:
            entry = {**entry, "start": entry["timestamp"][0], "end": entry["timestamp"][1]}
        missing = [k for k in ("start", "end") if k not in entry]
        if missing:
            raise InputError(f"{where}entry {index + 1} lacks {' and '.join(repr(m) for m in missing)}; "
                             f"each entry is {ACCEPTED_SEGMENT}")
        text = entry.get("text", "")
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise InputError(f"{where}entry {index + 1}: 'text' must be a string, got {type(text).__name__}")
        segments.append(SpeechSegment(_json_time(entry, "start", index, where), _json_time(entry, "end", index, where),
                                      " ".join(text.split())))
    return tuple(segments)


def parse_json(text: str, name: str | None = None) -> tuple[SpeechSegment, ...]:
    """Parse a JSON transcript (see :func:`segments_from_json`)."""
    try:
        data = json.loads(text.lstrip("\ufeff"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{_where(name)}line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg}); "
                         f"accepted: {ACCEPTED_TRANSCRIPTS}") from None
    return segments_from_json(data, name)


_PARSERS = {".srt": parse_srt, ".vtt": parse_vtt, ".webvtt": parse_vtt, ".json": parse_json}


def parse_transcript(text: str, name: str | None = None, format: str | None = None) -> tuple[SpeechSegment, ...]:
    """Parse transcript text in ``format`` ("srt", "vtt", "json"), or the format its content shows."""
    if format is None:
        head = text.lstrip("\ufeff \t\r\n")
        format = "vtt" if head.startswith("WEBVTT") else "json" if head[:1] in "[{" else "srt"
    parser = _PARSERS.get("." + format.lower().lstrip("."))
    if parser is None:
        raise InputError(f"unknown transcript format {format!r}; accepted: srt, vtt, json")
    return parser(text, name)


def looks_like_transcript_text(value: str) -> bool:
    """Whether a string is transcript content rather than a file path (a line break, or a format's opening)."""
    head = value.lstrip("\ufeff \t")
    return "\n" in value or head.startswith(("WEBVTT", "[", "{"))


def load_transcript(source: Any, format: str | None = None) -> tuple[SpeechSegment, ...]:
    """Segments from a transcript in any accepted form.

    Args:
        source: a path (str or PathLike) to an .srt, .vtt or .json file; transcript text
            (a str holding a line break, or starting with ``WEBVTT``, ``[`` or ``{``); or a
            sequence of SpeechSegments, ``{start, end, text}`` mappings or ``(start, end, text)``
            tuples.
        format: "srt", "vtt" or "json" to skip detection (by file extension, then content).

    Returns:
        The segments in the order given (not yet checked against the media: see
        :func:`~omnitrace_core.speech.segments.validate_segments`).

    Raises:
        InputError: a missing or unreadable file, or malformed content (with the line number).
    """
    if isinstance(source, str) and looks_like_transcript_text(source):
        return parse_transcript(source, None, format)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        if not path.is_file():
            what = "is a folder" if path.is_dir() else "does not exist"
            raise InputError(f"transcript file '{path}' {what}; accepted: {ACCEPTED_TRANSCRIPTS}")
        if path.stat().st_size > MAX_TRANSCRIPT_BYTES:
            raise InputError(f"transcript file '{path.name}' is larger than {MAX_TRANSCRIPT_BYTES >> 20} MB")
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InputError(f"transcript file '{path.name}' is not UTF-8 text "
                             f"({exc.reason} at byte {exc.start})") from None
        except OSError as exc:
            raise InputError(f"transcript file '{path.name}' cannot be read ({exc.strerror or exc})") from None
        if format is None and path.suffix.lower() in _PARSERS:
            format = path.suffix.lower()
        return parse_transcript(text, path.name, format)
    if isinstance(source, SpeechSegment):
        return (source,)
    if isinstance(source, (list, tuple)):
        try:
            return tuple(SpeechSegment.from_any(s) for s in source)
        except InputError as exc:
            raise InputError(f"inline transcript: {exc}") from None
    raise InputError(f"cannot read a transcript from a {type(source).__name__}; give {ACCEPTED_TRANSCRIPTS}, "
                     "or a list of segments")
