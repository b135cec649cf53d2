"""The prompt-length guard: refuse a prompt the model cannot take before any model forward runs.

A prompt is too long when it is over ``GenerationConfig.max_prompt_tokens`` (a user's budget),
or when it and ``max_new_tokens`` together need more positions than the model's text decoder
takes (its ``max_position_embeddings``). The refusal says how long the prompt is, what the
limit is, and which inputs take the most tokens, in the settings' user-facing names.

The check runs twice in :meth:`~omnitrace_core.Tracer.stream`:

1. before the processor, on a lower bound of the audio items' tokens from their durations
   (metadata only, no decoding). The processor itself is costly on long audio: a 1-hour WAV
   takes about 9 s and 2.4 GB in ``prepare`` on the demo model before any model forward. The
   bound counts half of the family's nominal tokens per second, so it never refuses a prompt
   the exact count would accept, even where a family's rate is off by up to 2x;
2. after the processor, on the exact token count, before the encoders and the prefill.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .config import GenerationConfig
from .errors import InputError, MediaError
from .inputs import AudioItem, Item, item_label
from .layout import KIND_NAMES
from .media import AudioClip, probe_duration

logger = logging.getLogger(__name__)

#: Share of an audio item's nominal token count (duration / seconds per token) that the early
#: bound counts: a safety margin, since the exact count depends on the family's windows and padding.
AUDIO_FLOOR_SHARE = 0.5

_SHORTER = {"text": "shorter text", "image": "a smaller image", "audio": "a shorter audio clip",
            "video": "a shorter video or a lower video frame rate setting"}


@dataclass(frozen=True)
class InputTokens:
    """How many prompt tokens one input item takes (or at least takes, for an early bound)."""

    modality: str
    label: str
    tokens: int


def max_positions(backend: Any) -> int | None:
    """Positions the model's text decoder takes (``max_position_embeddings``); None when it does not say."""
    value = getattr(backend.text_model_config(), "max_position_embeddings", None)
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def audio_token_floor(items: Sequence[Item], backend: Any) -> list[InputTokens]:
    """A lower bound on the prompt tokens of each audio item, from its duration alone.

    Empty when the backend does not say how many seconds an audio token covers
    (``audio_seconds_per_token``). A file that cannot be probed is left to the media loader,
    which reports it properly.
    """
    seconds_per_token = getattr(backend, "audio_seconds_per_token", None)
    if not isinstance(seconds_per_token, (int, float)) or seconds_per_token <= 0:
        return []
    floors = []
    for item in items:
        if not isinstance(item, AudioItem):
            continue
        source = item.source
        try:
            if isinstance(source, AudioClip):
                seconds = source.duration
            elif isinstance(source, tuple) and len(source) == 2:  # (waveform, rate); the longer axis holds samples
                seconds = max(np.shape(source[0]) or (0,)) / float(source[1])
            elif isinstance(source, (str, os.PathLike)):
                seconds = probe_duration(source)
            else:
                continue
        except (MediaError, TypeError, ValueError, ZeroDivisionError) as exc:
            logger.debug("no early token bound for %s: %s", item_label(item), exc)
            continue
        floors.append(InputTokens("audio", item_label(item), int(AUDIO_FLOOR_SHARE * seconds / seconds_per_token)))
    return floors


def prompt_inputs(prepared: Any) -> list[InputTokens]:
    """The exact prompt tokens of every input item of a prepared prompt, from its layout."""
    layout = prepared.layout
    tokens = np.bincount(layout.item[layout.item >= 0], minlength=len(prepared.labels))
    out = []
    for index, count in enumerate(tokens.tolist()):
        if count:
            modality = KIND_NAMES[int(layout.kind[np.argmax(layout.item == index)])].split("_")[0]
            out.append(InputTokens(modality, prepared.labels[index], count))
    return out


def check_prompt_length(length: int, generation: GenerationConfig, positions: int | None,
                        inputs: Sequence[InputTokens], *, at_least: bool = False) -> None:
    """Refuse a prompt of ``length`` tokens over ``generation.max_prompt_tokens``, or one that
    leaves the model's ``positions`` no room for ``max_new_tokens``.

    Args:
        length: the prompt's tokens (``at_least``: a lower bound of them).
        generation: the run's generation settings.
        positions: the model's positions (:func:`max_positions`); None skips that check.
        inputs: the items' tokens, to say what to shorten.
        at_least: ``length`` and ``inputs`` are lower bounds.

    Raises:
        InputError: the prompt is too long; the message gives its length, the limit, and the
            inputs that take the most tokens.
    """
    new = generation.max_new_tokens
    size = f"at least {length}" if at_least else f"{length}"
    if generation.max_prompt_tokens is not None and length > generation.max_prompt_tokens:
        problem = (f"the prompt is {size} tokens, over the limit of {generation.max_prompt_tokens} "
                   "(the maximum prompt length setting, --max-prompt-tokens)")
        remedy = ""
    elif positions is not None and length + new > positions:
        total = f"at least {length + new}" if at_least else f"{length + new}"
        problem = (f"the prompt is {size} tokens and up to {new} new tokens follow it: {total} positions, "
                   f"over the {positions} the model takes (so at most {max(positions - new, 0)} prompt tokens)")
        remedy = "; or generate fewer new tokens (the maximum new tokens setting, --max-new-tokens)"
    else:
        return
    raise InputError(f"{problem}. Shorten the input: {_largest(inputs, at_least)}{remedy}")


def _largest(inputs: Sequence[InputTokens], at_least: bool, count: int = 3) -> str:
    """The inputs taking the most prompt tokens, and how each could take fewer."""
    ranked = sorted(inputs, key=lambda i: -i.tokens)[:count]
    takes = "takes at least" if at_least else "takes"
    parts = [f"{i.modality} '{i.label}' {takes} {i.tokens} tokens ({_SHORTER[i.modality]} would take fewer)"
             for i in ranked]
    return "; ".join(parts) if parts else "use fewer or smaller inputs"
