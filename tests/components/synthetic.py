"""Synthetic traces with known sources in every modality, built on a real result's inputs.

A random-weight model traces almost everything to one video or image, so tests that must see a
text span, image tiles, an audio and a video segment light up use a trace whose per-token scores
are set by hand: each output sentence points at units of one modality, the last at nothing.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np

from omnitrace_core import CurationConfig, Span, TraceResult
from omnitrace_core.result import GeneratedToken

CURATION = CurationConfig(use_p_min=False)  # every voted unit survives: sources are guaranteed

SENTENCES = (
    ("The house and the sun are described in the text.", "text"),
    ("The image shows a red house.", "image"),
    ("A click is heard after one second.", "audio"),
    ("The car turns blue near the end.", "video"),
    ("Nothing supports this sentence.", None),
)


def _units(result: TraceResult, modality: str) -> list[int]:
    return [u.index for u in result.units if u.modality == modality]


def synthetic_trace(base: TraceResult, sentences=SENTENCES, curation: CurationConfig = CURATION) -> TraceResult:
    """A trace over ``base``'s inputs with hand-set scores (see module docstring).

    Sentence k's tokens alternate between two units of its modality (text: the first and the
    last text unit; image: the image, tiles weighted by index; audio: bins 1 and 0; video: the
    last bin's visual and audio atoms, then bin 0), so each sentence has known sources.
    """
    src = base.sources
    A = src.num_atoms
    text = " ".join(s for s, _ in sentences)
    pieces = [(m.start(), m.end()) for m in re.finditer(r"\S+\s*", text)]
    tokens, rows, spans = [], [], []
    cursor = 0
    for k, (sentence, modality) in enumerate(sentences):
        start = text.index(sentence, cursor)
        end = start + len(sentence)
        cursor = end
        first = len(tokens)
        for s, e in pieces:
            if not (start <= s < end):
                continue
            t = len(tokens)
            tokens.append(GeneratedToken(index=t, token_id=1000 + t, text=text[s:e], char_start=s, char_end=e, pos="NOUN"))
            row = np.zeros(A)
            if modality is not None:
                units = _units(base, modality)
                targets = {"text": [units[0], units[-1]], "image": [units[0]], "audio": [units[min(1, len(units) - 1)], units[0]],
                           "video": [units[-1], units[0]]}[modality]
                unit = targets[(t - first) % len(targets)]
                atoms = np.flatnonzero(src.atom_unit == unit)
                weights = (src.atom_tile[atoms] + 1.0) if modality == "image" else np.ones(len(atoms))
                if modality == "video":  # visual track dominant
                    weights = np.array([3.0 if src.atom_kind[a] == "visual" else 1.0 for a in atoms])
                row[atoms] = 0.6 * weights / weights.sum()
            rows.append(row)
        spans.append(Span(index=k, text=sentence, char_start=start, char_end=end, token_start=first,
                          token_end=len(tokens), sources=()))
    atom_sum = np.asarray(rows)
    fake = replace(base, text=text, tokens=tuple(tokens), atom_sum=atom_sum, atom_max=atom_sum.copy(),
                   outside=1.0 - atom_sum.sum(axis=1), spans=tuple(spans), stop_reason="eos")
    return fake.recurate(curation)


_GALLERY_TRACES: dict[int, TraceResult] = {}


def gallery_trace(tracer) -> TraceResult:
    """A real tiny-model trace of the interleaved gallery example (cached per tracer)."""
    from omnitrace_core import GenerationConfig

    from components.samples import gallery, sample_items
    from components.settings import InputLimits

    if id(tracer) not in _GALLERY_TRACES:
        examples = gallery()
        items = sample_items(examples, examples.keys[0], InputLimits())
        _GALLERY_TRACES[id(tracer)] = tracer.trace([item.to_engine() for item in items],
                                                   generation=GenerationConfig(max_new_tokens=6))
    return _GALLERY_TRACES[id(tracer)]
