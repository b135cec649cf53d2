"""The scoring-signal interface and its registry.

A signal turns the captured decode-step attention rows (and, if it asks for them, their
gradients w.r.t. log p(y_t)) into one non-negative score per context position. The engine reads
a signal's declared needs (which layers, gradients or not) and captures nothing else.

A *post-hoc* signal (``post_hoc = True``, e.g. ``occlusion``) needs the whole output before it
can score anything: the engine generates with nothing captured, then calls its
:meth:`Signal.score_output` once, and the per-token atom scores it returns fill the result
exactly as a step-wise signal's do, so curation, re-curation and every view work unchanged.
Streamed steps of such a trace carry no unit (nothing is known until the output is complete).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Sequence

import numpy as np
import torch

from ..errors import ConfigError, UnknownNameError

#: The signal a Tracer, the CLI and the app use unless told otherwise (the paper's main one).
DEFAULT_SIGNAL = "attmean"


class Signal(ABC):
    """A token-level attribution signal a_t(i) over context positions i.

    Subclasses set ``name`` and ``needs_gradients`` and implement :meth:`layers` and :meth:`score`.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    needs_gradients: ClassVar[bool] = False
    #: Scored once from the finished output (:meth:`score_output`), not per decode step.
    post_hoc: ClassVar[bool] = False
    #: Which selections ``name[...]`` may make: "layers", "heads" (see :mod:`.selection`).
    selectable: ClassVar[tuple[str, ...]] = ()

    def heads(self, num_heads: int) -> tuple[int, ...] | None:
        """The query heads this signal reads among ``num_heads`` (None: all); raises ConfigError when its
        selection does not fit the model."""
        return None

    def score_output(self, backend: Any, items: Sequence[Any], prepared: Any, sources: Any,
                     generated: Sequence[int], source_config: Any, system_prompt: str | None) -> np.ndarray:
        """Per-token atom scores of a finished output (post-hoc signals only).

        Args:
            backend, items, prepared, sources: the traced model, inputs, prepared prompt and source set.
            generated: the T generated token ids (EOS excluded).
            source_config, system_prompt: the settings the prompt was prepared with.

        Returns:
            (T, 2A + 1): per token, the A atom sums, the A atom maxima and the mass outside every
            source, as a step-wise signal's scores are reduced by the engine.
        """
        raise NotImplementedError(f"signal '{self.name}' scores decode steps, not finished outputs")

    @abstractmethod
    def layers(self, num_layers: int) -> tuple[int, ...]:
        """Decoder layers whose decode-step attention rows this signal reads."""

    @abstractmethod
    def score(
        self, rows: Sequence[torch.Tensor], grads: Sequence[torch.Tensor] | None
    ) -> torch.Tensor:
        """Scores over the context.

        Args:
            rows: per requested layer (in layer order), attention probabilities (heads, context).
            grads: same shapes, d log p(y_t) / d rows, when ``needs_gradients``; else None.

        Returns:
            (context,) float tensor on the rows' device, non-negative.
        """


_REGISTRY: dict[str, type[Signal]] = {}


def register_signal(cls: type[Signal], *, overwrite: bool = False) -> type[Signal]:
    """Add a signal class to the registry under ``cls.name`` (usable as a decorator)."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"{cls.__name__} needs a non-empty string class attribute 'name'")
    if "[" in name or "]" in name:
        raise ValueError(f"signal name '{name}' may not hold brackets: name[...] selects layers or heads")
    if name in _REGISTRY and not overwrite and _REGISTRY[name] is not cls:
        raise ValueError(f"a signal named '{name}' is already registered; pass overwrite=True")
    _REGISTRY[name] = cls
    return cls


def list_signals() -> list[str]:
    """Names of the registered signals."""
    return sorted(_REGISTRY)


def get_signal(name: str | Signal, *, layers: Any = None, heads: Any = None) -> Signal:
    """A signal instance by name (an instance passes through when nothing is selected).

    Args:
        name: a registered name, or one with a selection, e.g. ``"attmean[4:8]"`` or
            ``"attmean[layers=-4:;heads=0,1]"`` (see :mod:`omnitrace_core.signals.selection`).
        layers, heads: a selection of decoder layers / query heads: ``range(4, 8)``, ``slice(-4, None)``,
            an index, a list of indices or a selection string (``"4:8"``); they add to the name's own.

    Raises:
        UnknownNameError: no signal of that name is registered (the message lists them).
        ConfigError: a malformed selection, or one the signal does not take.
    """
    from .selection import RestrictedSignal, spec, split_name

    if isinstance(name, Signal):
        if layers is None and heads is None:
            return name
        signal, params = name, {}
        if isinstance(signal, RestrictedSignal):
            params = {k: v for k, v in (("layers", signal.layer_spec), ("heads", signal.head_spec)) if v is not None}
            signal = signal.inner
    else:
        base, params = split_name(str(name))
        try:
            signal = _REGISTRY[base]()
        except KeyError:
            raise UnknownNameError(
                f"unknown signal '{base}'; registered signals: {', '.join(list_signals())} (any of them may "
                "select layers or heads, e.g. attmean[4:8])"
            ) from None
    for kind, value in (("layers", layers), ("heads", heads)):
        if value is not None:
            if kind in params:
                raise ConfigError(f"signal '{name}' already selects {kind}; pass {kind}= or name them, not both")
            params[kind] = spec(value, f"{kind} of signal '{getattr(signal, 'name', name)}'")
    return RestrictedSignal(signal, **params) if params else signal
