"""Media: read user-supplied images, audio and video into validated plain data, and write them.

A media reference (a path, an in-memory image or a waveform) becomes an RGB
:class:`PIL.Image.Image`, an :class:`AudioClip` (mono float32 waveform) or a :class:`VideoClip`
(uint8 frames sampled uniformly in time, plus the audio track). Nothing here knows about models
or processors.

- :mod:`.limits`: :class:`MediaLimits` and the checks every loader shares;
- :mod:`.container`: opening containers with PyAV, durations from metadata and packet timestamps;
- :mod:`.image`, :mod:`.audio`, :mod:`.video`: the loaders;
- :mod:`.probe`: :func:`probe_duration`, a file's duration read cheaply;
- :mod:`.files`: the writer (PNG, WAV/FLAC, MP4 with an audio track) for benchmarks, examples and tests.

Audio and video are decoded with PyAV (its bundled FFmpeg); neither torchcodec nor a system
FFmpeg is needed. Every problem with an input (missing file, corrupt bytes, no usable stream, a
configured size or duration limit exceeded, a bad sampling rate) raises
:class:`~omnitrace_core.errors.MediaError` whose message names the file, says what was wrong and
what is accepted. Raw Pillow / PyAV errors never escape.
"""

from ..errors import MissingDependencyError

try:  # PyAV is a hard requirement, but keep the import error readable (every submodule runs this first).
    import av  # noqa: F401
except ImportError as _exc:  # pragma: no cover - exercised only without PyAV
    raise MissingDependencyError(
        "omnitrace_core.media needs PyAV to decode audio and video: pip install 'av>=14'"
    ) from _exc

from .audio import AudioClip, load_audio  # noqa: E402
from .image import load_image  # noqa: E402
from .limits import ACCEPTED_AUDIO_FORMATS, ACCEPTED_IMAGE_FORMATS, ACCEPTED_VIDEO_FORMATS, MediaLimits  # noqa: E402
from .probe import probe_duration  # noqa: E402
from .video import VideoClip, load_video  # noqa: E402

__all__ = [
    "ACCEPTED_AUDIO_FORMATS", "ACCEPTED_IMAGE_FORMATS", "ACCEPTED_VIDEO_FORMATS", "AudioClip", "MediaLimits",
    "VideoClip", "load_audio", "load_image", "load_video", "probe_duration",
]
