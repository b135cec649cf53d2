"""Synthetic traces with known sources in every modality, built on a real result's inputs.

Each output sentence points at units of one modality, the last at nothing (see
:func:`omnitrace_core.testing.synthetic.trace_with_sources`).
"""

from __future__ import annotations

from omnitrace_core import CurationConfig, TraceResult

from omnitrace_core.testing.synthetic import EVERY_VOTE, trace_with_sources

CURATION = EVERY_VOTE

SENTENCES = (
    ("The house and the sun are described in the text.", "text"),
    ("The image shows a red house.", "image"),
    ("A click is heard after one second.", "audio"),
    ("The car turns blue near the end.", "video"),
    ("Nothing supports this sentence.", None),
)


def synthetic_trace(base: TraceResult, sentences=SENTENCES, curation: CurationConfig = CURATION) -> TraceResult:
    """Sentence k's tokens alternate between two units of its modality (text: the first and the
    last text unit; image: the image; audio: bins 1 and 0; video: the last bin, then bin 0)."""
    plan = []
    for sentence, modality in sentences:
        units = [u.index for u in base.units if u.modality == modality] if modality else []
        if modality is not None:
            units = {"text": [units[0], units[-1]], "image": [units[0]],
                     "audio": [units[min(1, len(units) - 1)], units[0]], "video": [units[-1], units[0]]}[modality]
        plan.append((sentence, units))
    return trace_with_sources(base, plan, curation)


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
