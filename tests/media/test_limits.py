"""Media limits: validated, and their messages name the setting as users see it."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from omnitrace_core.errors import ConfigError, MediaError
from omnitrace_core.media import MediaLimits, load_audio, load_image, load_video
from tests.media.helpers import write_audio_only_mp4


def test_limit_messages_speak_in_the_users_terms(tmp_path, video_av):
    """What was wrong, what is accepted and the setting to change, as a CLI or app user sees it."""
    Image.new("RGB", (100, 100)).save(tmp_path / "big.png")
    sf.write(tmp_path / "long.wav", np.zeros(32000, np.float32), 16000)
    big_file = MediaLimits(max_file_bytes=3 * 2**20)
    (tmp_path / "huge.wav").write_bytes(b"\0" * (4 * 2**20))
    failures = [
        (lambda: load_image(tmp_path / "big.png", MediaLimits(max_image_pixels=9999)), "--max-image-pixels"),
        (lambda: load_audio(tmp_path / "huge.wav", limits=big_file),
         "is 4.0 MB, over the limit of 3.0 MB (the maximum file size setting, --max-file-mb)"),
        (lambda: load_audio(tmp_path / "long.wav", limits=MediaLimits(max_audio_seconds=1.0)), "--max-audio-seconds"),
        (lambda: load_video(video_av, limits=MediaLimits(max_video_seconds=1.0)), "--max-video-seconds"),
        (lambda: load_video(write_audio_only_mp4(tmp_path / "talk.mp4")), "goes in as audio, not video"),
    ]
    for fail, expected in failures:
        with pytest.raises(MediaError) as info:
            fail()
        message = str(info.value)
        assert expected in message
        for internal in ("MediaLimits", "load_audio", "max_file_bytes", "_seconds)", "PIL."):
            assert internal not in message, message


def test_media_limits_validated():
    with pytest.raises(ConfigError):
        MediaLimits(max_file_bytes=0)
    with pytest.raises(ConfigError):
        MediaLimits(max_audio_seconds=float("nan"))
