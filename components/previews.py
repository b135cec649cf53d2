"""Media previews for the explorer: image data, waveform envelopes, video thumbnails, player URLs.

Computed with the engine's media loaders and cached per session (one preview per file version).
Only files inside the allowed roots (Gradio's upload folder, the app's assets, the session's own
folder) are ever read for a preview or handed to the browser: a trace loaded from JSON may name
any path, and those are shown as "not available" instead.
"""

from __future__ import annotations

import base64
import io
import logging
import math
import mimetypes
import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence
from urllib.parse import quote

import numpy as np

from omnitrace_core import MediaError, MediaLimits, TraceResult
from omnitrace_core.result import ItemInfo

from .explorer_view import MediaPreview

logger = logging.getLogger(__name__)

IMAGE_PREVIEW_SIDE = 480
THUMB_WIDTH = 112
MAX_THUMBS = 12
WAVE_COLUMNS = 240
PREVIEW_RATE = 8000  # Hz: plenty for a 240-column envelope


def data_uri(payload: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def _jpeg_uri(image, quality: int = 82) -> str:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return data_uri(buffer.getvalue(), "image/jpeg")


def is_within(path: Path, roots: Iterable[Path]) -> bool:
    """True if ``path`` (symlinks resolved) lies inside one of ``roots``."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    for root in roots:
        try:
            real.relative_to(Path(root).resolve())
            return True
        except (ValueError, OSError):
            continue
    return False


def peaks_of(waveform: np.ndarray, columns: int = WAVE_COLUMNS) -> tuple[float, ...]:
    """Envelope of a waveform: max |sample| per column, scaled so the loudest column is 1.

    Args:
        waveform: (N,) samples.
        columns: number of envelope values.
    """
    if waveform.size == 0:
        return ()
    columns = max(1, min(columns, waveform.size))
    edges = np.linspace(0, waveform.size, columns + 1).astype(int)
    env = np.maximum.reduceat(np.abs(waveform), edges[:-1])
    top = float(env.max())
    return tuple(round(float(v / top), 3) for v in env) if top > 0 else tuple(0.0 for _ in env)


class PreviewCache:
    """Builds and caches the previews of one session's media files.

    Args:
        roots: folders whose files may be previewed and served.
        limits: media guards applied when decoding.
        file_url: path -> URL the app serves it at; None embeds players as data URIs (report).
        max_embed_bytes: largest media file embedded as a data URI.
    """

    def __init__(self, roots: Sequence[Path], limits: MediaLimits = MediaLimits(), file_url=None,
                 max_embed_bytes: int = 25 * 1024 * 1024) -> None:
        self.roots = [Path(r) for r in roots]
        self.limits = limits
        self.file_url = file_url
        self.max_embed_bytes = max_embed_bytes
        self._cache: dict[tuple, MediaPreview] = {}

    def allowed(self, path: str | os.PathLike | None) -> bool:
        return path is not None and is_within(Path(path), self.roots)

    def previews(self, items: Sequence[ItemInfo]) -> dict[int, MediaPreview]:
        """Previews of every media item (item index -> preview)."""
        return {item.index: self.preview(item) for item in items if item.modality != "text"}

    def for_result(self, result: TraceResult | None) -> Mapping[int, MediaPreview]:
        return self.previews(result.items) if result is not None else {}

    def preview(self, item: ItemInfo) -> MediaPreview:
        if not item.path:
            return MediaPreview(kind=item.modality, note="media not embedded in this trace")
        path = Path(item.path)
        if not self.allowed(path):
            return MediaPreview(kind=item.modality, note=f"{path.name}: not available here")
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, item.modality, self.file_url is None)
        if key not in self._cache:
            try:
                self._cache[key] = self._build(item.modality, path)
            except (MediaError, OSError, ValueError) as exc:
                logger.warning("no preview for %s: %s", path.name, exc)
                self._cache[key] = MediaPreview(kind=item.modality, note=f"{path.name}: cannot be previewed")
        return self._cache[key]

    # -- builders ------------------------------------------------------------------------------
    def _player_src(self, path: Path) -> str | None:
        if self.file_url is not None:
            return self.file_url(path)
        size = path.stat().st_size
        if size > self.max_embed_bytes:
            return None
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return data_uri(path.read_bytes(), mime)

    def _build(self, kind: str, path: Path) -> MediaPreview:
        from omnitrace_core.media import load_audio, load_image, load_video

        if kind == "image":
            image = load_image(path, limits=self.limits)
            width, height = image.size
            image.thumbnail((IMAGE_PREVIEW_SIDE, IMAGE_PREVIEW_SIDE))
            return MediaPreview(kind="image", src=_jpeg_uri(image), width=width, height=height)
        if kind == "audio":
            clip = load_audio(path, sampling_rate=PREVIEW_RATE, limits=self.limits)
            src = self._player_src(path)
            note = "" if src else f"{path.name} is too large to embed; waveform only"
            return MediaPreview(kind="audio", src=src, duration=clip.duration, peaks=peaks_of(clip.waveform), note=note)
        if kind == "video":
            return self._video(path, load_video)
        raise ValueError(f"unknown media kind {kind!r}")

    def _video(self, path: Path, load_video) -> MediaPreview:
        from omnitrace_core.media import probe_duration
        from PIL import Image

        duration = max(probe_duration(path), 1e-3)
        count = max(2, min(MAX_THUMBS, math.ceil(duration)))
        # sample count frames at their centres: fps = count / duration puts frame k at k*duration/count
        clip = load_video(path, fps=count / duration, max_frames=count, with_audio=True,
                          sampling_rate=PREVIEW_RATE, limits=self.limits)
        thumbs = []
        for t, frame in zip(clip.timestamps, clip.frames):
            image = Image.fromarray(frame)
            image.thumbnail((THUMB_WIDTH, THUMB_WIDTH))
            thumbs.append((float(t), _jpeg_uri(image, quality=75)))
        peaks = peaks_of(clip.audio.waveform) if clip.audio is not None else ()
        src = self._player_src(path)
        note = "" if src else f"{path.name} is too large to embed; thumbnails only"
        return MediaPreview(kind="video", src=src, duration=clip.duration, thumbs=tuple(thumbs), peaks=peaks, note=note)


def gradio_file_url(path: Path) -> str:
    """The URL Gradio serves an allowed or uploaded file at."""
    return "/gradio_api/file=" + quote(str(Path(path).resolve()))
