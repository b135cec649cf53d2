"""Checks on user input before anything runs: file types, decodability, size and token limits, and
loaded trace files.

Every failure raises :class:`omnitrace_core.InputError` (or its MediaError) with a message that
says what was wrong and what is accepted; the panels show those as pop-ups (``alerts.error``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from omnitrace_core import InputError, MediaError, TraceResult
from omnitrace_core.sources.builder import ATOM_TILE

from .session import ComposedItem
from .settings import InputLimits

EXTENSIONS = {
    "image": (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp"),
    "audio": (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aac", ".opus"),
    "video": (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v"),
}
ACCEPTED = ", ".join(ext for exts in EXTENSIONS.values() for ext in exts)


def media_kind(path: str | Path) -> str:
    """"image", "audio" or "video" from the file extension; InputError for anything else."""
    suffix = Path(path).suffix.lower()
    for kind, exts in EXTENSIONS.items():
        if suffix in exts:
            return kind
    raise InputError(f"unsupported file type '{suffix or Path(path).name}': accepted media files are {ACCEPTED}")


def check_media(path: str | Path, limits: InputLimits) -> dict[str, Any]:
    """Decode a media file under the limits and summarise it.

    The limits are checked first from the file's header, with messages in the terms of someone
    using the page; the decoders enforce them again while decoding. A video file with no picture
    but a sound track (an audio-only .mp4) becomes an audio item.

    Returns:
        {"kind", "width"/"height" (images), "duration" (audio, video)}.

    Raises:
        InputError / MediaError: unsupported type, corrupt file, or over a limit.
    """
    from omnitrace_core.media import load_audio, load_image, load_video, probe_duration

    kind = media_kind(path)
    media_limits = limits.media_limits()
    _check_file_size(path, limits)
    if kind == "image":
        _check_image_size(path, limits)
        image = load_image(path, limits=media_limits)
        return {"kind": kind, "width": image.width, "height": image.height}
    duration = probe_duration(path)
    if kind == "video" and not _has_picture(path):
        kind = "audio"  # a sound track in a video container (an audio-only .mp4)
    _check_seconds(path, duration, kind, limits.max_video_seconds if kind == "video" else limits.max_audio_seconds)
    if kind == "audio":
        clip = load_audio(path, sampling_rate=8000, limits=media_limits)
        return {"kind": kind, "duration": clip.duration}
    clip = load_video(path, fps=min(1.0, 4 / max(duration, 1e-3)), max_frames=4, with_audio=False, limits=media_limits)
    return {"kind": kind, "duration": clip.duration, "width": int(clip.frames.shape[2]), "height": int(clip.frames.shape[1])}


def _has_picture(path: str | Path) -> bool:
    import av  # a dependency of omnitrace_core.media, which has just opened this file

    with av.open(str(path)) as container:
        return bool(container.streams.video)


def _check_file_size(path: str | Path, limits: InputLimits) -> None:
    try:
        megabytes = Path(path).stat().st_size / 2 ** 20
    except OSError:
        return  # the decoder says the file cannot be read
    if megabytes > limits.max_file_mb:
        raise MediaError(f"'{Path(path).name}' is {megabytes:.3g} MB; this explorer accepts files up to "
                         f"{limits.max_file_mb:g} MB: upload a smaller file")


def _check_image_size(path: str | Path, limits: InputLimits) -> None:
    from PIL import Image

    try:
        with Image.open(path) as image:  # reads the header only
            width, height = image.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return  # the decoder says what is wrong with the file
    if width * height > limits.max_image_pixels:
        raise MediaError(f"'{Path(path).name}' is {width}x{height} pixels ({width * height / 1e6:.1f} megapixels); "
                         f"this explorer accepts images up to {limits.max_image_pixels / 1e6:.1f} megapixels: "
                         "scale it down first")


def _check_seconds(path: str | Path, seconds: float, kind: str, limit: float) -> None:
    if seconds > limit:
        raise MediaError(f"'{Path(path).name}' is {seconds:.1f} s long; this explorer accepts {kind} up to "
                         f"{limit:g} s: cut it to a shorter clip first")


def check_text(text: str, is_prompt: bool = False) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InputError("the text is empty: type something to add")
    return text


def check_run(items: Sequence[ComposedItem], limits: InputLimits, modalities: Any = None) -> None:
    """Reject an empty or oversized composition, or one the model cannot read, before any work starts.

    Args:
        items: the composition.
        limits: input guards.
        modalities: what the model reads (a backend's ``modalities``); None for all four.
    """
    if not items:
        raise InputError("the input is empty: add a text, image, audio or video item first")
    if not any(item.kind != "text" or (item.text.strip() and not item.is_prompt) for item in items):
        raise InputError("the input has nothing to trace: add a non-instruction text or a media item")
    if len(items) > limits.max_items:
        raise InputError(f"{len(items)} items is over the limit of {limits.max_items}; remove some")
    if modalities:
        unreadable = sorted({item.kind for item in items} - set(modalities))
        if unreadable:
            raise InputError(f"this model does not read {', '.join(unreadable)} input; it reads "
                             f"{', '.join(sorted(modalities))}: remove those items")


@dataclass(frozen=True)
class TraceBounds:
    """The largest trace file the explorer renders (a loaded trace is user input too).

    Generous for real traces, so that a small crafted file cannot make the server build a huge
    page: the page grows with tokens, units and tiles, and one image's tile grid is only two
    numbers in the file.

    Attributes:
        max_items: input items.
        max_tokens: generated tokens.
        max_units: source units.
        max_atoms: atoms (image tiles, video tracks, text and audio units).
        max_image_tiles: tiles of one image (Qwen2.5's largest image, 12,845,056 px, has 16,384).
    """

    max_items: int = 256
    max_tokens: int = 32_768
    max_units: int = 20_000
    max_atoms: int = 400_000
    max_image_tiles: int = 16_384


def check_loaded_trace(result: TraceResult, bounds: TraceBounds = TraceBounds()) -> None:
    """Refuse a loaded trace that is too large to render or disagrees with its own arrays.

    Checked before anything is rendered: sizes against ``bounds``; every unit belongs to an
    item of its modality and owns at least one atom; text units lie inside their item's text,
    in order; an image's tile grid has exactly as many tiles as the image's tile atoms; and a
    cited image's tile scores match that grid.

    Raises:
        InputError: naming the part of the trace that is wrong, and the bound where one is hit.
    """
    sizes = (("input items", len(result.items), bounds.max_items), ("generated tokens", len(result.tokens),
             bounds.max_tokens), ("source units", len(result.units), bounds.max_units),
             ("atoms", result.sources.num_atoms, bounds.max_atoms))
    for what, count, limit in sizes:
        if count > limit:
            raise InputError(f"the trace has {count} {what}, over the {limit} this explorer shows")
    items, units = result.items, result.units
    if [item.index for item in items] != list(range(len(items))):
        raise InputError("the trace's items are not numbered 0, 1, 2, ... in order")
    owned = Counter(int(u) for u in result.sources.atom_unit)
    text_end: dict[int, int] = {}
    for unit in units:
        if not 0 <= unit.item < len(items) or items[unit.item].modality != unit.modality:
            raise InputError(f"source unit {unit.index} ({unit.modality}) names item {unit.item}, which is not "
                             f"a {unit.modality} item of the trace")
        if not owned[unit.index]:
            raise InputError(f"source unit {unit.index} has no atoms in the trace's atom arrays")
        if unit.modality == "text":
            length = len(items[unit.item].text or "")
            start, end = unit.char_start, unit.char_end
            if start is None or end is None or not text_end.get(unit.item, 0) <= start < end <= length:
                raise InputError(f"text unit {unit.index} spans characters {start}..{end}, which are not the next "
                                 f"characters of item {unit.item} ({length} characters)")
            text_end[unit.item] = end
    tiles = Counter(int(result.sources.atom_unit[a]) for a, kind in enumerate(result.sources.atom_kind)
                    if kind == ATOM_TILE)
    for item in items:
        if item.modality != "image" or item.grid is None:
            continue
        rows, cols = item.grid
        have = sum(tiles[u.index] for u in units if u.item == item.index)
        if rows < 1 or cols < 1 or rows * cols > bounds.max_image_tiles or rows * cols != have:
            raise InputError(f"image item {item.index} claims a {rows}x{cols} tile grid, but the trace holds {have} "
                             f"tiles for it (at most {bounds.max_image_tiles} are shown)")
    for span in result.spans:
        for source in span.sources:
            if source.tile_scores is None:
                continue
            grid = items[units[source.unit].item].grid
            if source.grid != grid or grid is None or len(source.tile_scores) != grid[0] * grid[1]:
                raise InputError(f"sentence {span.index} cites image unit {source.unit} with {len(source.tile_scores)} "
                                 f"tile scores over a {source.grid} grid; the image's grid is {grid}")


__all__ = ["ACCEPTED", "EXTENSIONS", "MediaError", "TraceBounds", "check_loaded_trace", "check_media", "check_run",
           "check_text", "media_kind"]
