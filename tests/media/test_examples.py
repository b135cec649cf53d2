"""The official OmniTrace example media load."""

from __future__ import annotations

import math

import numpy as np
import pytest

from omnitrace_core.media import load_audio, load_image, load_video, probe_duration
from tests.shared_files import OFFICIAL_EXAMPLES


EXAMPLES = OFFICIAL_EXAMPLES / "examples" / "media"

needs_examples = pytest.mark.usefixtures("needs_examples_dir")


@needs_examples
def test_real_example_image():
    path = sorted(EXAMPLES.glob("*.jpg"))[0]
    img = load_image(path)
    assert img.mode == "RGB" and img.width > 0 and img.height > 0


@needs_examples
def test_real_example_wav():
    path = sorted(EXAMPLES.glob("*.wav"))[0]
    clip = load_audio(path)
    assert clip.waveform.dtype == np.float32 and clip.waveform.ndim == 1
    assert np.abs(clip.waveform).max() <= 1.0
    assert clip.duration == pytest.approx(probe_duration(path), abs=0.01)


@needs_examples
def test_real_example_mp4():
    path = sorted(EXAMPLES.glob("*.mp4"))[0]
    clip = load_video(path, fps=1.0)
    assert clip.frames.ndim == 4 and clip.frames.shape[-1] == 3 and clip.frames.dtype == np.uint8
    assert clip.frames.shape[0] == math.ceil(clip.duration * 1.0 - 1e-6)
    assert clip.duration == pytest.approx(probe_duration(path), abs=0.1)
    assert clip.source_fps > 0
    if clip.audio is not None:
        assert clip.audio.duration == pytest.approx(clip.duration, abs=0.2)
