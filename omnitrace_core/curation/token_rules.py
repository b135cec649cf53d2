"""Token -> source-unit rules: which unit a generated token traces to, and with what confidence.

- ``sum`` (default, the paper's Algorithm 1): the unit with the largest summed mass; the
  confidence is that mass.
- ``max_token`` (the reference code's behaviour): the unit holding the single strongest input
  position; the confidence is that position's score.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import UnknownNameError

TokenRule = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""(unit_sum (T, U), unit_max (T, U)) -> (unit (T,) int with -1 for none, confidence (T,))."""

_RULES: dict[str, TokenRule] = {}


def register_token_rule(name: str, rule: TokenRule, *, overwrite: bool = False) -> None:
    """Register a token rule under ``name``."""
    if name in _RULES and not overwrite:
        raise ValueError(f"a token rule named '{name}' is already registered; pass overwrite=True")
    _RULES[name] = rule


def list_token_rules() -> list[str]:
    return sorted(_RULES)


def get_token_rule(name: str) -> TokenRule:
    try:
        return _RULES[name]
    except KeyError:
        raise UnknownNameError(f"unknown token rule '{name}'; registered: {', '.join(list_token_rules())}") from None


def _argmax_rule(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if values.shape[-1] == 0:
        return np.full(values.shape[0], -1, dtype=np.int64), np.zeros(values.shape[0])
    unit = values.argmax(axis=-1)
    confidence = values.max(axis=-1)
    return np.where(confidence > 0, unit, -1), np.maximum(confidence, 0.0)


register_token_rule("sum", lambda unit_sum, unit_max: _argmax_rule(unit_sum))
register_token_rule("max_token", lambda unit_sum, unit_max: _argmax_rule(unit_max))
