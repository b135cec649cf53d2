"""The typed, self-validating record of a verification, stored on a result and round-tripped through JSON.

A :class:`Verification` holds, for every output sentence of a result, the measured drop in the
sentence's log-probability when each verified source unit is removed (``effects``), whether its
greedy output changes (``changed``), the per-sentence faithfulness checks of a curated set
(:class:`SentenceCheck`: comprehensiveness, sufficiency, top-k removal drop), optional tile heat
maps of images (:class:`TileEffects`) and what it cost. Verifications of the same result in the
same mode merge (:meth:`Verification.merge`), so a view can verify one sentence, then another,
and never measure a unit twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InputError

#: The removal modes (see :mod:`omnitrace_core.verification.ablation` for what each answers).
MODES = ("input", "knockout")
#: Default threshold of a "strong" effect, in nats: removing the unit at least halves the sentence's probability.
DEFAULT_THRESHOLD = math.log(2.0)
#: The scope of a check over every source unit; the other scopes are modalities.
ALL = "all"
COST_FIELDS = ("forwards", "batches", "encodes", "seconds")


def _rounded(values: np.ndarray, digits: int = 6) -> list:
    return np.round(np.asarray(values, dtype=np.float64), digits).tolist()


def _float(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def _index_list(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                       for v in value):
        raise InputError(f"{where} must be a list of indices >= 0, got {value!r}")
    return tuple(value)


def _matrix(value: Any, shape: tuple[int, int], where: str, dtype: type) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where} must be a {shape[0]} x {shape[1]} array of numbers ({exc})") from None
    array = array.reshape(shape) if array.size == 0 else array
    if array.shape != shape:
        raise InputError(f"{where} has shape {array.shape}, expected {shape}")
    if dtype is float and not np.all(np.isfinite(array)):
        raise InputError(f"{where} holds a value that is not a finite number")
    return array


@dataclass(frozen=True, eq=False)
class SentenceCheck:
    """Faithfulness checks of one output sentence's curated sources (ERASER / ContextCite style).

    All values are drops in the sentence's log-probability (nats, summed over its tokens) when
    units are removed; per scope: ``"all"`` (every source unit) and each modality of the input
    (only that modality's units are removed, the others stay).

    Attributes:
        sentence: index of the span in the result.
        curated: the curated units the checks were made for (stale if the result is re-curated).
        comprehensiveness: scope -> drop when the curated units of the scope are removed (higher:
            the citation holds what the sentence needs).
        sufficiency: scope -> drop when every *other* unit of the scope is removed (lower: the
            citation is enough on its own).
        top_k: scope -> {k: drop when the k highest-ranked units of the scope are removed}.
    """

    sentence: int
    curated: tuple[int, ...]
    comprehensiveness: Mapping[str, float]
    sufficiency: Mapping[str, float]
    top_k: Mapping[str, Mapping[int, float]] = field(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SentenceCheck) and self.to_dict() == other.to_dict()

    def to_dict(self) -> dict[str, Any]:
        return {"sentence": self.sentence, "curated": list(self.curated),
                "comprehensiveness": {k: round(float(v), 6) for k, v in self.comprehensiveness.items()},
                "sufficiency": {k: round(float(v), 6) for k, v in self.sufficiency.items()},
                "top_k": {scope: {str(k): round(float(v), 6) for k, v in drops.items()}
                          for scope, drops in self.top_k.items()}}

    @classmethod
    def from_dict(cls, data: Any, where: str = "sentence check") -> "SentenceCheck":
        if not isinstance(data, Mapping):
            raise InputError(f"{where} must be an object with sentence, curated, comprehensiveness, sufficiency")
        sentence = data.get("sentence")
        if not isinstance(sentence, int) or isinstance(sentence, bool) or sentence < 0:
            raise InputError(f"{where}: 'sentence' must be a span index >= 0, got {sentence!r}")

        def scoped(name: str) -> dict[str, float]:
            value = data.get(name, {})
            if not isinstance(value, Mapping):
                raise InputError(f"{where}: '{name}' must map a scope ('all' or a modality) to a number")
            return {str(k): _float(v, f"{where} {name}[{k!r}]") for k, v in value.items()}

        top_k = data.get("top_k", {})
        if not isinstance(top_k, Mapping) or not all(isinstance(v, Mapping) for v in top_k.values()):
            raise InputError(f"{where}: 'top_k' must map a scope to {{k: drop}}")
        parsed_top: dict[str, dict[int, float]] = {}
        for scope, drops in top_k.items():
            parsed_top[str(scope)] = {}
            for k, v in drops.items():
                if not str(k).isdigit() or int(k) < 1:
                    raise InputError(f"{where}: top_k[{scope!r}] keys must be k >= 1, got {k!r}")
                parsed_top[str(scope)][int(k)] = _float(v, f"{where} top_k[{scope!r}][{k}]")
        return cls(sentence=sentence, curated=_index_list(data.get("curated", []), f"{where} 'curated'"),
                   comprehensiveness=scoped("comprehensiveness"), sufficiency=scoped("sufficiency"),
                   top_k=parsed_top)


@dataclass(frozen=True, eq=False)
class TileEffects:
    """The causal heat map of one image for one sentence: the drop when each tile is removed.

    Attributes:
        sentence: span index.
        unit: the image's source unit.
        grid: (rows, cols) of the image's tiles.
        effects: (rows * cols,) row-major drops in the sentence's log-probability.
        changed: (rows * cols,) whether removing the tile changes the sentence's greedy output.
    """

    sentence: int
    unit: int
    grid: tuple[int, int]
    effects: np.ndarray
    changed: np.ndarray

    def __post_init__(self) -> None:
        size = self.grid[0] * self.grid[1]
        if self.effects.shape != (size,) or self.changed.shape != (size,):
            raise InputError(f"tile effects of unit {self.unit} need {size} values for a {self.grid} grid, got "
                             f"{self.effects.shape} and {self.changed.shape}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TileEffects) and self.to_dict() == other.to_dict()

    def to_dict(self) -> dict[str, Any]:
        return {"sentence": self.sentence, "unit": self.unit, "grid": list(self.grid),
                "effects": _rounded(self.effects), "changed": [bool(c) for c in self.changed]}

    @classmethod
    def from_dict(cls, data: Any, where: str = "tile effects") -> "TileEffects":
        if not isinstance(data, Mapping):
            raise InputError(f"{where} must be an object with sentence, unit, grid, effects, changed")
        sentence, unit = _index_list([data.get("sentence"), data.get("unit")], f"{where} sentence and unit")
        grid = _index_list(data.get("grid"), f"{where} 'grid'")
        if len(grid) != 2 or min(grid) < 1:
            raise InputError(f"{where}: 'grid' must be [rows, cols] >= 1, got {list(grid)}")
        size = grid[0] * grid[1]
        effects = _matrix([data.get("effects")], (1, size), f"{where} 'effects'", float)[0]
        changed = _matrix([data.get("changed")], (1, size), f"{where} 'changed'", bool)[0]
        return cls(sentence=sentence, unit=unit, grid=(grid[0], grid[1]), effects=effects, changed=changed)


@dataclass(frozen=True, eq=False)
class Verification:
    """What removing source units does to the sentences of one result (see the module docstring).

    Attributes:
        mode: "input" or "knockout".
        units: the verified unit indices (columns of ``effects``).
        logp: (S,) log-probability of each output sentence as generated (nats, summed over its tokens).
        effects: (S, len(units)) drop of each sentence's log-probability when the unit is removed;
            positive: removing it makes the sentence less likely.
        changed: (S, len(units)) whether removing the unit changes the sentence's greedy output
            (given the output before it, some token of the sentence is no longer the model's choice).
        sentences: per checked sentence, its :class:`SentenceCheck` (sorted by sentence).
        tiles: tile heat maps (one per sentence and image).
        threshold: nats above which an effect counts as strong (for :meth:`flags` and the evaluation).
        top_k: the k of the top-k removal drops.
        cost: "forwards" (teacher-forced sequences scored, the unablated one included), "batches"
            (decoder calls), "encodes" (re-encodings of edited media), "seconds".
        stopped: the run was stopped before every requested measurement was made.
    """

    mode: str
    units: tuple[int, ...]
    logp: np.ndarray
    effects: np.ndarray
    changed: np.ndarray
    sentences: tuple[SentenceCheck, ...] = ()
    tiles: tuple[TileEffects, ...] = ()
    threshold: float = DEFAULT_THRESHOLD
    top_k: tuple[int, ...] = (1, 3)
    cost: Mapping[str, float] = field(default_factory=dict)
    stopped: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"verification mode {self.mode!r} is not one of {', '.join(MODES)}")
        shape = (len(self.logp), len(self.units))
        for name in ("effects", "changed"):
            if getattr(self, name).shape != shape:
                raise InputError(f"Verification.{name} has shape {getattr(self, name).shape}, expected {shape}")
        if len(set(self.units)) != len(self.units):
            raise InputError("Verification.units lists a unit twice")
        for check in self.sentences:
            if not 0 <= check.sentence < len(self.logp):
                raise InputError(f"a sentence check names sentence {check.sentence} of {len(self.logp)}")
        for tile in self.tiles:
            if not 0 <= tile.sentence < len(self.logp):
                raise InputError(f"tile effects name sentence {tile.sentence} of {len(self.logp)}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Verification) and self.to_dict() == other.to_dict()

    # -- lookups ------------------------------------------------------------------------------
    def effect(self, sentence: int, unit: int) -> float | None:
        """The drop of ``sentence`` when ``unit`` is removed, or None if that unit was not verified."""
        if unit not in self.units:
            return None
        return float(self.effects[sentence, self.units.index(unit)])

    def strong(self, sentence: int) -> tuple[int, ...]:
        """Units whose removal drops the sentence's log-probability by more than ``threshold``."""
        return tuple(u for u, e in zip(self.units, self.effects[sentence]) if e > self.threshold)

    def check(self, sentence: int) -> SentenceCheck | None:
        return next((c for c in self.sentences if c.sentence == sentence), None)

    def tile_map(self, sentence: int, unit: int) -> TileEffects | None:
        return next((t for t in self.tiles if t.sentence == sentence and t.unit == unit), None)

    def flags(self, sentence: int, curated: Sequence[int]) -> dict[str, tuple[int, ...]]:
        """``cited_no_effect``: curated units whose measured effect is at most ``threshold``;
        ``uncited_strong``: verified units above it that are not curated."""
        cited = set(curated)
        strong = set(self.strong(sentence))
        return {"cited_no_effect": tuple(u for u in sorted(cited) if u in self.units and u not in strong),
                "uncited_strong": tuple(u for u in self.units if u in strong and u not in cited)}

    # -- combining ----------------------------------------------------------------------------
    def merge(self, newer: "Verification") -> "Verification":
        """This verification updated with ``newer`` (same mode, same result): unit columns, sentence
        checks and tile maps of ``newer`` replace or add to these; costs add up."""
        if newer.mode != self.mode:
            raise InputError(f"cannot merge a {newer.mode} verification into a {self.mode} one")
        if len(newer.logp) != len(self.logp):
            raise InputError(f"cannot merge verifications of {len(self.logp)} and {len(newer.logp)} sentences")
        units = tuple(sorted(set(self.units) | set(newer.units)))
        effects = np.zeros((len(self.logp), len(units)))
        changed = np.zeros((len(self.logp), len(units)), dtype=bool)
        for source in (self, newer):
            columns = [units.index(u) for u in source.units]
            effects[:, columns] = source.effects
            changed[:, columns] = source.changed
        checks = {c.sentence: c for c in self.sentences}
        checks.update({c.sentence: c for c in newer.sentences})
        tiles = {(t.sentence, t.unit): t for t in self.tiles}
        tiles.update({(t.sentence, t.unit): t for t in newer.tiles})
        cost = {k: self.cost.get(k, 0) + newer.cost.get(k, 0) for k in COST_FIELDS}
        return replace(newer, units=units, effects=effects, changed=changed,
                       sentences=tuple(checks[k] for k in sorted(checks)),
                       tiles=tuple(tiles[k] for k in sorted(tiles)), cost=cost)

    # -- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "threshold": round(self.threshold, 6), "top_k": list(self.top_k),
                "units": list(self.units), "logp": _rounded(self.logp),
                "effects": [_rounded(row) for row in self.effects],
                "changed": [[bool(c) for c in row] for row in self.changed],
                "sentences": [c.to_dict() for c in self.sentences], "tiles": [t.to_dict() for t in self.tiles],
                "cost": {k: (round(float(v), 3) if k == "seconds" else int(v)) for k, v in self.cost.items()},
                "stopped": self.stopped}

    @classmethod
    def from_dict(cls, data: Any) -> "Verification":
        """Read :meth:`to_dict` output; InputError names the first malformed field."""
        where = "verification"
        if not isinstance(data, Mapping):
            raise InputError(f"{where} must be an object (mode, units, logp, effects, changed, ...)")
        mode = data.get("mode")
        if mode not in MODES:
            raise InputError(f"{where}: 'mode' must be one of {', '.join(MODES)}, got {mode!r}")
        units = _index_list(data.get("units", []), f"{where} 'units'")
        logp = data.get("logp")
        if not isinstance(logp, list):
            raise InputError(f"{where}: 'logp' must be a list with one number per output sentence")
        logp_array = np.asarray([_float(v, f"{where} logp[{k}]") for k, v in enumerate(logp)], dtype=np.float64)
        shape = (len(logp_array), len(units))
        top_k = _index_list(data.get("top_k", [1, 3]), f"{where} 'top_k'")
        cost = data.get("cost", {})
        if not isinstance(cost, Mapping) or set(cost) - set(COST_FIELDS):
            raise InputError(f"{where}: 'cost' must be an object with {', '.join(COST_FIELDS)}")
        checks = data.get("sentences", [])
        tiles = data.get("tiles", [])
        if not isinstance(checks, list) or not isinstance(tiles, list):
            raise InputError(f"{where}: 'sentences' and 'tiles' must be lists")
        stopped = data.get("stopped", False)
        if not isinstance(stopped, bool):
            raise InputError(f"{where}: 'stopped' must be true or false, got {stopped!r}")
        return cls(mode=mode, units=units, logp=logp_array,
                   effects=_matrix(data.get("effects"), shape, f"{where} 'effects'", float),
                   changed=_matrix(data.get("changed"), shape, f"{where} 'changed'", bool),
                   sentences=tuple(SentenceCheck.from_dict(c, f"{where} sentence check {k}")
                                   for k, c in enumerate(checks)),
                   tiles=tuple(TileEffects.from_dict(t, f"{where} tile map {k}") for k, t in enumerate(tiles)),
                   threshold=_float(data.get("threshold", DEFAULT_THRESHOLD), f"{where} 'threshold'"),
                   top_k=tuple(k for k in top_k if k >= 1),
                   cost={k: _float(v, f"{where} cost {k}") for k, v in cost.items()}, stopped=stopped)
