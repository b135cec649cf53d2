"""Load and validate media (images, audio, video) into plain arrays.

This module has one responsibility: turn a user-supplied media reference (a path,
an in-memory image or a waveform) into validated, fully decoded plain data --
an RGB :class:`PIL.Image.Image`, an :class:`AudioClip` (mono float32 waveform) or a
:class:`VideoClip` (uint8 frames sampled uniformly in time, plus the audio track).
It knows nothing about models or processors.

Audio and video are decoded with PyAV (its bundled FFmpeg); neither torchcodec nor
a system FFmpeg is needed. Video frames are picked by their real presentation
timestamps (``pts * time_base``), never by an assumed frame rate, so variable
frame rate files and odd rates (12.5 fps, 29.97 fps) sample correctly.

Every problem with an input -- missing file, corrupt bytes, no usable stream, a
configured size or duration limit exceeded, a bad sampling rate -- raises
:class:`~omnitrace_core.errors.MediaError` whose message names the file, says what
was wrong and what is accepted. Raw Pillow / PyAV errors never escape.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from omnitrace_core.errors import ConfigError, MediaError

try:  # PyAV is a hard requirement, but keep the import error readable.
    import av
    import av.error
except ImportError as _exc:  # pragma: no cover - exercised only without PyAV
    from omnitrace_core.errors import MissingDependencyError

    raise MissingDependencyError(
        "omnitrace_core.media needs PyAV to decode audio and video: pip install 'av>=14'"
    ) from _exc

__all__ = [
    "AudioClip",
    "MediaLimits",
    "VideoClip",
    "load_audio",
    "load_image",
    "load_video",
    "probe_duration",
]

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

ACCEPTED_IMAGE_FORMATS = "PNG, JPEG, GIF, BMP, TIFF, WebP (any format Pillow can read)"
ACCEPTED_AUDIO_FORMATS = (
    "WAV, FLAC, OGG, MP3, M4A/AAC, or the audio track of an MP4/MKV/WebM file "
    "(any container PyAV/FFmpeg can read)"
)
ACCEPTED_VIDEO_FORMATS = "MP4, MKV, WebM, MOV, AVI (any container PyAV/FFmpeg can read with a video stream)"

# Errors raised by PyAV/FFmpeg while opening, demuxing or decoding. InvalidDataError
# is a ValueError; others are plain FFmpegError/OSError. MediaError is re-raised
# before these handlers run (it is a ValueError too).
_AV_ERRORS: tuple[type[BaseException], ...] = (
    av.error.FFmpegError,
    OSError,
    ValueError,
    EOFError,
    RuntimeError,
)

_EPS = 1e-6  # seconds; tolerance when comparing timestamps
_CHUNK = 1 << 16  # samples per frame when feeding numpy audio to the resampler


# --------------------------------------------------------------------------- types


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


@dataclass(frozen=True, eq=False)
class AudioClip:
    """A mono waveform with its sampling rate.

    Attributes:
        waveform: ``(N,)`` float32 samples in ``[-1, 1]``.
        sampling_rate: Samples per second (positive int).
    """

    waveform: np.ndarray
    sampling_rate: int

    def __post_init__(self) -> None:
        if not isinstance(self.waveform, np.ndarray) or self.waveform.ndim != 1:
            shape = getattr(self.waveform, "shape", type(self.waveform).__name__)
            raise MediaError(f"AudioClip.waveform must be a 1-D numpy array (N,), got {shape}")
        _check_rate(self.sampling_rate, "AudioClip.sampling_rate")

    @property
    def duration(self) -> float:
        """Length in seconds (``N / sampling_rate``)."""
        return self.waveform.shape[0] / float(self.sampling_rate)


@dataclass(frozen=True, eq=False)
class VideoClip:
    """Frames sampled uniformly in time from a video, plus its audio track.

    Attributes:
        frames: ``(T, H, W, 3)`` uint8 RGB; frame ``k`` is the picture the video
            shows at time ``k / fps`` seconds from its first frame.
        fps: Sampling rate of ``frames`` in frames per second of video time.
        duration: Seconds of the whole video stream.
        audio: The video's audio track as mono float32 at the requested rate,
            aligned so sample 0 is at video time 0; ``None`` if the video has no
            audio or it was not requested.
        source_fps: The container's native (average) frame rate.
        has_audio_track: Whether the file has an audio stream, decoded or not (``audio``
            is ``None`` when it was not requested).
    """

    frames: np.ndarray
    fps: float
    duration: float
    audio: AudioClip | None
    source_fps: float
    has_audio_track: bool = False

    @property
    def timestamps(self) -> np.ndarray:
        """``(T,)`` float64 video time in seconds of each sampled frame (``k / fps``)."""
        return np.arange(self.frames.shape[0], dtype=np.float64) / self.fps


# ------------------------------------------------------------------ validation


def _name(source: object) -> str:
    """Short display name of a media source (file name only, never a full path)."""
    try:
        return Path(os.fspath(source)).name or str(source)  # type: ignore[arg-type]
    except TypeError:
        return type(source).__name__


def _why(exc: BaseException, path: Path | None = None) -> str:
    """A short reason from a library exception, with any full path reduced to the file name."""
    text = getattr(exc, "strerror", None) if isinstance(exc, av.error.FFmpegError) else None
    text = str(text or exc or type(exc).__name__)
    if path is not None:
        text = text.replace(str(path), path.name)
    return text


def _check_rate(value: object, what: str) -> int:
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


def _check_file(source: PathLike, limits: MediaLimits, kind: str) -> Path:
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


def _check_seconds(seconds: float, limit: float | None, name: str, kind: str) -> None:
    """Raise if ``seconds`` exceeds ``limit`` (``max_audio_seconds`` / ``max_video_seconds``)."""
    if limit is not None and seconds > limit + _EPS:
        raise MediaError(
            f"{kind} '{name}' is {seconds:.2f} s long, over the limit of {limit:g} s "
            f"(the maximum {kind} length setting, --max-{kind}-seconds); pass a shorter {kind} or raise that setting"
        )


def _size(n_bytes: int) -> str:
    """A file size for messages: bytes below one MB (2**20 bytes, as --max-file-mb counts), else MB."""
    return f"{n_bytes} bytes" if n_bytes < 2**20 else f"{n_bytes / 2**20:.1f} MB"


# ----------------------------------------------------------------------- image


def load_image(source: PathLike | Image.Image, limits: MediaLimits = MediaLimits()) -> Image.Image:
    """Load an image as a fully decoded RGB :class:`PIL.Image.Image`.

    EXIF orientation is applied; transparent images are composited onto white;
    for multi-frame images (GIF, TIFF) the first frame is used.

    Args:
        source: Path to an image file, or an already opened PIL image.
        limits: Size guards (``max_file_bytes``, ``max_image_pixels``).

    Returns:
        An RGB image, size ``(W, H)``, with its pixel data loaded (not lazy; the
        file is closed).

    Raises:
        MediaError: Missing/empty/oversized file, undecodable bytes, or more
            pixels than ``limits.max_image_pixels``.
    """
    if isinstance(source, Image.Image):
        name = _name(getattr(source, "filename", "") or "<PIL image>")
        _check_pixels(source, limits, name)
        try:
            source.load()
            return _to_rgb(source, name)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise MediaError(
                f"image '{name}' could not be decoded ({exc}); accepted formats: {ACCEPTED_IMAGE_FORMATS}"
            ) from exc

    path = _check_file(source, limits, "image")
    name = path.name
    try:
        with Image.open(path) as img:
            _check_pixels(img, limits, name)
            img.load()
            out = _to_rgb(img, name)
    except MediaError:
        raise
    except Image.DecompressionBombError as exc:
        raise MediaError(
            f"image '{name}' has more pixels than can be decoded safely ({_why(exc, path)}); "
            f"pass a smaller image"
        ) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise MediaError(
            f"image '{name}' could not be decoded (not an image, or corrupt/truncated: {_why(exc, path)}); "
            f"accepted formats: {ACCEPTED_IMAGE_FORMATS}"
        ) from exc
    logger.debug("loaded image %s: %dx%d", name, out.width, out.height)
    return out


def _check_pixels(img: Image.Image, limits: MediaLimits, name: str) -> None:
    """Reject images with more than ``limits.max_image_pixels`` pixels (checked before decoding)."""
    width, height = img.size
    if width <= 0 or height <= 0:
        raise MediaError(f"image '{name}' has no pixels ({width}x{height}); pass a non-empty image")
    if limits.max_image_pixels is not None and width * height > limits.max_image_pixels:
        raise MediaError(
            f"image '{name}' is {width}x{height} = {width * height} pixels, over the limit of "
            f"{limits.max_image_pixels} pixels (the maximum image size setting, --max-image-pixels); "
            f"pass a smaller image or raise that setting"
        )


#: Pillow's modes that hold one channel of more than 8 bits, which ``convert("RGB")`` clips at 255
#: instead of scaling (a 16-bit grayscale PNG would come out almost white).
_DEEP_GRAY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def _to_rgb(img: Image.Image, name: str) -> Image.Image:
    """Return an RGB copy of a loaded image of any Pillow mode.

    EXIF orientation is applied; transparency (an alpha band, a palette's transparent
    entries, a transparent colour key) is composited onto white. Grayscale deeper than
    8 bits is scaled to 8 bits by :func:`_deep_gray_to_l`; every other mode (1, L, P,
    CMYK, YCbCr, LAB, HSV, premultiplied alpha ...) goes through Pillow's own conversion.
    """
    try:
        img = ImageOps.exif_transpose(img) or img
    except Exception as exc:  # noqa: BLE001 - malformed EXIF must not make a good image unreadable
        logger.debug("ignoring unreadable EXIF orientation: %s", exc)
    if img.mode in _DEEP_GRAY_MODES:
        values = np.asarray(img)
        gray = _deep_gray_to_l(values, img.mode, name)
        key = img.info.get("transparency")
        if not isinstance(key, (int, float)):
            return gray.convert("RGB")
        alpha = Image.fromarray(np.where(values == key, 0, 255).astype(np.uint8), "L")
        img = Image.merge("LA", (gray, alpha))
    if img.mode == "La":  # premultiplied; Pillow converts it to RGBA only through LA
        img = img.convert("LA")
    if img.has_transparency_data:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")  # a detached copy even when already RGB


def _deep_gray_to_l(values: np.ndarray, mode: str, name: str) -> Image.Image:
    """Scale one channel deeper than 8 bits to an 8-bit ``L`` image.

    16-bit modes (``I;16*``) map 0..65535 onto 0..255. ``I`` (32-bit integers) and ``F``
    (32-bit floats) carry no nominal range, so it is read from the values: integers within
    0..255 are 8-bit data and within 0..65535 16-bit data; floats within [0, 1] are
    intensities and within [0, 255] 8-bit data; anything else is stretched from its minimum
    to its maximum.
    """
    values = values.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise MediaError(f"image '{name}' holds NaN or infinite pixel values; pass an image of finite values")
    low, high = float(values.min()), float(values.max())
    if mode.startswith("I;16") or (mode == "I" and low >= 0 and 255 < high <= 65535):
        scaled = values / 257.0
    elif mode == "F" and low >= 0 and high <= 1:
        scaled = values * 255.0
    elif low >= 0 and high <= 255:
        scaled = values
    else:
        logger.info("image %s: values span %g..%g (mode %s); stretching them to 0..255", name, low, high, mode)
        if high > low:
            scaled = (values - low) * (255.0 / (high - low))
        else:  # one value, below 0 or above the 8/16-bit range: black or white
            scaled = np.full_like(values, 0.0 if high < 0 else 255.0)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")


# ----------------------------------------------------------------------- audio


class _AudioAccumulator:
    """Streams decoded audio frames into a mono float32 waveform at a target rate.

    Each frame is converted to planar float at its native rate and layout, averaged
    over channels (a true mean, unlike FFmpeg's mono downmix which weights stereo by
    1/sqrt(2) each), then resampled to ``rate`` with libswresample. Only the
    resampled output is kept.
    """

    def __init__(self, rate: int, name: str, max_seconds: float | None, kind: str = "audio") -> None:
        self.rate = rate
        self.name = name
        self.max_seconds = max_seconds
        self.kind = kind
        self.chunks: list[np.ndarray] = []
        self.native_samples = 0
        self.native_rate: int | None = None
        self.first_time: float | None = None  # seconds, pts of the first decoded frame
        self._to_float: av.AudioResampler | None = None
        self._float_key: tuple | None = None
        self._resampler: av.AudioResampler | None = None

    def add_frame(self, frame: av.AudioFrame) -> None:
        """Add one decoded frame (any sample format / layout / rate)."""
        if frame.samples == 0:
            return
        if self.first_time is None and frame.time is not None:
            self.first_time = float(frame.time)
        key = (frame.format.name, frame.layout.name, frame.sample_rate)
        if key != self._float_key:  # (re)create when the stream changes parameters mid-way
            self._flush_float()
            self._to_float = av.AudioResampler(format="fltp")
            self._float_key = key
        for converted in self._to_float.resample(frame):
            planes = converted.to_ndarray()  # (C, n) float32
            self.add_mono(planes.mean(axis=0, dtype=np.float32), converted.sample_rate)

    def _flush_float(self) -> None:
        if self._to_float is not None:
            for converted in self._to_float.resample(None):
                planes = converted.to_ndarray()
                self.add_mono(planes.mean(axis=0, dtype=np.float32), converted.sample_rate)
            self._to_float = None

    def add_mono(self, samples: np.ndarray, native_rate: int) -> None:
        """Add ``(n,)`` float32 mono samples at ``native_rate``."""
        if samples.size == 0:
            return
        if self.native_rate is not None and native_rate != self.native_rate:
            self._flush_resampler()
        self.native_rate = native_rate
        self.native_samples += samples.shape[0]
        if self.max_seconds is not None:
            _check_seconds(self.native_samples / native_rate, self.max_seconds, self.name, self.kind)
        if native_rate == self.rate:
            self.chunks.append(np.ascontiguousarray(samples, dtype=np.float32))
            return
        if self._resampler is None:
            self._resampler = av.AudioResampler(format="flt", layout="mono", rate=self.rate)
        for start in range(0, samples.shape[0], _CHUNK):
            part = np.ascontiguousarray(samples[start : start + _CHUNK], dtype=np.float32)[None, :]
            frame = av.AudioFrame.from_ndarray(part, format="flt", layout="mono")
            frame.sample_rate = native_rate
            for out in self._resampler.resample(frame):
                self.chunks.append(out.to_ndarray().reshape(-1))

    def _flush_resampler(self) -> None:
        if self._resampler is not None:
            for out in self._resampler.resample(None):
                self.chunks.append(out.to_ndarray().reshape(-1))
            self._resampler = None

    def finish(self) -> np.ndarray:
        """Flush and return the ``(N,)`` float32 waveform clipped to ``[-1, 1]``."""
        self._flush_float()
        self._flush_resampler()
        if not self.chunks:
            return np.zeros(0, dtype=np.float32)
        wave = np.concatenate(self.chunks).astype(np.float32, copy=False)
        self.chunks = []
        np.clip(wave, -1.0, 1.0, out=wave)  # resampling may overshoot full scale slightly
        return wave


def load_audio(
    source: PathLike | AudioClip | tuple[np.ndarray, int],
    sampling_rate: int = 16000,
    limits: MediaLimits = MediaLimits(),
) -> AudioClip:
    """Load audio as a mono float32 waveform at ``sampling_rate``.

    Args:
        source: A path to any file PyAV can read (WAV, FLAC, OGG, MP3, M4A, or the
            first audio track of MP4/MKV/WebM), an :class:`AudioClip`, or a tuple
            ``(waveform, rate)`` with ``waveform`` of shape ``(N,)``, ``(N, C)`` or
            ``(C, N)`` (the smaller axis is taken as channels). Integer waveforms
            (int16/int32/uint8) are scaled to ``[-1, 1]``; float waveforms are
            clipped to it.
        sampling_rate: Target rate in Hz (positive integer).
        limits: Guards (``max_file_bytes``, ``max_audio_seconds``).

    Returns:
        An :class:`AudioClip` whose waveform is ``(N,)`` float32 mono in ``[-1, 1]``
        at ``sampling_rate``.

    Raises:
        MediaError: Bad sampling rate; missing/empty/oversized file; no audio
            stream; undecodable audio; zero samples; longer than
            ``limits.max_audio_seconds``.
    """
    rate = _check_rate(sampling_rate, "sampling_rate")
    if isinstance(source, AudioClip):
        return _audio_from_array(source.waveform, source.sampling_rate, rate, limits, "<AudioClip>")
    if isinstance(source, tuple):
        if len(source) != 2:
            raise MediaError(
                f"audio tuple must be (waveform, sampling_rate), got a tuple of {len(source)} items"
            )
        waveform, src_rate = source
        return _audio_from_array(waveform, src_rate, rate, limits, "<waveform>")
    if isinstance(source, np.ndarray):
        raise MediaError(
            "a bare numpy waveform has no sampling rate; pass (waveform, sampling_rate) or an AudioClip"
        )

    path = _check_file(source, limits, "audio")
    name = path.name
    wave = _decode_audio_file(path, rate, limits)
    logger.debug("loaded audio %s: %d samples at %d Hz", name, wave.shape[0], rate)
    return AudioClip(wave, rate)


def _decode_audio_file(path: Path, rate: int, limits: MediaLimits) -> np.ndarray:
    """Decode the first audio stream of ``path`` to ``(N,)`` float32 mono at ``rate``."""
    name = path.name
    container = _open_container(path, "audio", ACCEPTED_AUDIO_FORMATS)
    try:
        if not container.streams.audio:
            raise MediaError(
                f"audio file '{name}' has no audio stream; accepted: {ACCEPTED_AUDIO_FORMATS}"
            )
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        meta = _stream_seconds(stream, container)
        if meta is not None:
            _check_seconds(meta, limits.max_audio_seconds, name, "audio")
        acc = _AudioAccumulator(rate, name, limits.max_audio_seconds)
        bad = 0
        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError:
                    bad += 1
                    continue
                for frame in frames:
                    acc.add_frame(frame)
            wave = acc.finish()
        except MediaError:
            raise
        except _AV_ERRORS as exc:
            raise MediaError(
                f"audio file '{name}' could not be decoded ({_why(exc, path)}); accepted: {ACCEPTED_AUDIO_FORMATS}"
            ) from exc
    finally:
        container.close()
    if bad:
        logger.warning("audio %s: skipped %d undecodable packet(s)", name, bad)
    if wave.shape[0] == 0:
        raise MediaError(
            f"audio file '{name}' decodes to zero samples (empty or undecodable audio); "
            f"pass a non-empty audio file; accepted: {ACCEPTED_AUDIO_FORMATS}"
        )
    return wave


def _audio_from_array(
    waveform: object, src_rate: object, rate: int, limits: MediaLimits, name: str
) -> AudioClip:
    """Validate, scale, downmix and resample an in-memory waveform."""
    src = _check_rate(src_rate, "the waveform's sampling rate")
    try:
        arr = np.asarray(waveform)
    except (TypeError, ValueError) as exc:
        raise MediaError(f"audio {name} is not an array of samples ({exc})") from exc
    if arr.dtype.kind not in "fiu":
        raise MediaError(
            f"audio {name} must hold numeric samples (float in [-1, 1] or int16/int32 PCM), "
            f"got dtype {arr.dtype}"
        )
    if arr.ndim not in (1, 2):
        raise MediaError(f"audio {name} must have shape (N,), (N, C) or (C, N), got {arr.shape}")
    if arr.dtype.kind in "iu":
        arr = _scale_int(arr, arr.dtype)
    if arr.ndim == 2:  # the smaller axis holds the channels; mono = mean over channels
        arr = arr.mean(axis=0 if arr.shape[0] <= arr.shape[1] else 1, dtype=np.float64)
    if arr.shape[0] == 0:
        raise MediaError(f"audio {name} has zero samples; pass a non-empty waveform")
    arr = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(arr)):
        raise MediaError(f"audio {name} contains NaN or infinite samples; pass finite samples in [-1, 1]")
    _check_seconds(arr.shape[0] / src, limits.max_audio_seconds, name, "audio")
    peak = float(np.max(np.abs(arr)))
    if peak > 1.0 + 1e-3:
        logger.warning("audio %s peaks at %.3f, outside [-1, 1]; clipping", name, peak)
    if src == rate:
        return AudioClip(np.clip(arr, -1.0, 1.0).astype(np.float32, copy=False), rate)
    acc = _AudioAccumulator(rate, name, limits.max_audio_seconds)
    try:
        acc.add_mono(arr, src)
        wave = acc.finish()
    except MediaError:
        raise
    except _AV_ERRORS as exc:
        raise MediaError(f"audio {name} could not be resampled from {src} Hz to {rate} Hz ({exc})") from exc
    if wave.shape[0] == 0:
        raise MediaError(f"audio {name} resamples to zero samples at {rate} Hz; pass a longer waveform")
    return AudioClip(wave, rate)


def _scale_int(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Scale integer PCM samples of ``dtype`` to float64 in ``[-1, 1]``."""
    info = np.iinfo(dtype)
    arr = arr.astype(np.float64)
    if info.min == 0:  # unsigned PCM (e.g. uint8) is centred at half scale
        mid = (info.max + 1) / 2.0
        return (arr - mid) / mid
    return arr / float(-info.min)


# ----------------------------------------------------------------------- video


def load_video(
    source: PathLike,
    fps: float = 2.0,
    max_frames: int = 768,
    with_audio: bool = True,
    sampling_rate: int = 16000,
    limits: MediaLimits = MediaLimits(),
) -> VideoClip:
    """Decode a video and sample its frames uniformly in time.

    Sample ``k`` is the frame the video shows at time ``k / fps`` from its first
    frame, i.e. the last frame whose presentation time (``pts * time_base``) is
    ``<=`` that time. Samples are taken while decoding; native frames are not
    kept. If ``duration * fps > max_frames`` the rate is lowered to
    ``max_frames / duration`` so ``max_frames`` frames span the video, and that
    rate is reported in :attr:`VideoClip.fps`. At least one frame is returned
    for any decodable video.

    Args:
        source: Path to a video file.
        fps: Requested sampling rate in frames per second of video time (> 0).
        max_frames: Upper bound on the number of sampled frames (>= 1).
        with_audio: Also decode the first audio track (if any).
        sampling_rate: Rate of the returned audio in Hz (positive integer).
        limits: Guards (``max_file_bytes``, ``max_video_seconds``).

    Returns:
        A :class:`VideoClip` with ``frames`` of shape ``(T, H, W, 3)`` uint8,
        ``T = max(1, min(max_frames, ceil(duration * fps)))``.

    Raises:
        ConfigError: ``fps`` not a positive finite number or ``max_frames`` < 1.
        MediaError: Bad sampling rate; missing/empty/oversized/corrupt file; no
            video stream; no decodable frames; longer than
            ``limits.max_video_seconds``.
    """
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.integer, np.floating)) or not (
        math.isfinite(float(fps)) and fps > 0
    ):
        raise ConfigError(f"fps must be a positive finite number of frames per second, got {fps!r}")
    if isinstance(max_frames, bool) or not isinstance(max_frames, (int, np.integer)) or max_frames < 1:
        raise ConfigError(f"max_frames must be a positive integer, got {max_frames!r}")
    rate = _check_rate(sampling_rate, "sampling_rate") if with_audio else 0
    path = _check_file(source, limits, "video")
    name = path.name

    container = _open_container(path, "video", ACCEPTED_VIDEO_FORMATS)
    try:
        if not container.streams.video:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
            raise MediaError(
                f"video file '{name}' has no video stream (found: {kinds}); a sound recording "
                f"goes in as audio, not video; accepted video: {ACCEPTED_VIDEO_FORMATS}"
            )
        vstream = container.streams.video[0]
        astream = container.streams.audio[0] if (with_audio and container.streams.audio) else None
        duration = _video_seconds(path, vstream, container)
        _check_seconds(duration, limits.max_video_seconds, name, "video")
        source_fps = _native_fps(vstream)
        clip = _decode_video(container, vstream, astream, name, float(fps), int(max_frames),
                             duration, source_fps, rate, limits)
    finally:
        container.close()
    logger.debug(
        "loaded video %s: %d frames %s at %.4g fps (source %.4g fps, %.3f s), audio=%s",
        name, clip.frames.shape[0], clip.frames.shape[1:3], clip.fps, clip.source_fps,
        clip.duration, None if clip.audio is None else f"{clip.audio.duration:.3f} s",
    )
    return clip


def _decode_video(
    container: "av.container.InputContainer",
    vstream: "av.video.stream.VideoStream",
    astream: "av.audio.stream.AudioStream | None",
    name: str,
    fps: float,
    max_frames: int,
    duration: float | None,
    source_fps: float | None,
    rate: int,
    limits: MediaLimits,
) -> VideoClip:
    """Single demux pass over video (+ audio) sampling frames at their true times."""
    vstream.thread_type = "AUTO"
    if astream is not None:
        astream.thread_type = "AUTO"
    if duration * fps > max_frames:
        fps = max_frames / duration
    n_planned = _n_samples(duration, fps, max_frames)

    acc = _AudioAccumulator(rate, name, None, kind="video") if astream is not None else None
    sampler = _FrameSampler(n_planned, max_frames, fps, source_fps, name)
    streams = [vstream] + ([astream] if astream is not None else [])
    bad = 0
    try:
        for packet in container.demux(*streams):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                bad += 1
                continue
            if packet.stream.type == "video":
                for frame in frames:
                    sampler.add(frame)
                    if sampler.last_time is not None:
                        _check_seconds(sampler.last_time, limits.max_video_seconds, name, "video")
            elif acc is not None:
                for frame in frames:
                    acc.add_frame(frame)
        if sampler.n_decoded and sampler.end_time < 0.9 * duration - 0.5:
            logger.warning(
                "video %s: frames end at %.2f s but the container says %.2f s (truncated file?); "
                "later sample times repeat the last frame", name, sampler.end_time, duration,
            )
        # Metadata may under-report (e.g. VFR MP4s): the stream lasts at least until
        # its last frame ends.
        duration = max(duration, sampler.end_time)
        frames_out = sampler.finish(_n_samples(duration, fps, max_frames))
        wave = acc.finish() if acc is not None else None
    except MediaError:
        raise
    except _AV_ERRORS as exc:
        raise MediaError(
            f"video file '{name}' could not be decoded ({_why(exc)}); accepted: {ACCEPTED_VIDEO_FORMATS}"
        ) from exc
    if bad:
        logger.warning("video %s: skipped %d undecodable packet(s)", name, bad)

    audio = None
    if wave is not None and acc is not None:
        if acc.first_time is not None and sampler.origin is not None:
            wave = _align(wave, acc.first_time - sampler.origin, rate)
        if wave.shape[0] > 0:
            audio = AudioClip(wave, rate)
        else:
            logger.warning("video %s: audio track decodes to zero samples; returning audio=None", name)
    if source_fps is None:
        source_fps = sampler.n_decoded / duration if duration > 0 else fps
    return VideoClip(frames=frames_out, fps=float(fps), duration=float(duration), audio=audio,
                     source_fps=float(source_fps), has_audio_track=bool(container.streams.audio))


def _n_samples(duration: float, fps: float, max_frames: int) -> int:
    """Number of sample times ``k / fps`` inside ``[0, duration)``, in ``[1, max_frames]``."""
    return max(1, min(max_frames, math.ceil(duration * fps - _EPS)))


class _FrameSampler:
    """Picks, while decoding, the frame shown at each sample time ``k / fps``.

    A frame is shown from its presentation time until the next frame's. Only the
    previous decoded frame (a PyAV frame, converted to RGB only when sampled) and
    the ``(T, H, W, 3)`` output buffer are held.
    """

    def __init__(self, n_planned: int, max_frames: int, fps: float, source_fps: float | None,
                 name: str) -> None:
        self.capacity = n_planned
        self.max_frames = max_frames
        self.fps = fps
        self.step = 1.0 / source_fps if source_fps else 1.0 / 25.0
        self.name = name
        self.k = 0
        self.out: np.ndarray | None = None
        self.origin: float | None = None  # seconds (absolute), time of the first frame
        self.last_time: float | None = None  # seconds from origin, latest frame start
        self.end_time = 0.0  # seconds from origin, when the latest frame stops showing
        self.n_decoded = 0
        self._prev: av.VideoFrame | None = None
        self._prev_rgb: np.ndarray | None = None

    def _time(self, frame: av.VideoFrame) -> float:
        t = frame.time
        if t is None:  # no timestamp: continue from the previous one at the native rate
            return (self.last_time + self.step) if self.last_time is not None else 0.0
        t = float(t)
        if self.origin is None:
            self.origin = t
        return t - self.origin

    def add(self, frame: av.VideoFrame) -> None:
        """Consume one decoded frame (in presentation order)."""
        t = self._time(frame)
        if self.last_time is not None and t < self.last_time - _EPS:
            logger.debug("video %s: non-monotonic frame time %.4f after %.4f", self.name, t, self.last_time)
        self.n_decoded += 1
        period = self.step
        if frame.duration and frame.time_base is not None:
            period = float(frame.duration * frame.time_base)
        self.end_time = max(self.end_time, t + period)
        if self._prev is not None:
            # every sample time strictly before this frame's time shows the previous frame
            while self.k < self.max_frames and self.k / self.fps < t - _EPS:
                self._emit(self._prev)
            self._prev_rgb = None
        self._prev = frame
        self.last_time = t if self.last_time is None else max(t, self.last_time)

    def _emit(self, frame: av.VideoFrame) -> None:
        if self._prev_rgb is None:
            if self.out is None:
                rgb = frame.to_ndarray(format="rgb24")
                self.out = np.empty((self.capacity,) + rgb.shape, dtype=np.uint8)
            else:
                h, w = self.out.shape[1:3]
                if (frame.height, frame.width) != (h, w):  # resolution change mid-stream
                    rgb = frame.to_ndarray(format="rgb24", width=w, height=h)
                else:
                    rgb = frame.to_ndarray(format="rgb24")
            self._prev_rgb = rgb
        if self.k >= self.out.shape[0]:  # metadata under-reported the duration: grow
            grown = min(self.max_frames, max(self.k + 1, 2 * self.out.shape[0]))
            buf = np.empty((grown,) + self.out.shape[1:], dtype=np.uint8)
            buf[: self.k] = self.out[: self.k]
            self.out = buf
        self.out[self.k] = self._prev_rgb
        self.k += 1

    def finish(self, n_samples: int) -> np.ndarray:
        """Fill the sample times up to ``n_samples`` with the last frame; return ``(T, H, W, 3)``."""
        if self._prev is None:
            raise MediaError(
                f"video file '{self.name}' has no decodable frames (corrupt or truncated video stream); "
                f"accepted: {ACCEPTED_VIDEO_FORMATS}"
            )
        while self.k < n_samples:  # remaining sample times show the last frame
            self._emit(self._prev)
        self._prev = None
        self._prev_rgb = None
        assert self.out is not None
        return self.out[: self.k] if self.k < self.out.shape[0] else self.out


def _align(wave: np.ndarray, offset: float, rate: int) -> np.ndarray:
    """Shift audio so sample 0 is at video time 0: pad (offset > 0) or trim (offset < 0)."""
    shift = int(round(offset * rate))
    if shift > 0:
        return np.concatenate([np.zeros(shift, dtype=np.float32), wave])
    if shift < 0:
        return wave[-shift:]
    return wave


# ---------------------------------------------------------------------- timing


def probe_duration(source: PathLike) -> float:
    """Duration in seconds of an audio or video file, read cheaply.

    A video's duration is the one :func:`load_video` reports (see :func:`_video_seconds`):
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
    path = _check_file(source, MediaLimits(max_file_bytes=None), "media")
    name = path.name
    accepted = f"{ACCEPTED_VIDEO_FORMATS}; or audio: {ACCEPTED_AUDIO_FORMATS}"
    container = _open_container(path, "media", accepted)
    try:
        streams = list(container.streams.video) + list(container.streams.audio)
        if not streams:
            raise MediaError(f"media file '{name}' has no audio or video stream; accepted: {accepted}")
        if container.streams.video:
            return float(_video_seconds(path, container.streams.video[0], container))
        seconds = _stream_seconds(streams[0], container)
    finally:
        container.close()
    if seconds is None:
        seconds = _scan_packets(path, "audio")
    if seconds is None:
        unlimited = MediaLimits(None, None, None, None)
        seconds = _decode_audio_file(path, 16000, unlimited).shape[0] / 16000.0
    return float(seconds)


def _video_seconds(path: Path, stream: "av.video.stream.VideoStream",
                   container: "av.container.InputContainer") -> float:
    """Seconds of a video stream, the one duration both :func:`probe_duration` and :func:`load_video` use.

    The header's duration, or the time span of the frames' packet timestamps where that is
    longer: variable-frame-rate files often under-report in the header (one with frames until
    3.9 s said 2.3 s), and decoding shows every frame up to its end. Only when neither is
    known is the stream decoded to measure it.
    """
    known = [s for s in (_stream_seconds(stream, container), _scan_packets(path, "video")) if s is not None]
    return max(known) if known else _decode_seconds(path, path.name)


def _open_container(path: Path, kind: str, accepted: str) -> "av.container.InputContainer":
    """``av.open`` wrapped so that failures become :class:`MediaError`."""
    try:
        return av.open(str(path), mode="r")
    except _AV_ERRORS as exc:
        raise MediaError(
            f"{kind} file '{path.name}' could not be opened (not a media file, or corrupt/truncated: "
            f"{_why(exc, path)}); accepted: {accepted}"
        ) from exc


def _stream_seconds(stream: "av.stream.Stream", container: "av.container.InputContainer") -> float | None:
    """Duration from metadata: the stream's, else the container's; ``None`` if unknown."""
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    return None


def _native_fps(stream: "av.video.stream.VideoStream") -> float | None:
    """The container's native frame rate (average, else guessed/base), or ``None``."""
    for attr in ("average_rate", "guessed_rate", "base_rate"):
        value = getattr(stream, attr, None)
        if value:
            value = float(Fraction(value))
            if math.isfinite(value) and 0 < value < 10_000:
                return value
    return None


def _scan_packets(path: Path, kind: str) -> float | None:
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
                default = 1.0 / (_native_fps(stream) or 25.0)
            first = last = None
            for packet in container.demux(stream):
                if packet.pts is None:
                    continue
                start = float(packet.pts * tb)
                end = start + (float(packet.duration * tb) if packet.duration else default)
                first = start if first is None else min(first, start)
                last = end if last is None else max(last, end)
    except _AV_ERRORS as exc:
        logger.debug("packet scan of %s failed: %s", path.name, exc)
        return None
    if first is None or last is None or last <= first:
        return None
    return last - first


def _decode_seconds(path: Path, name: str) -> float:
    """Video duration by decoding every frame: last frame time - first + one average period."""
    first = last = None
    count = 0
    container = _open_container(path, "video", ACCEPTED_VIDEO_FORMATS)
    try:
        for frame in container.decode(video=0):
            count += 1
            if frame.time is not None:
                t = float(frame.time)
                first = t if first is None else min(first, t)
                last = t if last is None else max(last, t)
    except _AV_ERRORS as exc:
        raise MediaError(
            f"video file '{name}' could not be decoded ({_why(exc, path)}); accepted: {ACCEPTED_VIDEO_FORMATS}"
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
