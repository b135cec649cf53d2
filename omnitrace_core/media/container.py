"""Opening media containers with PyAV and reading their timing without decoding what they hold.

Every PyAV failure becomes a :class:`~omnitrace_core.errors.MediaError` (:func:`open_container`,
:data:`AV_ERRORS`, :func:`why`); durations come from stream metadata, packet timestamps or, as a
last resort, decoding (:func:`video_seconds`, the one measure both ``probe_duration`` and
``load_video`` use).
"""

from __future__ import annotations

import logging
import math
from fractions import Fraction
from pathlib import Path

import av
import av.error

from ..errors import MediaError
from .limits import ACCEPTED_VIDEO_FORMATS

logger = logging.getLogger(__name__)

# Errors raised by PyAV/FFmpeg while opening, demuxing or decoding. InvalidDataError
# is a ValueError; others are plain FFmpegError/OSError. MediaError is re-raised
# before these handlers run (it is a ValueError too).
AV_ERRORS: tuple[type[BaseException], ...] = (
    av.error.FFmpegError,
    OSError,
    ValueError,
    EOFError,
    RuntimeError,
)


def why(exc: BaseException, path: Path | None = None) -> str:
    """A short reason from a library exception, with any full path reduced to the file name."""
    text = getattr(exc, "strerror", None) if isinstance(exc, av.error.FFmpegError) else None
    text = str(text or exc or type(exc).__name__)
    if path is not None:
        text = text.replace(str(path), path.name)
    return text


def video_seconds(path: Path, stream: "av.video.stream.VideoStream",
                   container: "av.container.InputContainer") -> float:
    """Seconds of a video stream, the one duration both :func:`probe_duration` and :func:`load_video` use.

    The header's duration, or the time span of the frames' packet timestamps where that is
    longer: variable-frame-rate files often under-report in the header (one with frames until
    3.9 s said 2.3 s), and decoding shows every frame up to its end. Only when neither is
    known is the stream decoded to measure it.
    """
    known = [s for s in (stream_seconds(stream, container), scan_packets(path, "video")) if s is not None]
    return max(known) if known else _decode_seconds(path, path.name)


def open_container(path: Path, kind: str, accepted: str) -> "av.container.InputContainer":
    """``av.open`` wrapped so that failures become :class:`MediaError`."""
    try:
        return av.open(str(path), mode="r")
    except AV_ERRORS as exc:
        raise MediaError(
            f"{kind} file '{path.name}' could not be opened (not a media file, or corrupt/truncated: "
            f"{why(exc, path)}); accepted: {accepted}"
        ) from exc


def stream_seconds(stream: "av.stream.Stream", container: "av.container.InputContainer") -> float | None:
    """Duration from metadata: the stream's, else the container's; ``None`` if unknown."""
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    return None


def native_fps(stream: "av.video.stream.VideoStream") -> float | None:
    """The container's native frame rate (average, else guessed/base), or ``None``."""
    for attr in ("average_rate", "guessed_rate", "base_rate"):
        value = getattr(stream, attr, None)
        if value:
            value = float(Fraction(value))
            if math.isfinite(value) and 0 < value < 10_000:
                return value
    return None


def scan_packets(path: Path, kind: str) -> float | None:
    """Duration from packet timestamps without decoding: (last end - first start).

    A video packet without a duration lasts one native frame period, as a decoded frame does
    in :class:`_FrameSampler`.
    """
    try:
        with av.open(str(path), mode="r") as container:
            streams = container.streams.video if kind == "video" else container.streams.audio
            if not streams:
                return None
            stream = streams[0]
            tb = stream.time_base
            if tb is None:
                return None
            default = 0.0
            if kind == "video":
                default = 1.0 / (native_fps(stream) or 25.0)
            first = last = None
            for packet in container.demux(stream):
                if packet.pts is None:
                    continue
                start = float(packet.pts * tb)
                end = start + (float(packet.duration * tb) if packet.duration else default)
                first = start if first is None else min(first, start)
                last = end if last is None else max(last, end)
    except AV_ERRORS as exc:
        logger.debug("packet scan of %s failed: %s", path.name, exc)
        return None
    if first is None or last is None or last <= first:
        return None
    return last - first


def _decode_seconds(path: Path, name: str) -> float:
    """Video duration by decoding every frame: last frame time - first + one average period."""
    first = last = None
    count = 0
    container = open_container(path, "video", ACCEPTED_VIDEO_FORMATS)
    try:
        for frame in container.decode(video=0):
            count += 1
            if frame.time is not None:
                t = float(frame.time)
                first = t if first is None else min(first, t)
                last = t if last is None else max(last, t)
    except AV_ERRORS as exc:
        raise MediaError(
            f"video file '{name}' could not be decoded ({why(exc, path)}); accepted: {ACCEPTED_VIDEO_FORMATS}"
        ) from exc
    finally:
        container.close()
    if count == 0:
        raise MediaError(
            f"video file '{name}' has no decodable frames (corrupt or truncated video stream); "
            f"accepted: {ACCEPTED_VIDEO_FORMATS}"
        )
    if first is None or last is None or count < 2:
        return 0.0
    span = last - first
    return span + span / (count - 1)  # the last frame lasts one average frame period
