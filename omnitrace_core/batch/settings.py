"""The settings that change a trace's results, as one flat record: a batch run's fingerprint.

The batch runner stores it in every output record (``"settings"``) and refuses to resume an
output file whose records were traced with other settings, so one file never mixes them
(:func:`check_same_settings`).
Settings that cannot change a finished result are left out: ``max_prompt_tokens`` (it only
decides whether a prompt is refused), the sampling parameters under greedy decoding, media
limits, devices and shards.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..config import CurationConfig, GenerationConfig, SourceConfig
from ..errors import UsageError

#: Generation fields that only matter when sampling.
_SAMPLING_FIELDS = ("temperature", "top_k", "top_p", "seed")


def run_settings(*, model: str | None = None, dtype: str | None = None, signal: str | None = None,
                 generation: GenerationConfig | None = None, sources: SourceConfig | None = None,
                 curation: CurationConfig | None = None, trace_answer: bool | None = None,
                 heads: bool | None = None) -> dict[str, Any]:
    """The fingerprint of a run: ``{"model", "dtype", "signal", "trace_answer", "heads", "generation.<field>",
    "sources.<field>", "curation.<field>": value}``, as JSON values. None (or a missing key) means unknown:
    never compared.

    ``model`` is a Hub id or a folder; a folder is recorded by its absolute path, so ``./m`` and
    ``m`` are the same model. ``signal`` is the signal's canonical name (``attmean[4:8]`` is
    ``attmean[layers=4:8]``). ``trace_answer``: the samples' given answers were traced instead of
    generated ones; ``heads``: layer and head masses were captured.
    """
    if signal is not None:
        from ..signals import get_signal

        signal = get_signal(signal).name
    settings: dict[str, Any] = {"model": _model_key(model), "dtype": dtype, "signal": signal,
                                "trace_answer": trace_answer, "heads": heads}
    settings.update(_flat(*(config.to_dict() if config is not None else None
                            for config in (generation, sources, curation))))
    return _as_json(settings)


def record_settings(record: Mapping[str, Any]) -> dict[str, Any]:
    """The fingerprint of a batch output record: its ``"settings"``, or, for a record written before
    those were stored, what its result says (signal and configs; model and dtype unknown). Records
    written before the signal was named so hold it as ``"method"``."""
    stored = record.get("settings")
    if isinstance(stored, Mapping):
        stored = dict(stored)
        if "method" in stored and "signal" not in stored:
            stored["signal"] = stored.pop("method")
        return stored
    result = record.get("result")
    if not isinstance(result, Mapping):
        return {}
    sections = [result.get(name) if isinstance(result.get(name), Mapping) else None
                for name in ("generation", "source_config", "curation")]
    return _as_json({"signal": result.get("signal"), **_flat(*sections)})


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


#: Fingerprint settings that a flag of ``omnitrace trace`` sets, as messages name them; the others are
#: named as they are in Python (e.g. "curation.gamma").
SETTING_FLAGS = {
    "model": "--model", "dtype": "--dtype", "signal": "--signal", "curation.token_rule": "--token-rule",
    "generation.max_new_tokens": "--max-new-tokens", "generation.do_sample": "--do-sample",
    "generation.temperature": "--temperature", "generation.top_p": "--top-p", "generation.top_k": "--top-k",
    "generation.seed": "--seed", "generation.max_prompt_tokens": "--max-prompt-tokens",
    "sources.audio_bin_seconds": "--audio-bin-seconds",
    "sources.video_bin_seconds": "--video-bin-seconds", "sources.video_fps": "--video-fps",
    "sources.video_max_frames": "--video-max-frames", "sources.audio_units": "--audio-units",
    "sources.asr_model": "--asr-model", "sources.segment_min_seconds": "--segment-min-seconds",
    "sources.segment_max_seconds": "--segment-max-seconds", "sources.segment_max_gap_seconds":
    "--segment-max-gap-seconds", "sources.include_prompt": "--include-prompt",
    "sources.use_audio_in_video": "tracing the audio of videos (--no-audio-in-video turns it off)",
    "trace_answer": "--trace-answer", "heads": "--heads",
}
#: The section of the settings that holds each config's fields ("generation.<field>", ...).
CONFIG_SECTIONS = {GenerationConfig: "generation", SourceConfig: "sources", CurationConfig: "curation"}


def config_flags(kind: type) -> dict[str, str]:
    """Field -> the flag that sets it, for the fields of a ``kind`` config that a flag sets (from SETTING_FLAGS)."""
    prefix = CONFIG_SECTIONS[kind] + "."
    return {name[len(prefix):]: flag for name, flag in SETTING_FLAGS.items() if name.startswith(prefix)}


#: How a refused resume of ``omnitrace trace`` goes on (see :func:`check_same_settings`).
RESUME_ADVICE = ("rerun with the settings it was traced with, or start afresh with --overwrite (its results are "
                 "discarded), or write to another --output")


def check_same_settings(output: Path, records: Sequence[Mapping[str, Any]], settings: Mapping[str, Any],
                        advice: str = RESUME_ADVICE) -> None:
    """Refuse to resume ``output`` when its records were traced with settings other than ``settings``.

    Raises:
        UsageError: naming each setting that differs (as a flag where one sets it), its value in the
            file and now, and how to go on (``advice``, in the terms of the command that resumes).
    """
    changed: dict[str, tuple[Any, Any]] = {}
    for record in records:
        for name, values in differences(record_settings(record), settings).items():
            changed.setdefault(name, values)
    if not changed:
        return
    listed = "; ".join(f"{SETTING_FLAGS.get(name, name)} was {_shown(old)}, now {_shown(new)}"
                       for name, (old, new) in sorted(changed.items()))
    raise UsageError(f"output file '{output}' holds results traced with other settings ({listed}). Resuming would "
                     f"mix settings in one file: {advice}")


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
