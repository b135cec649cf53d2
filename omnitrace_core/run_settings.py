"""The settings that change a trace's results, as one flat record: a batch run's fingerprint.

The batch CLI stores it in every output record (``"settings"``) and refuses to resume an
output file whose records were traced with other settings, so one file never mixes them.
Settings that cannot change a finished result are left out: ``max_prompt_tokens`` (it only
decides whether a prompt is refused), the sampling parameters under greedy decoding, media
limits, devices and shards.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from .config import CurationConfig, GenerationConfig, SourceConfig

#: Generation fields that only matter when sampling.
_SAMPLING_FIELDS = ("temperature", "top_k", "top_p", "seed")


def run_settings(*, model: str | None = None, dtype: str | None = None, signal: str | None = None,
                 generation: GenerationConfig | None = None, sources: SourceConfig | None = None,
                 curation: CurationConfig | None = None, trace_answer: bool | None = None,
                 heads: bool | None = None) -> dict[str, Any]:
    """The fingerprint of a run: ``{"model", "dtype", "method", "trace_answer", "heads", "generation.<field>",
    "sources.<field>", "curation.<field>": value}``, as JSON values. None (or a missing key) means unknown:
    never compared.

    ``model`` is a Hub id or a folder; a folder is recorded by its absolute path, so ``./m`` and
    ``m`` are the same model. ``method`` is the signal's canonical name (``attmean[4:8]`` is
    ``attmean[layers=4:8]``). ``trace_answer``: the samples' given answers were traced instead of
    generated ones; ``heads``: layer and head masses were captured.
    """
    if signal is not None:
        from .signals import get_signal

        signal = get_signal(signal).name
    settings: dict[str, Any] = {"model": _model_key(model), "dtype": dtype, "method": signal,
                                "trace_answer": trace_answer, "heads": heads}
    settings.update(_flat(*(config.to_dict() if config is not None else None
                            for config in (generation, sources, curation))))
    return _as_json(settings)


def record_settings(record: Mapping[str, Any]) -> dict[str, Any]:
    """The fingerprint of a batch output record: its ``"settings"``, or, for a record written before
    those were stored, what its result says (method and configs; model and dtype unknown)."""
    stored = record.get("settings")
    if isinstance(stored, Mapping):
        return dict(stored)
    result = record.get("result")
    if not isinstance(result, Mapping):
        return {}
    sections = [result.get(name) if isinstance(result.get(name), Mapping) else None
                for name in ("generation", "source_config", "curation")]
    return _as_json({"method": result.get("signal"), **_flat(*sections)})


def differences(before: Mapping[str, Any], now: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Settings known on both sides whose values differ: ``{name: (before, now)}``."""
    return {name: (before[name], value) for name, value in now.items()
            if value is not None and before.get(name) is not None and before[name] != value}


def _flat(generation: Mapping[str, Any] | None, sources: Mapping[str, Any] | None,
          curation: Mapping[str, Any] | None) -> dict[str, Any]:
    """``{"generation.<field>": ...}`` etc. from config dicts, leaving out what cannot change a result."""
    out: dict[str, Any] = {}
    if generation is not None:
        generation = {k: v for k, v in generation.items() if k != "max_prompt_tokens"}
        if not generation.get("do_sample", False):
            generation = {k: v for k, v in generation.items() if k not in _SAMPLING_FIELDS}
        out.update({f"generation.{k}": v for k, v in generation.items()})
    for prefix, section in (("sources", sources), ("curation", curation)):
        if section is not None:
            out.update({f"{prefix}.{k}": v for k, v in section.items()})
    return out


def _model_key(model: str | None) -> str | None:
    if model is None:
        return None
    folder = Path(str(model)).expanduser()
    return str(folder.resolve()) if folder.exists() else str(model)


def _as_json(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings as an output file holds them (tuples become lists, mappings plain dicts)."""
    return json.loads(json.dumps(dict(settings), default=lambda v: dict(v) if isinstance(v, Mapping) else list(v)))
