"""Video: a file PyAV reads -> frames sampled uniformly in time (:class:`VideoClip`), plus its audio track.

Frames are picked by their real presentation timestamps (``pts * time_base``), never by an assumed
frame rate, so variable frame rate files and odd rates (12.5 fps, 29.97 fps) sample correctly; one
demux pass reads the frames and the audio track together.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import av
import av.error
import numpy as np

from ..errors import ConfigError, MediaError
from .audio import AudioAccumulator, AudioClip
from .container import AV_ERRORS, native_fps, open_container, video_seconds, why
from .limits import ACCEPTED_VIDEO_FORMATS, EPS, MediaLimits, PathLike, check_file, check_rate, check_seconds

logger = logging.getLogger(__name__)


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
    rate = check_rate(sampling_rate, "sampling_rate") if with_audio else 0
    path = check_file(source, limits, "video")
    name = path.name

    container = open_container(path, "video", ACCEPTED_VIDEO_FORMATS)
    try:
        if not container.streams.video:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
            raise MediaError(
                f"video file '{name}' has no video stream (found: {kinds}); a sound recording "
                f"goes in as audio, not video; accepted video: {ACCEPTED_VIDEO_FORMATS}"
            )
        vstream = container.streams.video[0]
        astream = container.streams.audio[0] if (with_audio and container.streams.audio) else None
        duration = video_seconds(path, vstream, container)
        check_seconds(duration, limits.max_video_seconds, name, "video")
        source_fps = native_fps(vstream)
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

    acc = AudioAccumulator(rate, name, None, kind="video") if astream is not None else None
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
                        check_seconds(sampler.last_time, limits.max_video_seconds, name, "video")
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
    except AV_ERRORS as exc:
        raise MediaError(
            f"video file '{name}' could not be decoded ({why(exc)}); accepted: {ACCEPTED_VIDEO_FORMATS}"
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
    return max(1, min(max_frames, math.ceil(duration * fps - EPS)))


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
        if self.last_time is not None and t < self.last_time - EPS:
            logger.debug("video %s: non-monotonic frame time %.4f after %.4f", self.name, t, self.last_time)
        self.n_decoded += 1
        period = self.step
        if frame.duration and frame.time_base is not None:
            period = float(frame.duration * frame.time_base)
        self.end_time = max(self.end_time, t + period)
        if self._prev is not None:
            # every sample time strictly before this frame's time shows the previous frame
            while self.k < self.max_frames and self.k / self.fps < t - EPS:
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
