"""Audio: a file PyAV reads, or an in-memory waveform -> a mono float32 :class:`AudioClip` at a chosen rate.

Channels are averaged (a true mean) and resampled with libswresample; integer PCM is scaled to
[-1, 1]. The duration limit is checked while decoding, so an over-long file stops early.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import av
import av.error
import numpy as np

from ..errors import MediaError
from .container import AV_ERRORS, open_container, stream_seconds, why
from .limits import ACCEPTED_AUDIO_FORMATS, MediaLimits, PathLike, check_file, check_rate, check_seconds

logger = logging.getLogger(__name__)

_CHUNK = 1 << 16  # samples per frame when feeding numpy audio to the resampler


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
        check_rate(self.sampling_rate, "AudioClip.sampling_rate")

    @property
    def duration(self) -> float:
        """Length in seconds (``N / sampling_rate``)."""
        return self.waveform.shape[0] / float(self.sampling_rate)



class AudioAccumulator:
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
            check_seconds(self.native_samples / native_rate, self.max_seconds, self.name, self.kind)
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
    rate = check_rate(sampling_rate, "sampling_rate")
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

    path = check_file(source, limits, "audio")
    name = path.name
    wave = decode_audio_file(path, rate, limits)
    logger.debug("loaded audio %s: %d samples at %d Hz", name, wave.shape[0], rate)
    return AudioClip(wave, rate)


def decode_audio_file(path: Path, rate: int, limits: MediaLimits) -> np.ndarray:
    """Decode the first audio stream of ``path`` to ``(N,)`` float32 mono at ``rate``."""
    name = path.name
    container = open_container(path, "audio", ACCEPTED_AUDIO_FORMATS)
    try:
        if not container.streams.audio:
            raise MediaError(
                f"audio file '{name}' has no audio stream; accepted: {ACCEPTED_AUDIO_FORMATS}"
            )
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        meta = stream_seconds(stream, container)
        if meta is not None:
            check_seconds(meta, limits.max_audio_seconds, name, "audio")
        acc = AudioAccumulator(rate, name, limits.max_audio_seconds)
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
        except AV_ERRORS as exc:
            raise MediaError(
                f"audio file '{name}' could not be decoded ({why(exc, path)}); accepted: {ACCEPTED_AUDIO_FORMATS}"
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
    src = check_rate(src_rate, "the waveform's sampling rate")
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
    check_seconds(arr.shape[0] / src, limits.max_audio_seconds, name, "audio")
    peak = float(np.max(np.abs(arr)))
    if peak > 1.0 + 1e-3:
        logger.warning("audio %s peaks at %.3f, outside [-1, 1]; clipping", name, peak)
    if src == rate:
        return AudioClip(np.clip(arr, -1.0, 1.0).astype(np.float32, copy=False), rate)
    acc = AudioAccumulator(rate, name, limits.max_audio_seconds)
    try:
        acc.add_mono(arr, src)
        wave = acc.finish()
    except MediaError:
        raise
    except AV_ERRORS as exc:
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

