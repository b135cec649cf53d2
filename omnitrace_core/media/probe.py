"""The duration of an audio or video file, read cheaply (no frames decoded where metadata or packets tell it)."""

from __future__ import annotations

from ..errors import MediaError
from .audio import decode_audio_file
from .container import open_container, scan_packets, stream_seconds, video_seconds
from .limits import ACCEPTED_AUDIO_FORMATS, ACCEPTED_VIDEO_FORMATS, MediaLimits, PathLike, check_file


def probe_duration(source: PathLike) -> float:
    """Duration in seconds of an audio or video file, read cheaply.

    A video's duration is the one :func:`load_video` reports (see :func:`video_seconds`):
    the longer of its header's and its frames' time span, read from packet timestamps
    without decoding. An audio file's comes from its metadata, else its packet
    timestamps, else decoding.

    Args:
        source: Path to an audio or video file.

    Returns:
        Duration in seconds (float, >= 0).

    Raises:
        MediaError: Missing/empty file, unreadable container, or no audio/video
            stream.
    """
    path = check_file(source, MediaLimits(max_file_bytes=None), "media")
    name = path.name
    accepted = f"{ACCEPTED_VIDEO_FORMATS}; or audio: {ACCEPTED_AUDIO_FORMATS}"
    container = open_container(path, "media", accepted)
    try:
        streams = list(container.streams.video) + list(container.streams.audio)
        if not streams:
            raise MediaError(f"media file '{name}' has no audio or video stream; accepted: {accepted}")
        if container.streams.video:
            return float(video_seconds(path, container.streams.video[0], container))
        seconds = stream_seconds(streams[0], container)
    finally:
        container.close()
    if seconds is None:
        seconds = scan_packets(path, "audio")
    if seconds is None:
        unlimited = MediaLimits(None, None, None, None)
        seconds = decode_audio_file(path, 16000, unlimited).shape[0] / 16000.0
    return float(seconds)
