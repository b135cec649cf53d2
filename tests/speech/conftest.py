"""Fixtures of the speech tests: audio and video with tones at known times, recognisers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from omnitrace_core.speech import SpeechSegment
from tests import media_files

RATE = 16000
#: Tones of the 8 s test audio: (start, end, frequency). Everything else is digital silence.
AUDIO_TONES = ((0.5, 2.5, 440.0), (4.0, 6.5, 660.0))
AUDIO_SECONDS = 8.0
#: The 6 s test video's audio track has one tone.
VIDEO_TONES = ((1.0, 3.0, 550.0),)
VIDEO_SECONDS = 6.0


def tones_wave(tones, seconds: float, rate: int = RATE) -> np.ndarray:
    wave = np.zeros(int(round(seconds * rate)), np.float32)
    for start, end, freq in tones:
        wave[int(round(start * rate)):int(round(end * rate))] = media_files.tone(freq, end - start, rate)
    return wave


class EnergyRecognizer:
    """A stand-in recogniser: one segment per stretch of sound, found from the waveform it is given.

    Because it reads the waveform, its segments land where the engine's audio really has sound,
    which also checks that the right audio (aligned, at the stated rate) reaches the recogniser.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(self, waveform: np.ndarray, sampling_rate: int) -> list[SpeechSegment]:
        self.calls.append((len(waveform), sampling_rate))
        hop = sampling_rate // 100  # 10 ms frames
        frames = len(waveform) // hop
        loud = np.sqrt((waveform[:frames * hop].reshape(frames, hop) ** 2).mean(1)) > 0.05
        edges = np.flatnonzero(np.diff(np.concatenate([[0], loud.astype(int), [0]])))
        return [SpeechSegment(a * hop / sampling_rate, b * hop / sampling_rate, f"Tone number {k + 1}.")
                for k, (a, b) in enumerate(zip(edges[::2], edges[1::2]))]


class FixedRecognizer:
    """A stand-in recogniser returning the same segments whatever it hears."""

    def __init__(self, segments) -> None:
        self.segments = list(segments)

    def __call__(self, waveform: np.ndarray, sampling_rate: int) -> list[SpeechSegment]:
        return list(self.segments)


@pytest.fixture(scope="session")
def speech_media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """tones.wav (8 s, tones at AUDIO_TONES) and tones.mp4 (6 s, 2 fps sampling friendly, tone at VIDEO_TONES)."""
    root = tmp_path_factory.mktemp("speech_media")
    return {
        "audio": media_files.write_wav(root / "tones.wav", tones_wave(AUDIO_TONES, AUDIO_SECONDS)),
        "video": media_files.write_video(root / "tones.mp4", media_files.colour_frames(int(VIDEO_SECONDS * 10)), 10,
                                         audio=tones_wave(VIDEO_TONES, VIDEO_SECONDS, 44100), audio_rate=44100),
    }


@pytest.fixture(scope="session")
def tiny_whisper_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.speech.tiny_asr import build_tiny_whisper

    return build_tiny_whisper(tmp_path_factory.mktemp("tiny_whisper") / "model")
