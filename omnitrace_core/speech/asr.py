"""Speech recognisers that turn a waveform into timed speech segments, locally.

A recogniser is any callable ``(waveform, sampling_rate) -> list[SpeechSegment]``
(:class:`Recognizer`). :class:`TransformersRecognizer` wraps any transformers
speech-recognition checkpoint that gives timestamps: Whisper models (segment timestamps, the
default ``openai/whisper-small``) and CTC models such as wav2vec2 (word timestamps, which the
segment merge then groups). It loads lazily, on the first call, runs on the GPU when there is
one, and cuts long audio into strided chunks that the pipeline stitches back together.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Iterable, Mapping, Protocol, runtime_checkable

import numpy as np

from ..config import SourceConfig
from ..errors import ConfigError, InputError
from .segments import SpeechSegment

logger = logging.getLogger(__name__)

DEFAULT_ASR_MODEL = SourceConfig.asr_model
#: How each pipeline type gives timestamps (transformers' ``AutomaticSpeechRecognitionPipeline.type``).
TIMESTAMP_MODES: Mapping[str, Any] = {"seq2seq_whisper": True, "ctc": "word", "ctc_with_lm": "word"}


@runtime_checkable
class Recognizer(Protocol):
    """Anything that transcribes a mono waveform into timed segments.

    Args (of the call):
        waveform: (N,) float32 mono samples in [-1, 1].
        sampling_rate: samples per second of ``waveform``.

    Returns:
        Segments in seconds from the start of ``waveform``. They need not be clean: the caller
        sorts, clips to the audio, drops empty ones and merges them into units.
    """

    def __call__(self, waveform: np.ndarray, sampling_rate: int) -> list[SpeechSegment]: ...


def segments_from_chunks(chunks: Iterable[Mapping[str, Any]], duration: float) -> list[SpeechSegment]:
    """Segments from a transformers ASR pipeline's ``chunks`` (``{"timestamp": (start, end), "text"}``).

    A missing start (the model never opened the segment) takes the previous end; a missing end
    (the audio ran out before the model closed the segment) takes the next start, or the end of
    the audio for the last chunk.
    """
    chunks = list(chunks)
    out = []
    previous_end = 0.0
    for index, chunk in enumerate(chunks):
        start, end = (tuple(chunk.get("timestamp") or (None, None)) + (None, None))[:2]
        if start is None:
            start = previous_end
        if end is None:
            later = [c.get("timestamp", (None,))[0] for c in chunks[index + 1:]]
            end = next((t for t in later if t is not None), duration)
        out.append(SpeechSegment(float(start), float(end), str(chunk.get("text") or "")))
        previous_end = float(end)
    return out


class TransformersRecognizer:
    """A transformers speech-recognition checkpoint as a :class:`Recognizer`.

    Args:
        model_id: Hub id or local folder of a Whisper or CTC checkpoint.
        device: "cuda", "cuda:1", "cpu" ...; None picks the GPU when there is one.
        chunk_seconds: audio longer than this is cut into chunks of this length (Whisper reads
            30 s at a time, so at most 30 for Whisper).
        stride_seconds: overlap on each side of a chunk, used to stitch chunks without cutting
            words (default: a sixth of ``chunk_seconds``, as transformers does).
        batch_size: chunks decoded together (default 8 on a GPU, 1 on the CPU).
        language: Whisper's language code (e.g. "en"); None lets Whisper detect it.
        generate_kwargs: extra arguments for the model's ``generate`` (e.g. ``num_beams``).

    Raises (on first use):
        ConfigError: the checkpoint cannot be loaded, or gives no timestamps.
    """

    def __init__(self, model_id: str = DEFAULT_ASR_MODEL, *, device: str | None = None, chunk_seconds: float = 30.0,
                 stride_seconds: float | None = None, batch_size: int | None = None, language: str | None = None,
                 generate_kwargs: Mapping[str, Any] | None = None) -> None:
        if not chunk_seconds > 0:
            raise ConfigError(f"chunk_seconds must be > 0, got {chunk_seconds}")
        stride = chunk_seconds / 6 if stride_seconds is None else stride_seconds
        if not 0 <= stride < chunk_seconds / 2:
            raise ConfigError(f"stride_seconds must be in [0, chunk_seconds / 2), got {stride}")
        self.model_id = str(model_id)
        self.device = device
        self.chunk_seconds = float(chunk_seconds)
        self.stride_seconds = float(stride)
        self.batch_size = batch_size
        self.language = language
        self.generate_kwargs = dict(generate_kwargs or {})
        self._pipeline: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TransformersRecognizer({self.model_id!r}, device={self.device!r}, chunk_seconds={self.chunk_seconds})"

    @property
    def pipeline(self) -> Any:
        """The loaded transformers pipeline (loads it on first access)."""
        with self._lock:
            if self._pipeline is None:
                self._pipeline = self._load()
            return self._pipeline

    def _load(self) -> Any:
        import torch
        from transformers import pipeline

        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.float16 if str(device).startswith("cuda") else torch.float32
        logger.info("loading speech recogniser %s on %s", self.model_id, device)
        try:
            pipe = pipeline("automatic-speech-recognition", model=self.model_id, device=device, dtype=dtype)
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"could not load the speech recogniser '{self.model_id}': {exc}. Give a local "
                              "checkpoint folder or a reachable Hub id of a Whisper or CTC model") from exc
        if pipe.type not in TIMESTAMP_MODES:
            raise ConfigError(f"speech recogniser '{self.model_id}' is a {pipe.type} model, which gives no timestamps; "
                              "use a Whisper (e.g. openai/whisper-small) or CTC (e.g. facebook/wav2vec2-base-960h) "
                              "checkpoint")
        if pipe.type == "seq2seq_whisper" and self.chunk_seconds > pipe.feature_extractor.chunk_length:
            raise ConfigError(f"chunk_seconds {self.chunk_seconds} exceeds Whisper's "
                              f"{pipe.feature_extractor.chunk_length} s window")
        return pipe

    def _generate_kwargs(self, pipe: Any) -> dict[str, Any]:
        kwargs = dict(self.generate_kwargs)
        if pipe.type == "seq2seq_whisper" and getattr(pipe.model.generation_config, "is_multilingual", False):
            kwargs.setdefault("task", "transcribe")  # never translate
            if self.language is not None:
                kwargs.setdefault("language", self.language)
        return kwargs

    def __call__(self, waveform: np.ndarray, sampling_rate: int) -> list[SpeechSegment]:
        """Transcribe (N,) float32 mono audio; see :class:`Recognizer`."""
        waveform = np.asarray(waveform, dtype=np.float32)
        if waveform.ndim != 1:
            raise InputError(f"the recogniser takes a mono (N,) waveform, got shape {waveform.shape}")
        duration = len(waveform) / float(sampling_rate)
        if not len(waveform):
            return []
        pipe = self.pipeline
        rate = int(pipe.feature_extractor.sampling_rate)
        if int(sampling_rate) != rate:
            from ..media import load_audio

            waveform, sampling_rate = load_audio((waveform, int(sampling_rate)), sampling_rate=rate).waveform, rate
        kwargs: dict[str, Any] = {"return_timestamps": TIMESTAMP_MODES[pipe.type]}
        if duration > self.chunk_seconds:
            kwargs.update(chunk_length_s=self.chunk_seconds, stride_length_s=self.stride_seconds, ignore_warning=True)
        batch = self.batch_size or (8 if pipe.device.type == "cuda" else 1)
        generate = self._generate_kwargs(pipe)
        if generate:
            kwargs["generate_kwargs"] = generate
        with self._lock:  # a pipeline is not safe to call from two threads at once
            output = pipe({"raw": waveform, "sampling_rate": int(sampling_rate)}, batch_size=batch, **kwargs)
        segments = segments_from_chunks(output.get("chunks") or (), duration)
        logger.info("recognised %d segments in %.1f s of audio with %s", len(segments), duration, self.model_id)
        return segments
