"""TraceResult: the typed, self-validating, versioned outcome of one traced generation.

It keeps every generated token's per-atom scores, so the spans can be re-curated with other
settings (``result.recurate(CurationConfig(...))``) without generating again, and it round-trips
through JSON (``to_dict`` / ``from_dict``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .config import CurationConfig, GenerationConfig, SourceConfig, as_config
from .curation import Span, SpanShares, TokenScores, curate_spans, span_shares
from .errors import InputError
from .heads import HeadMass
from .sources import SourceSet, SourceUnit
from .verification.records import Verification

SCHEMA_VERSION = 1
#: Score arrays are saved to this many decimals (a millionth of the attention mass), which keeps
#: trace files small; equality compares them at this precision.
SAVED_DECIMALS = 6


def _saved(values: np.ndarray) -> np.ndarray:
    """Scores as a saved trace keeps them."""
    return np.round(np.asarray(values, dtype=np.float64), SAVED_DECIMALS)


def _floats(values: np.ndarray) -> list:
    return _saved(values).tolist()


@dataclass(frozen=True)
class ItemInfo:
    """An input item as recorded in a result (media are referenced, not embedded)."""

    index: int
    modality: str
    label: str
    is_prompt: bool = False
    text: str | None = None
    path: str | None = None
    grid: tuple[int, int] | None = None
    media: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if v is not None}
        out["media"] = dict(self.media)
        if self.grid is not None:
            out["grid"] = list(self.grid)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ItemInfo":
        data = dict(data)
        if data.get("grid") is not None:
            data["grid"] = tuple(data["grid"])
        return cls(**data)


@dataclass(frozen=True)
class GeneratedToken:
    """A generated token: id, its text piece, its character range in the output, its POS tag.

    ``logprob`` is the token's log-probability under the model (its raw next-token distribution,
    before any sampling setting). Where the model's own top choice was another token (a traced
    given answer, or sampling), ``top_id``, ``top_text`` and ``top_logprob`` name it; else they are
    None. Traces saved before these existed have None everywhere.
    """

    index: int
    token_id: int
    text: str
    char_start: int
    char_end: int
    pos: str
    logprob: float | None = None
    top_id: int | None = None
    top_text: str | None = None
    top_logprob: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def _same_saved_sources(a: SourceSet, b: SourceSet) -> bool:
    """Equal source sets as a trace saves them (the prompt's position map is not saved)."""
    return (a.units == b.units and a.atom_kind == b.atom_kind and np.array_equal(a.atom_unit, b.atom_unit)
            and np.array_equal(a.atom_tile, b.atom_tile))


@dataclass(frozen=True, eq=False)
class TraceResult:
    """Everything one traced generation produced.

    Two results are equal (``==``) when they record the same trace, as it is saved: the same
    model, backend, signal, inputs, source units, tokens, spans, configs, stop reason, prompt
    length and schema, and the same score arrays to ``SAVED_DECIMALS`` decimals (NaN equal to
    NaN). So a trace equals itself loaded back from JSON. ``timings`` are not compared (they
    measure one run, not what was traced); a result holds arrays, so it is not hashable.

    Attributes:
        text: the generated text (special tokens removed).
        tokens: generated tokens (EOS excluded).
        atom_sum, atom_max: (T, A) per generated token, summed / maximal signal score of the
            input positions in each atom (see :mod:`omnitrace_core.sources`).
        outside: (T,) signal mass on positions that are no source (template, generated text).
        spans: output sentences with curated sources under ``curation``.
        timings: seconds for ``prepare``, ``prefill``, ``decode``, ``total``; tokens per second.
        stop_reason: "eos", "max_new_tokens" or "stopped"; "answer" when a given answer was traced to its end.
        prompt_tokens: length of the tokenised prompt.
        verification: what removing its source units measurably does to each sentence (see
            :mod:`omnitrace_core.verification`), once verified; None before.
        forced: the text was given (``trace(..., answer=...)``) and teacher-forced, not generated;
            each token's ``logprob`` (and ``top_*`` where the model preferred another token) says
            how the model rates it.
        heads: each layer's and head's attention mass per source unit and token
            (``trace(..., heads=True)``; see :mod:`omnitrace_core.heads`), or None.
    """

    model_id: str
    backend: str
    signal: str
    text: str
    items: tuple[ItemInfo, ...]
    sources: SourceSet
    tokens: tuple[GeneratedToken, ...]
    atom_sum: np.ndarray
    atom_max: np.ndarray
    outside: np.ndarray
    spans: tuple[Span, ...]
    generation: GenerationConfig
    source_config: SourceConfig
    curation: CurationConfig
    timings: Mapping[str, float] = field(default_factory=dict)
    stop_reason: str = "eos"
    prompt_tokens: int = 0
    schema_version: int = SCHEMA_VERSION
    verification: Verification | None = None
    forced: bool = False
    heads: HeadMass | None = None

    def __post_init__(self) -> None:
        T, A = len(self.tokens), self.sources.num_atoms
        for name in ("atom_sum", "atom_max"):
            if getattr(self, name).shape != (T, A):
                raise ValueError(f"TraceResult.{name} has shape {getattr(self, name).shape}, expected {(T, A)}")
        if self.outside.shape != (T,):
            raise ValueError(f"TraceResult.outside has shape {self.outside.shape}, expected {(T,)}")
        for span in self.spans:
            if not (0 <= span.token_start < span.token_end <= T):
                raise ValueError(f"span {span.index} has token range [{span.token_start}, {span.token_end}) outside 0..{T}")
            for src in span.sources:
                if not 0 <= src.unit < len(self.sources.units):
                    raise ValueError(f"span {span.index} cites unknown unit {src.unit}")
        if self.verification is not None:
            self._check_verification(self.verification)
        if self.heads is not None and (self.heads.mass.shape[0] != T
                                       or self.heads.mass.shape[3] != len(self.sources.units)):
            raise ValueError(f"TraceResult.heads has shape {self.heads.mass.shape}, expected ({T}, layers, heads, "
                             f"{len(self.sources.units)})")

    def _check_verification(self, verification: Verification) -> None:
        if len(verification.logp) != len(self.spans):
            raise ValueError(f"the verification covers {len(verification.logp)} sentences, the result has "
                             f"{len(self.spans)}")
        cited = list(verification.units) + [u for c in verification.sentences for u in c.curated]
        if any(not 0 <= u < len(self.sources.units) for u in cited):
            raise ValueError(f"the verification names a unit outside 0..{len(self.sources.units) - 1}")
        for tile in verification.tiles:
            if not 0 <= tile.unit < len(self.sources.units) or self.units[tile.unit].modality != "image":
                raise ValueError(f"the verification has a tile map of unit {tile.unit}, which is not an image")
            grid = self.items[self.units[tile.unit].item].grid
            if grid is not None and tuple(grid) != tuple(tile.grid):
                raise ValueError(f"the tile map of unit {tile.unit} has a {tile.grid} grid, the image {tuple(grid)}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TraceResult):
            return NotImplemented
        if other is self:
            return True
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if f.name == "timings":
                continue
            if f.name in ("atom_sum", "atom_max", "outside"):
                same = mine.shape == theirs.shape and np.array_equal(_saved(mine), _saved(theirs), equal_nan=True)
            elif f.name == "sources":
                same = _same_saved_sources(mine, theirs)
            elif f.name == "heads" and mine is not None and theirs is not None:
                same = mine.layers == theirs.layers and mine.mass.shape == theirs.mass.shape and np.array_equal(
                    _saved(mine.mass), _saved(theirs.mass), equal_nan=True)
            else:
                same = mine == theirs
            if not same:
                return False
        return True

    # -- derived views ---------------------------------------------------------------------
    @property
    def units(self) -> tuple[SourceUnit, ...]:
        return self.sources.units

    def token_scores(self) -> TokenScores:
        """What curation reads of this trace: per-token scores over the source atoms, POS tags, image grids."""
        return TokenScores(sources=self.sources, atom_sum=self.atom_sum, atom_max=self.atom_max,
                           pos=tuple(t.pos for t in self.tokens),
                           grids={i.index: i.grid for i in self.items if i.grid is not None})

    def unit_scores(self) -> tuple[np.ndarray, np.ndarray]:
        """(unit_sum, unit_max), each (T, U)."""
        return self.token_scores().unit_scores()

    def token_trace(self, rule: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(unit (T,), confidence (T,)) of every token under a token rule (default: the curation's)."""
        return self.token_scores().token_trace(rule or self.curation.token_rule)

    def top_sources(self, token: int, k: int = 3) -> list[tuple[int, float]]:
        """The ``k`` units with the largest summed mass for one generated token, strongest first
        (equal masses in unit order); units without mass are left out."""
        unit_sum = self.sources.unit_totals(self.atom_sum[token])
        return [(int(u), float(unit_sum[u])) for u in np.argsort(-unit_sum, kind="stable")[:k] if unit_sum[u] > 0]

    def span_shares(self, span: int, curation: CurationConfig | None = None) -> SpanShares:
        """Behind the curated list of one output sentence: every unit's share before curation, with the
        curation thresholds (:class:`omnitrace_core.curation.SpanShares`; pure, nothing is generated).

        Raises:
            IndexError: no such span.
        """
        if not 0 <= span < len(self.spans):
            raise IndexError(f"span {span} is not in 0..{len(self.spans) - 1}")
        config = self.curation if curation is None else as_config(CurationConfig, curation, "curation")
        return span_shares(self.spans[span], self.token_scores(), config)

    def head_map(self, unit: int, *, span: int | None = None, token: int | None = None) -> np.ndarray:
        """(layers, heads): each captured layer's and head's attention mass on ``unit``, for one token or
        averaged over one sentence's tokens (needs a trace made with ``heads=True``).

        Raises:
            ValueError: the trace holds no head masses, or not exactly one of ``span`` / ``token`` is given.
        """
        if self.heads is None:
            raise ValueError("this trace has no layer and head masses; trace with heads=True (CLI: --heads)")
        if (span is None) == (token is None):
            raise ValueError("pass exactly one of span= or token=")
        if not 0 <= unit < len(self.sources.units):
            raise IndexError(f"unit {unit} is not in 0..{len(self.sources.units) - 1}")
        if token is not None:
            return self.heads.map(token, unit)
        chosen = self.spans[span]
        return self.heads.map(range(chosen.token_start, chosen.token_end), unit)

    def recurate(self, curation: CurationConfig) -> "TraceResult":
        """The same trace with spans curated under other settings (a CurationConfig or a mapping of its fields)."""
        curation = as_config(CurationConfig, curation, "curation")
        return replace(self, curation=curation, spans=curate_spans(self.spans, self.token_scores(), curation))

    def verification_in(self, mode: str) -> Verification | None:
        """The verification this result holds if it is of ``mode`` (what ``Tracer.verify`` reuses), else None."""
        return self.verification if self.verification is not None and self.verification.mode == mode else None

    def with_verification(self, verification: Verification) -> "TraceResult":
        """This result holding ``verification`` instead of the one it held.

        ``Tracer.verify`` returns everything the result held in the same mode together with what it
        measured, so the verification replaces the held one (merging again would count its cost twice).
        """
        return replace(self, verification=verification)

    # -- serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "model_id": self.model_id,
            "backend": self.backend,
            "signal": self.signal,
            "text": self.text,
            "stop_reason": self.stop_reason,
            "prompt_tokens": self.prompt_tokens,
            "items": [i.to_dict() for i in self.items],
            "sources": self.sources.to_dict(),
            "tokens": [t.to_dict() for t in self.tokens],
            "atom_sum": [_floats(row) for row in self.atom_sum],
            "atom_max": [_floats(row) for row in self.atom_max],
            "outside": _floats(self.outside),
            "spans": [s.to_dict() for s in self.spans],
            "generation": self.generation.to_dict(),
            "source_config": self.source_config.to_dict(),
            "curation": self.curation.to_dict(),
            "timings": dict(self.timings),
            **({"verification": self.verification.to_dict()} if self.verification is not None else {}),
            **({"forced": True} if self.forced else {}),
            **({"heads": self.heads.to_dict()} if self.heads is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TraceResult":
        """Rebuild a result from what :meth:`to_dict` wrote.

        Raises:
            InputError: not a trace of this schema version, or a field is missing, malformed or
                inconsistent with the others; the message names the field and what it should hold.
        """
        if not isinstance(data, Mapping):
            raise InputError(f"a trace must be a JSON object, got {type(data).__name__}")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise InputError(f"trace schema_version {version!r} is not supported (this version reads {SCHEMA_VERSION})")
        missing = [name for name in _TRACE_FIELDS if name not in data]
        if missing:
            raise InputError(f"the trace has no {', '.join(repr(m) for m in missing)} field; a trace "
                             f"(TraceResult.to_dict()) has {', '.join(repr(f) for f in _TRACE_FIELDS)}")
        sources = _read("sources", SourceSet.from_dict, data["sources"])
        tokens = _read("tokens", lambda rows: tuple(GeneratedToken(**t) for t in rows), data["tokens"])
        shape = (len(tokens), sources.num_atoms)
        try:
            return cls(
                model_id=_read("model_id", _text, data["model_id"]),
                backend=_read("backend", _text, data["backend"]),
                signal=_read("signal", _text, data["signal"]),
                text=_read("text", _text, data["text"]),
                stop_reason=_read("stop_reason", _text, data.get("stop_reason", "eos")),
                prompt_tokens=_read("prompt_tokens", int, data.get("prompt_tokens", 0)),
                items=_read("items", lambda rows: tuple(ItemInfo.from_dict(i) for i in rows), data["items"]),
                sources=sources,
                tokens=tokens,
                atom_sum=_read("atom_sum", _array, data["atom_sum"], shape),
                atom_max=_read("atom_max", _array, data["atom_max"], shape),
                outside=_read("outside", _array, data["outside"], shape[:1]),
                spans=_read("spans", lambda rows: tuple(Span.from_dict(s) for s in rows), data["spans"]),
                generation=_read("generation", GenerationConfig.from_dict, data["generation"]),
                source_config=_read("source_config", SourceConfig.from_dict, data["source_config"]),
                curation=_read("curation", CurationConfig.from_dict, data["curation"]),
                timings=_read("timings", dict, data.get("timings", {})),
                verification=None if data.get("verification") is None else
                _read("verification", Verification.from_dict, data["verification"]),
                forced=_read("forced", _flag, data.get("forced", False)),
                heads=None if data.get("heads") is None else _read("heads", HeadMass.from_dict, data["heads"]),
            )
        except InputError:
            raise
        except ValueError as exc:  # the fields are each well formed but disagree (a span past the tokens ...)
            raise InputError(f"the trace is inconsistent: {exc}") from exc

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, **kwargs)

    @classmethod
    def from_json(cls, text: str) -> "TraceResult":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"not a JSON trace: {exc}") from exc
        if not isinstance(data, dict):
            raise InputError("a JSON trace must be an object")
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError) as exc:
            raise InputError(f"malformed trace: missing or wrong field {exc}") from exc

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "TraceResult":
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


#: Fields a saved trace must have (the others have defaults).
_TRACE_FIELDS = ("model_id", "backend", "signal", "text", "items", "sources", "tokens", "atom_sum", "atom_max",
                 "outside", "spans", "generation", "source_config", "curation")


def _read(name: str, build: Any, value: Any, *args: Any) -> Any:
    """``build(value, *args)``, with any failure turned into an InputError naming the trace field."""
    try:
        return build(value, *args)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # ConfigError and InputError included
        reason = f"missing key {exc}" if type(exc) is KeyError else str(exc)
        raise InputError(f"trace field '{name}' is malformed: {reason}") from exc


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _array(value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """A float64 array of ``shape`` (rows: generated tokens; columns: source atoms)."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"expected numbers in shape {shape}, got rows of different lengths or non-numbers") from None
    if array.size == 0 and 0 in shape:  # an empty trace saves [] whatever its width
        array = array.reshape(shape)
    if array.shape != shape:
        raise ValueError(f"expected shape {shape} (one row per generated token"
                         f"{', one column per source atom' if len(shape) == 2 else ''}), got {array.shape}")
    return array
