"""Frozen, self-validating configuration objects for generation, source units and curation."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Callable, ClassVar, Mapping, TypeVar

import numpy as np

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


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def _refuse(where: str, accepted: str, value: Any, option: bool = False) -> None:
    # a value typed as an option already has the option's type: naming it would only add noise
    kind = "" if option else f" ({type(value).__name__})"
    raise ConfigError(f"{where} must be {accepted}, got {value!r}{kind}")


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low}"
    return f"{'<' if high_open else '<='} {high}" if high is not None else ""


@dataclass(frozen=True)
class _Number:
    """Accepts a finite number (``integer``: an integer) in a range; bools are refused."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    optional: bool = False

    def accepted(self, option: bool = False) -> str:
        """What is accepted, in words (``option``: for a typed option, which is None by being left out)."""
        kind = "an integer" if self.integer else "a finite number"
        text = f"{kind} {_interval(self.low, self.high, self.low_open, self.high_open)}".rstrip()
        return f"None or {text}" if self.optional and not option else text

    def convert(self, value: Any, where: str, option: bool = False) -> Any:
        if value is None and self.optional:
            return None
        wanted = numbers.Integral if self.integer else numbers.Real
        if _is_bool(value) or not isinstance(value, wanted):
            _refuse(where, self.accepted(option), value, option)
        number = int(value) if self.integer else float(value)
        if (not math.isfinite(number)
                or (self.low is not None and (number <= self.low if self.low_open else number < self.low))
                or (self.high is not None and (number >= self.high if self.high_open else number > self.high))):
            _refuse(where, self.accepted(option), value, option)
        return number


@dataclass(frozen=True)
class _Flag:
    """Accepts True or False (not 0/1, not a string)."""

    def convert(self, value: Any, where: str, option: bool = False) -> bool:
        if not _is_bool(value):
            _refuse(where, "True or False", value, option)
        return bool(value)


@dataclass(frozen=True)
class _Text:
    """Accepts a non-empty string; with ``choices`` (a callable listing them), one of those."""

    choices: Any = None

    def convert(self, value: Any, where: str, option: bool = False) -> str:
        names = None if self.choices is None else list(self.choices())
        if not isinstance(value, str) or not value.strip() or (names is not None and value not in names):
            _refuse(where, "a non-empty string" if names is None else f"one of {names}", value, option)
        return value


@dataclass(frozen=True)
class _Weights:
    """Accepts a mapping of POS tags (strings) to finite weights >= 0."""

    def convert(self, value: Any, where: str, option: bool = False) -> Mapping[str, float]:
        if not isinstance(value, Mapping):
            _refuse(where, "a mapping of POS tags (strings) to finite numbers >= 0", value, option)
        weight = _Number(low=0)
        return MappingProxyType({
            _Text().convert(tag, f"a POS tag of {where}", option): weight.convert(w, f"{where}[{tag!r}]", option)
            for tag, w in value.items()
        })


class _Config:
    """Shared validation and dict round-trip for the frozen config dataclasses.

    Each subclass says in ``_accepts`` what every one of its fields accepts; construction
    checks and normalises every field (numpy scalars become plain Python numbers) and raises
    :class:`ConfigError` naming the field, the bad value and what is accepted. Settings a user
    typed as options (command-line flags) are read with :meth:`from_options`, whose errors name
    the option instead.
    """

    _accepts: ClassVar[Mapping[str, Any]] = {}

    def __post_init__(self) -> None:
        self._normalise(lambda name: f"{type(self).__name__}.{name}", option=False)

    def _normalise(self, where: Callable[[str], str], option: bool) -> None:
        """Check and normalise every field; ``where(field)`` names a field in an error."""
        for f in fields(self):  # type: ignore[arg-type]
            value = self._accepts[f.name].convert(getattr(self, f.name), where(f.name), option)
            object.__setattr__(self, f.name, value)
        self._check_together(where)

    def _check_together(self, where: Callable[[str], str]) -> None:
        """Checks that involve several fields (after each field passed its own)."""

    @classmethod
    def _check_known(cls, names: Any) -> None:
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(names) - known)
        if unknown:
            raise ConfigError(
                f"{cls.__name__} got unknown field(s) {unknown}; accepted: {sorted(known)}"
            )

    @classmethod
    def from_options(cls, values: Mapping[str, Any], options: Mapping[str, str]):
        """``cls(**values)`` for values a user typed as options: an error names the option, not the field.

        Args:
            values: field -> value (fields not named keep their defaults).
            options: field -> the option that sets it, e.g. ``{"seed": "--seed"}``; a field without
                one is named ``Class.field``.

        Raises:
            ConfigError: a bad value, naming its option and what the option accepts.
        """
        cls._check_known(values)
        config = cls()
        for name, value in values.items():
            object.__setattr__(config, name, value)
        config._normalise(lambda name: options.get(name, f"{cls.__name__}.{name}"), option=True)
        return config

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]
        return {k: dict(v) if isinstance(v, Mapping) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        if not isinstance(data, Mapping):
            raise ConfigError(f"{cls.__name__} settings must be a mapping of field names to values, "
                              f"got {type(data).__name__}")
        cls._check_known(data)
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

    _accepts: ClassVar[Mapping[str, Any]] = MappingProxyType({
        "max_new_tokens": _Number(low=1, integer=True),
        "min_new_tokens": _Number(low=0, integer=True),
        "do_sample": _Flag(),
        "temperature": _Number(low=0, low_open=True),
        "top_k": _Number(low=0, integer=True),
        "top_p": _Number(low=0, high=1, low_open=True),
        "repetition_penalty": _Number(low=0, low_open=True),
        "no_repeat_ngram_size": _Number(low=0, integer=True),
        "seed": _Number(low=0, high=2**64 - 1, integer=True, optional=True),  # torch's seed range
        "max_prompt_tokens": _Number(low=1, integer=True, optional=True),
    })

    def _check_together(self, where: Callable[[str], str]) -> None:
        _check(self.min_new_tokens <= self.max_new_tokens,
               f"{where('min_new_tokens')} must be <= {where('max_new_tokens')} ({self.max_new_tokens}), "
               f"got {self.min_new_tokens}")


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

    _accepts: ClassVar[Mapping[str, Any]] = MappingProxyType({
        "audio_bin_seconds": _Number(low=0, low_open=True),
        "video_bin_seconds": _Number(low=0, low_open=True),
        "include_prompt": _Flag(),
        "split_lines": _Flag(),
        "use_audio_in_video": _Flag(),
        "video_fps": _Number(low=0, low_open=True),
        "video_max_frames": _Number(low=2, integer=True),
        "audio_units": _Text(choices=lambda: AUDIO_UNITS),
        "asr_model": _Text(),  # a speech-recognition checkpoint: Hub id or folder
        "segment_min_seconds": _Number(low=0),
        "segment_max_seconds": _Number(low=0, low_open=True),
        "segment_max_gap_seconds": _Number(low=0),
    })

    def _check_together(self, where: Callable[[str], str]) -> None:
        _check(self.segment_min_seconds <= self.segment_max_seconds,
               f"{where('segment_min_seconds')} must be <= {where('segment_max_seconds')} "
               f"({self.segment_max_seconds:g}), got {self.segment_min_seconds:g}")


def _token_rules() -> list[str]:
    """The registered token rules (read when a config is checked: the registry's package reads these configs)."""
    from .curation.token_rules import list_token_rules

    return list_token_rules()


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
        use_run_coherence / alpha: ranking score alpha * mass + (1 - alpha) * heaviest run
            (both in vote mass, over the span's total vote), and the run rescues below.
        run_min: the paper's rescue: a source whose heaviest run holds at least ``run_min``
            of the vote is kept even below ``p_min``. That run never exceeds the source's own
            mass, so it never fires while ``run_min >= p_min`` (as at the defaults).
        use_run_rescue / run_min_tokens: this project's rescue, the one deliberate difference
            from appendix A.1: a source with some vote whose longest run covers at least
            ``run_min`` of the span's tokens, and at least ``run_min_tokens`` tokens, is also
            kept below ``p_min``. Off, curation selects exactly what the appendix's code selects.
        use_p_min / p_min: drop sources whose share of the span's vote is below p_min.
        use_coverage / coverage: stop once the selected sources hold this share of the vote.

    Each ``use_*`` switch turned off is the appendix's code run with: POS weights all 1
    (``use_pos_weights``), gamma 0 (``use_confidence``), alpha 1 and no rescue
    (``use_run_coherence``), p_min 0 (``use_p_min``), an unreachable coverage (``use_coverage``).
    """

    token_rule: str = "sum"
    use_pos_weights: bool = True
    pos_weights: Mapping[str, float] = field(default_factory=lambda: DEFAULT_POS_WEIGHTS, hash=False)
    default_pos_weight: float = 0.3
    use_confidence: bool = True
    gamma: float = 2.0
    use_run_coherence: bool = True
    alpha: float = 0.8
    use_run_rescue: bool = True
    run_min: float = 0.10
    run_min_tokens: int = 2
    use_p_min: bool = True
    p_min: float = 0.07
    use_coverage: bool = True
    coverage: float = 0.85

    _accepts: ClassVar[Mapping[str, Any]] = MappingProxyType({
        "token_rule": _Text(choices=_token_rules),
        "use_pos_weights": _Flag(),
        "pos_weights": _Weights(),
        "default_pos_weight": _Number(low=0),
        "use_confidence": _Flag(),
        # Beyond 10, c ** gamma underflows to 0 for ordinary confidences and every vote vanishes.
        "gamma": _Number(low=0, high=10),
        "use_run_coherence": _Flag(),
        "alpha": _Number(low=0, high=1),
        "use_run_rescue": _Flag(),
        "run_min": _Number(low=0, high=1),
        "run_min_tokens": _Number(low=1, integer=True),
        "use_p_min": _Flag(),
        "p_min": _Number(low=0, high=1),
        "use_coverage": _Flag(),
        "coverage": _Number(low=0, high=1, low_open=True),
    })

    def pos_weight(self, tag: str) -> float:
        """Vote weight of a universal POS tag (1.0 for every tag when POS weighting is off)."""
        if not self.use_pos_weights:
            return 1.0
        return self.pos_weights.get(tag, self.default_pos_weight)


_C = TypeVar("_C", bound=_Config)


def as_config(kind: type[_C], value: Any, argument: str) -> _C:
    """``value`` as a ``kind`` config, for settings passed in by a caller.

    Args:
        kind: GenerationConfig, SourceConfig or CurationConfig.
        value: an instance of ``kind``, or a mapping of its fields (read as
            ``kind.from_dict(value)``: fields it does not name take their defaults).
        argument: the caller's argument name, for the error message.

    Raises:
        ConfigError: ``value`` is neither, names an unknown field, or holds a bad value.
    """
    if isinstance(value, kind):
        return value
    if isinstance(value, Mapping):
        return kind.from_dict(value)
    raise ConfigError(f"{argument} must be a {kind.__name__} or a mapping of its fields, "
                      f"got {value!r} ({type(value).__name__})")
