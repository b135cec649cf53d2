"""Guards against oversized or malformed media, and the checks every loader shares.

:class:`MediaLimits` bounds file size, image pixels and durations (``None`` disables a guard);
the checks raise :class:`~omnitrace_core.errors.MediaError` naming the file, what was wrong, the
setting as users see it (``--max-file-mb`` ...) and what is accepted.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np

from ..errors import ConfigError, MediaError

PathLike = Union[str, "os.PathLike[str]"]

ACCEPTED_IMAGE_FORMATS = "PNG, JPEG, GIF, BMP, TIFF, WebP (any format Pillow can read)"
ACCEPTED_AUDIO_FORMATS = (
    "WAV, FLAC, OGG, MP3, M4A/AAC, or the audio track of an MP4/MKV/WebM file "
    "(any container PyAV/FFmpeg can read)"
)
ACCEPTED_VIDEO_FORMATS = "MP4, MKV, WebM, MOV, AVI (any container PyAV/FFmpeg can read with a video stream)"

EPS = 1e-6  # seconds; tolerance when comparing timestamps


@dataclass(frozen=True)
class MediaLimits:
    """Configurable guards against oversized inputs; ``None`` disables a guard.

    Attributes:
        max_file_bytes: Largest accepted file on disk, in bytes (default 2 GiB).
        max_image_pixels: Largest accepted image, in pixels ``width * height``
            (default 64 megapixels).
        max_audio_seconds: Longest accepted audio, in seconds (default 3 hours).
        max_video_seconds: Longest accepted video, in seconds (default 3 hours).
    """

    max_file_bytes: int | None = 2 * 1024**3
    max_image_pixels: int | None = 64_000_000
    max_audio_seconds: float | None = 3 * 3600
    max_video_seconds: float | None = 3 * 3600

    def __post_init__(self) -> None:
        for name in ("max_file_bytes", "max_image_pixels", "max_audio_seconds", "max_video_seconds"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ConfigError(f"MediaLimits.{name} must be a positive number or None, got {value!r}")
            if not math.isfinite(float(value)) or value <= 0:
                raise ConfigError(f"MediaLimits.{name} must be a positive finite number or None, got {value!r}")



def display_name(source: object) -> str:
    """Short display name of a media source (file name only, never a full path)."""
    try:
        return Path(os.fspath(source)).name or str(source)  # type: ignore[arg-type]
    except TypeError:
        return type(source).__name__


def check_rate(value: object, what: str) -> int:
    """Validate a sampling rate: a positive integer (integral floats accepted)."""
    if isinstance(value, bool):
        raise MediaError(f"{what} must be a positive integer number of samples per second, got {value!r}")
    if isinstance(value, (int, np.integer)):
        rate = int(value)
    elif isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        rate = int(value)
    else:
        raise MediaError(f"{what} must be a positive integer number of samples per second, got {value!r}")
    if rate <= 0:
        raise MediaError(f"{what} must be a positive integer number of samples per second, got {value!r}")
    return rate


def check_file(source: PathLike, limits: MediaLimits, kind: str) -> Path:
    """Check that ``source`` is an existing, non-empty regular file within the size limit.

    Args:
        source: Path to the file.
        limits: Guards; only ``max_file_bytes`` is used here.
        kind: ``"image"``, ``"audio"`` or ``"video"``, for messages.

    Returns:
        The path as a :class:`~pathlib.Path`.
    """
    try:
        path = Path(os.fspath(source))
    except TypeError as exc:
        raise MediaError(
            f"{kind} source must be a file path (str or os.PathLike), got {type(source).__name__}"
        ) from exc
    name = path.name or str(path)
    if not path.exists():
        raise MediaError(f"{kind} file '{name}' does not exist; pass the path of an existing {kind} file")
    if not path.is_file():
        raise MediaError(f"{kind} path '{name}' is not a regular file (a directory?); pass a {kind} file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise MediaError(f"{kind} file '{name}' cannot be read ({exc.strerror or exc})") from exc
    if size == 0:
        raise MediaError(f"{kind} file '{name}' is empty (0 bytes); pass a non-empty {kind} file")
    if limits.max_file_bytes is not None and size > limits.max_file_bytes:
        raise MediaError(
            f"{kind} file '{name}' is {_size(size)}, over the limit of {_size(limits.max_file_bytes)} "
            f"(the maximum file size setting, --max-file-mb); pass a smaller file or raise that setting"
        )
    return path


def check_seconds(seconds: float, limit: float | None, name: str, kind: str) -> None:
    """Raise if ``seconds`` exceeds ``limit`` (``max_audio_seconds`` / ``max_video_seconds``)."""
    if limit is not None and seconds > limit + EPS:
        raise MediaError(
            f"{kind} '{name}' is {seconds:.2f} s long, over the limit of {limit:g} s "
            f"(the maximum {kind} length setting, --max-{kind}-seconds); pass a shorter {kind} or raise that setting"
        )


def _size(n_bytes: int) -> str:
    """A file size for messages: bytes below one MB (2**20 bytes, as --max-file-mb counts), else MB."""
    return f"{n_bytes} bytes" if n_bytes < 2**20 else f"{n_bytes / 2**20:.1f} MB"

