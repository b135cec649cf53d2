"""Traces with hand-set scores over a real result's inputs: known sources for tests and benchmarks.

A random-weight model traces almost everything to one image or video. To check that the
explorer lights the right text spans, tiles and segments (and to time it on a realistic trace),
:func:`trace_with_sources` keeps a real result's inputs and units but sets every generated
token's scores: the tokens of each output sentence take turns among the units it is given.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Sequence

import numpy as np

from omnitrace_core import CurationConfig, Span, TraceResult
from omnitrace_core.result import GeneratedToken

EVERY_VOTE = CurationConfig(use_p_min=False)  # every voted unit survives curation


def _unit_row(base: TraceResult, unit: int, mass: float) -> np.ndarray:
    """Scores putting ``mass`` on one unit: image tiles weighted by index, video visual track 3:1."""
    src = base.sources
    atoms = np.flatnonzero(src.atom_unit == unit)
    modality = base.units[unit].modality
    if modality == "image":
        weights = src.atom_tile[atoms] + 1.0
    elif modality == "video":
        weights = np.array([3.0 if src.atom_kind[a] == "visual" else 1.0 for a in atoms])
    else:
        weights = np.ones(len(atoms))
    row = np.zeros(src.num_atoms)
    row[atoms] = mass * weights / weights.sum()
    return row


def trace_with_sources(base: TraceResult, sentences: Sequence[tuple[str, Sequence[int]]],
                       curation: CurationConfig = EVERY_VOTE, mass: float = 0.6) -> TraceResult:
    """``base``'s inputs with a generated text of ``sentences``, each drawing on the given units.

    Args:
        base: a real trace (its items, units and settings are kept).
        sentences: (sentence, unit indices) pairs; the sentence's word tokens take turns among
            the units (none: the sentence has no source).
        curation: settings the result is curated with.
        mass: signal mass each token puts on its unit (the rest is outside the sources).
    """
    text = " ".join(s for s, _ in sentences)
    pieces = [(m.start(), m.end()) for m in re.finditer(r"\S+\s*", text)]
    tokens, rows, spans = [], [], []
    cursor = 0
    for k, (sentence, units) in enumerate(sentences):
        start = text.index(sentence, cursor)
        end = cursor = start + len(sentence)
        first = len(tokens)
        for s, e in pieces:
            if start <= s < end:
                t = len(tokens)
                tokens.append(GeneratedToken(index=t, token_id=1000 + t, text=text[s:e], char_start=s, char_end=e,
                                             pos="NOUN"))
                rows.append(_unit_row(base, units[(t - first) % len(units)], mass) if units
                            else np.zeros(base.sources.num_atoms))
        spans.append(Span(index=k, text=sentence, char_start=start, char_end=end, token_start=first,
                          token_end=len(tokens), sources=()))
    atom_sum = np.asarray(rows)
    fake = replace(base, text=text, tokens=tuple(tokens), atom_sum=atom_sum, atom_max=atom_sum.copy(),
                   outside=1.0 - atom_sum.sum(axis=1), spans=tuple(spans), stop_reason="eos")
    return fake.recurate(curation)
