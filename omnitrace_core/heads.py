"""Layers and heads: each decoder layer's and attention head's mass on each source unit, per token.

Captured when a trace asks for it (``tracer.trace(items, heads=True)``): at every decode step, the
decoding query's attention row of every attention layer and head, summed over the prompt positions
of each source unit. That is ``layers x heads x units`` numbers per generated token (a 7B
Qwen2.5-Omni, 28 x 28 heads, 50 units: 39,200 per token, 157 kB in float32), never anything of the
context's length. The mean over layers and heads of a token's masses is its ``attmean`` unit mass;
one layer's or head's masses are what ``attmean[layers=k]`` / ``attmean[heads=h]`` reads.

In JSON the array is stored as little-endian float32, base64-encoded, with its shape
(``{"layers": [...], "shape": [T, layers, heads, units], "dtype": "<f4", "data": "..."}``): exact,
and a third of the size of decimal text.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .errors import InputError

_DTYPE = "<f4"


@dataclass(frozen=True, eq=False)
class HeadMass:
    """Per generated token, each captured layer's and head's attention mass on each source unit.

    Attributes:
        layers: the decoder layer index of each captured layer (hybrid decoders skip layers
            without softmax attention).
        mass: (T, len(layers), heads, U) float32.
    """

    layers: tuple[int, ...]
    mass: np.ndarray

    def __post_init__(self) -> None:
        mass = np.asarray(self.mass, dtype=np.float32)
        if mass.ndim != 4 or mass.shape[1] != len(self.layers):
            raise ValueError(f"head masses have shape {mass.shape}; expected (tokens, {len(self.layers)} layers, "
                             "heads, units)")
        object.__setattr__(self, "mass", mass)
        object.__setattr__(self, "layers", tuple(int(i) for i in self.layers))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HeadMass):
            return NotImplemented
        return (self.layers == other.layers and self.mass.shape == other.mass.shape
                and np.array_equal(self.mass, other.mass, equal_nan=True))

    @property
    def num_heads(self) -> int:
        return int(self.mass.shape[2])

    def map(self, tokens: range | slice | int, unit: int) -> np.ndarray:
        """(layers, heads): the mean mass on ``unit`` over ``tokens`` (a token index, or a range of them)."""
        if isinstance(tokens, int):
            tokens = slice(tokens, tokens + 1)
        elif isinstance(tokens, range):
            tokens = slice(tokens.start, tokens.stop)
        chosen = self.mass[tokens, :, :, unit]
        if len(chosen) == 0:
            return np.zeros(self.mass.shape[1:3], dtype=np.float32)
        return chosen.mean(axis=0)

    def to_dict(self) -> dict[str, Any]:
        data = np.ascontiguousarray(self.mass, dtype=_DTYPE).tobytes()
        return {"layers": list(self.layers), "shape": list(self.mass.shape), "dtype": _DTYPE,
                "data": base64.b64encode(data).decode("ascii")}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "HeadMass":
        if not isinstance(data, Mapping) or data.get("dtype") != _DTYPE:
            raise InputError(f"head masses must be an object with \"layers\", \"shape\", \"dtype\": \"{_DTYPE}\" "
                             "and base64 \"data\"")
        shape = tuple(int(n) for n in data["shape"])
        try:
            raw = base64.b64decode(data["data"], validate=True)
        except (ValueError, TypeError) as exc:
            raise InputError(f"head masses: 'data' is not base64 ({exc})") from None
        if len(shape) != 4 or len(raw) != 4 * int(np.prod(shape)):
            raise InputError(f"head masses: {len(raw)} bytes do not hold a float32 array of shape {shape}")
        mass = np.frombuffer(raw, dtype=_DTYPE).reshape(shape).astype(np.float32)
        return cls(layers=tuple(int(i) for i in data["layers"]), mass=mass)
