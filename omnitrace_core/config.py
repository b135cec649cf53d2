"""Frozen, self-validating configuration objects for generation, source units and curation."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Mapping

from .errors import ConfigError

# Appendix A.1 of the OmniTrace paper: content words dominate the vote, function words and
# punctuation barely count. Tags are spaCy's universal POS tags.
DEFAULT_POS_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {
        "NOUN": 1.0,
        "PROPN": 1.0,
        "NUM": 1.0,
        "VERB": 0.9,
        "ADJ": 0.8,
        "ADV": 0.5,
        "AUX": 0.1,
        "PRON": 0.1,
        "DET": 0.1,
        "ADP": 0.1,
        "CCONJ": 0.1,
        "SCONJ": 0.1,
        "PART": 0.1,
        "PUNCT": 0.0,
    }
)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


class _Config:
    """Shared dict round-trip for the frozen config dataclasses."""

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]
        return {k: dict(v) if isinstance(v, Mapping) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"{cls.__name__} got unknown field(s) {unknown}; accepted: {sorted(known)}"
            )
        return cls(**data)


@dataclass(frozen=True)
class GenerationConfig(_Config):
    """How tokens are decoded. Greedy by default, as in the paper.

    ``no_repeat_ngram_size`` is off by default and, when set, only looks at generated tokens:
    applied over prompt + output (as the reference implementation does) it garbles answers
    that must repeat words of the question.
    """

    max_new_tokens: int = 256
    min_new_tokens: int = 0
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    seed: int | None = None
    max_prompt_tokens: int | None = None

    def __post_init__(self) -> None:
        _check(self.max_new_tokens >= 1, f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        _check(0 <= self.min_new_tokens <= self.max_new_tokens,
               f"min_new_tokens must be in [0, max_new_tokens], got {self.min_new_tokens}")
        _check(self.temperature > 0, f"temperature must be > 0, got {self.temperature}")
        _check(self.top_k >= 0, f"top_k must be >= 0 (0 disables it), got {self.top_k}")
        _check(0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p}")
        _check(self.repetition_penalty > 0, "repetition_penalty must be > 0")
        _check(self.no_repeat_ngram_size >= 0, "no_repeat_ngram_size must be >= 0")
        _check(self.max_prompt_tokens is None or self.max_prompt_tokens >= 1, "max_prompt_tokens must be >= 1")


#: Source-unit modes of audio (and of the audio track of videos): fixed time bins or speech segments.
AUDIO_UNITS = ("bins", "segments")


@dataclass(frozen=True)
class SourceConfig(_Config):
    """How the input is cut into source units (fixed at trace time).

    Attributes:
        audio_bin_seconds: width of the time bins of audio items.
        video_bin_seconds: width of the time bins of video items (visual and audio tokens).
        include_prompt: whether the instruction prompt's sentences are sources too.
        split_lines: split text units at line breaks as well as at sentence ends, so that
            each multiple-choice option is a unit of its own.
        use_audio_in_video: trace the audio track of videos (when they have one).
        video_fps: frames per second sampled from videos.
        video_max_frames: upper bound on sampled frames per video (longer videos are sampled
            more sparsely, timestamps stay exact).
        audio_units: units of audio items and of the audio track of videos: ``"bins"`` (fixed
            time bins) or ``"segments"`` (speech segments from a local speech recogniser). An
            item's own ``transcript`` overrides this (see :mod:`omnitrace_core.speech`).
        asr_model: transformers speech-recognition checkpoint (Hub id or folder) used for
            segments when an item has no transcript.
        segment_min_seconds, segment_max_seconds, segment_max_gap_seconds: adjacent speech
            segments are merged into sentence-sized units of at least ``min`` and at most
            ``max`` seconds, across pauses of at most ``max_gap`` seconds (no segment is split).
    """

    audio_bin_seconds: float = 1.0
    video_bin_seconds: float = 1.0
    include_prompt: bool = False
    split_lines: bool = True
    use_audio_in_video: bool = True
    video_fps: float = 2.0
    video_max_frames: int = 768
    audio_units: str = "bins"
    asr_model: str = "openai/whisper-small"
    segment_min_seconds: float = 2.0
    segment_max_seconds: float = 30.0
    segment_max_gap_seconds: float = 1.0

    def __post_init__(self) -> None:
        _check(self.audio_bin_seconds > 0, "audio_bin_seconds must be > 0")
        _check(self.video_bin_seconds > 0, "video_bin_seconds must be > 0")
        _check(self.video_fps > 0, "video_fps must be > 0")
        _check(self.video_max_frames >= 2, "video_max_frames must be >= 2")
        _check(self.audio_units in AUDIO_UNITS,
               f"audio_units must be one of {list(AUDIO_UNITS)}, got {self.audio_units!r}")
        _check(isinstance(self.asr_model, str) and bool(self.asr_model.strip()),
               "asr_model must name a speech-recognition checkpoint (Hub id or folder)")
        _check(self.segment_max_seconds > 0, "segment_max_seconds must be > 0")
        _check(0 <= self.segment_min_seconds <= self.segment_max_seconds,
               "segment_min_seconds must be in [0, segment_max_seconds]")
        _check(self.segment_max_gap_seconds >= 0, "segment_max_gap_seconds must be >= 0")


@dataclass(frozen=True)
class CurationConfig(_Config):
    """Span-level source curation (paper, appendix A.1), every component switchable.

    Attributes:
        token_rule: how a token picks its source unit, a name from
            ``omnitrace_core.list_token_rules()``: ``"sum"`` (largest summed mass, the
            paper's rule) or ``"max_token"`` (unit of the single strongest input token, as
            the reference code does).
        use_pos_weights / pos_weights / default_pos_weight: POS-aware vote weights.
        use_confidence / gamma: confidence shaping, vote *= confidence ** gamma.
        use_run_coherence / alpha: ranking score alpha * mass + (1 - alpha) * longest run.
        run_min / run_min_tokens: the run rescue. A source whose longest contiguous run of
            tokens covers at least ``run_min`` of the span's tokens (and at least
            ``run_min_tokens`` tokens) is kept even below ``p_min``. The paper's code measures
            the run in vote mass, which can never exceed the source's own mass, so its rescue
            never fires; counting tokens implements the stated intent.
        use_p_min / p_min: drop sources whose share of the span's vote is below p_min.
        use_coverage / coverage: stop once the selected sources hold this share of the vote.
    """

    token_rule: str = "sum"
    use_pos_weights: bool = True
    pos_weights: Mapping[str, float] = field(default_factory=lambda: DEFAULT_POS_WEIGHTS, hash=False)
    default_pos_weight: float = 0.3
    use_confidence: bool = True
    gamma: float = 2.0
    use_run_coherence: bool = True
    alpha: float = 0.8
    run_min: float = 0.10
    run_min_tokens: int = 2
    use_p_min: bool = True
    p_min: float = 0.07
    use_coverage: bool = True
    coverage: float = 0.85

    def __post_init__(self) -> None:
        object.__setattr__(self, "pos_weights", MappingProxyType(dict(self.pos_weights)))
        _check(all(w >= 0 for w in self.pos_weights.values()), "pos_weights must be >= 0")
        _check(self.default_pos_weight >= 0, "default_pos_weight must be >= 0")
        _check(self.gamma >= 0, f"gamma must be >= 0, got {self.gamma}")
        _check(0 <= self.alpha <= 1, f"alpha must be in [0, 1], got {self.alpha}")
        _check(0 <= self.run_min <= 1, f"run_min must be in [0, 1], got {self.run_min}")
        _check(self.run_min_tokens >= 1, "run_min_tokens must be >= 1")
        _check(0 <= self.p_min <= 1, f"p_min must be in [0, 1], got {self.p_min}")
        _check(0 < self.coverage <= 1, f"coverage must be in (0, 1], got {self.coverage}")

    def pos_weight(self, tag: str) -> float:
        """Vote weight of a universal POS tag (1.0 for every tag when POS weighting is off)."""
        if not self.use_pos_weights:
            return 1.0
        return self.pos_weights.get(tag, self.default_pos_weight)
