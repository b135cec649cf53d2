"""Checks on user input before anything runs: file types, decodability, size and token limits.

Every failure raises :class:`omnitrace_core.InputError` (or its MediaError) with a message that
says what was wrong and what is accepted; the panels turn those into ``gr.Error``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from omnitrace_core import InputError, MediaError

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

    Returns:
        {"kind", "width"/"height" (images), "duration" (audio, video)}.

    Raises:
        InputError / MediaError: unsupported type, corrupt file, or over a limit.
    """
    from omnitrace_core.media import load_audio, load_image, load_video, probe_duration

    kind = media_kind(path)
    media_limits = limits.media_limits()
    if kind == "image":
        image = load_image(path, limits=media_limits)
        return {"kind": kind, "width": image.width, "height": image.height}
    duration = probe_duration(path) if kind == "video" else None
    if kind == "audio":
        clip = load_audio(path, sampling_rate=8000, limits=media_limits)
        return {"kind": kind, "duration": clip.duration}
    clip = load_video(path, fps=min(1.0, 4 / max(duration, 1e-3)), max_frames=4, with_audio=False, limits=media_limits)
    return {"kind": kind, "duration": clip.duration, "width": int(clip.frames.shape[2]), "height": int(clip.frames.shape[1])}


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


__all__ = ["ACCEPTED", "EXTENSIONS", "MediaError", "check_media", "check_run", "check_text", "media_kind"]
