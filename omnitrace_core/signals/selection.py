"""Signals restricted to chosen decoder layers or attention heads: ``attmean[4:8]``, ``attmean[heads=0:2]``.

A restricted signal is the registered signal reading only the selected layers (instead of the ones
it reads by default) and, within each, only the selected heads. It is named by its parameters, so
the name alone rebuilds it (``get_signal(result.signal)``), and a batch file, the app's signal box
and ``--method`` all accept it:

- ``attmean[4:8]`` or ``attmean[layers=4:8]``: layers 4, 5, 6 and 7;
- ``attmean[-4:]``: the last four layers; ``attmean[0,2,5]``: those three;
- ``attmean[heads=0:2]``: heads 0 and 1 of every layer the signal reads;
- ``attmean[layers=4:8;heads=3]``: both.

A selection is a Python-style slice ``start:stop`` (either end may be left out, negative numbers
count from the end), one index, or a comma-separated list of indices. Layer numbers count the
decoder's attention layers (hybrid decoders' linear-attention layers have no rows); head numbers
count query heads. Which selections a signal takes is its ``selectable`` class attribute: both for
``attmean`` (the mean over the selected rows) and ``attgrads`` (attention x gradient summed over
the selected rows), heads only for ``attraw`` (the last layer by definition: ``attmean[-1:]`` is
its layer-selectable twin). The canonical name (``result.signal``) always spells the parameters
out: ``attmean[layers=4:8]``.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import torch

from ..errors import ConfigError
from .base import Signal

#: What a selection may be: a slice, one index, or a comma-separated list.
_SPEC = re.compile(r"^((-?\d+)?:(-?\d+)?|-?\d+(,-?\d+)*)$")
_NAMED = re.compile(r"^(?P<base>[^\[\]]+)\[(?P<params>[^\[\]]*)\]$")
KINDS = ("layers", "heads")
_FORMS = ("a slice 'start:stop' (either end optional, negatives count from the end), one index, "
          "or a comma-separated list of indices")


def split_name(name: str) -> tuple[str, dict[str, str]]:
    """``"attmean[4:8;heads=0]"`` -> ``("attmean", {"layers": "4:8", "heads": "0"})``; a plain name
    has no parameters. Raises ConfigError for a malformed parameter list."""
    match = _NAMED.match(name.strip())
    if match is None:
        if "[" in name or "]" in name:
            raise ConfigError(f"signal name '{name}' is malformed: write name[LAYERS] or "
                              "name[layers=...;heads=...], e.g. attmean[4:8] or attmean[heads=0:2]")
        return name.strip(), {}
    base, params = match.group("base").strip(), {}
    for k, part in enumerate(p.strip() for p in match.group("params").split(";")):
        key, sep, value = part.partition("=")
        if not sep:
            key, value = ("layers" if k == 0 else ""), part
        key = key.strip()
        if key not in KINDS:
            raise ConfigError(f"signal '{name}': '{part}' selects nothing; name 'layers=' or 'heads=' "
                              "(a bare selection is allowed first only, and means layers)")
        if key in params:
            raise ConfigError(f"signal '{name}' selects {key} twice")
        params[key] = spec(value, f"signal '{name}': {key}")
    return base, params


def spec(value: Any, where: str) -> str:
    """A selection as its canonical text: from a spec string, an int, a slice, a range or a sequence of ints."""
    if isinstance(value, str):
        text = re.sub(r"\s+", "", value)
        if not _SPEC.match(text):
            raise ConfigError(f"{where} must be {_FORMS}, got '{value}'")
        return text
    if isinstance(value, bool):
        raise ConfigError(f"{where} must be {_FORMS}, got {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, range) and value.step != 1:
        value = list(value)
    elif isinstance(value, (slice, range)):
        if value.step not in (None, 1):
            raise ConfigError(f"{where}: a slice with a step is not supported; list the indices")
        lo = "" if value.start is None else str(value.start)
        hi = "" if value.stop is None else str(value.stop)
        return spec(f"{lo}:{hi}", where)
    if isinstance(value, Sequence) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return ",".join(str(v) for v in value)
    raise ConfigError(f"{where} must be {_FORMS}, got {value!r}")


def resolve(text: str, count: int, what: str, signal: str) -> tuple[int, ...]:
    """The indices a canonical selection picks among ``count`` (sorted, unique); ConfigError if none or out of range."""
    if ":" in text:
        lo, hi = (int(v) if v else None for v in text.split(":"))
        picked = tuple(range(count)[slice(lo, hi)])
    else:
        wanted = [int(v) for v in text.split(",")]
        bad = [i for i in wanted if not -count <= i < count]
        if bad:
            raise ConfigError(f"signal '{signal}' selects {what} {bad}, but the model has {count} {what} "
                              f"(0..{count - 1}, or -{count}..-1 from the end)")
        picked = tuple(sorted({i % count for i in wanted}))
    if not picked:
        raise ConfigError(f"signal '{signal}' selects no {what}: '{text}' is empty among the model's {count} "
                          f"{what} (0..{count - 1})")
    return picked


def canonical_name(base: str, params: dict[str, str]) -> str:
    if not params:
        return base
    return f"{base}[{';'.join(f'{k}={params[k]}' for k in KINDS if k in params)}]"


class RestrictedSignal(Signal):
    """A registered signal reading only selected layers and heads (see the module docstring).

    Args:
        inner: the signal restricted.
        layers, heads: canonical selections (:func:`spec`), or None to keep the signal's own.
    """

    def __init__(self, inner: Signal, layers: str | None = None, heads: str | None = None) -> None:
        params = {k: v for k, v in (("layers", layers), ("heads", heads)) if v is not None}
        refused = sorted(set(params) - set(inner.selectable))
        if refused:
            takes = " and ".join(inner.selectable) or "no selection"
            hint = "; attmean[-1:] is the last layer with layers selectable" if inner.name == "attraw" else ""
            raise ConfigError(f"signal '{inner.name}' cannot select {' or '.join(refused)} (it takes {takes}){hint}")
        self.inner = inner
        self.layer_spec, self.head_spec = layers, heads
        self.name = canonical_name(inner.name, params)
        parts = [f"layers {layers}" if layers else "", f"heads {heads}" if heads else ""]
        self.description = f"{inner.description}, restricted to {' and '.join(p for p in parts if p)}"
        self.needs_gradients = inner.needs_gradients

    def layers(self, num_layers: int) -> tuple[int, ...]:
        if self.layer_spec is None:
            return self.inner.layers(num_layers)
        return resolve(self.layer_spec, num_layers, "layers", self.name)

    def heads(self, num_heads: int) -> tuple[int, ...] | None:
        """The selected query heads among ``num_heads``; None for all."""
        return None if self.head_spec is None else resolve(self.head_spec, num_heads, "heads", self.name)

    def score(self, rows: Sequence[torch.Tensor], grads: Sequence[torch.Tensor] | None) -> torch.Tensor:
        heads = self.heads(int(rows[0].shape[0])) if rows else None
        if heads is not None:
            index = torch.as_tensor(heads, device=rows[0].device)
            rows = [row.index_select(0, index) for row in rows]
            grads = None if grads is None else [g.index_select(0, index.to(g.device)) for g in grads]
        return self.inner.score(rows, grads)
