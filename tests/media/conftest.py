"""Fixtures of the media tests: videos with and without audio, the official examples folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.media.helpers import write_video
from tests.shared_files import OFFICIAL_EXAMPLES, require


EXAMPLES = OFFICIAL_EXAMPLES / "examples" / "media"


@pytest.fixture
def needs_examples_dir() -> Path:
    return require(EXAMPLES)


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def video_av(media_dir) -> Path:
    return write_video(media_dir / "tone_12p5fps.mp4")


@pytest.fixture(scope="module")
def video_silent(media_dir) -> Path:
    return write_video(media_dir / "silent_10fps.mp4", codec="mpeg4", rate=10, n=25, audio=False)
