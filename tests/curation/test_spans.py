"""Tests of span curation on a trace's arrays (omnitrace_core.curation.spans): no result type needed,
the engine builds its result once, and the views' per-token strongest units come from the result."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from omnitrace_core import CurationConfig, ImageItem, TextItem, TraceResult
from omnitrace_core.curation import Span, TokenScores, curate_spans
from omnitrace_core.result import GeneratedToken

CFG = CurationConfig()


@pytest.fixture(scope="module")
def traced(tracer, media) -> TraceResult:
    return tracer.trace([TextItem("A note. What is in the picture?"), ImageItem(str(media["image_a"]))],
                        generation={"max_new_tokens": 8})


def test_spans_are_curated_from_the_arrays_alone(traced):
    # the arrays a result stores, handed over without the result: the same spans under any settings
    scores = TokenScores(sources=traced.sources, atom_sum=traced.atom_sum.copy(), atom_max=traced.atom_max.copy(),
                         pos=[t.pos for t in traced.tokens],
                         grids={i.index: i.grid for i in traced.items if i.grid is not None})
    bare = tuple(replace(s, sources=()) for s in traced.spans)
    assert curate_spans(bare, scores, traced.curation) == traced.spans
    loose = replace(CFG, use_p_min=False, use_coverage=False)
    assert curate_spans(bare, scores, loose) == traced.recurate(loose).spans


def test_the_engine_builds_its_result_once(tracer, media, monkeypatch):
    built = []
    check = TraceResult.__post_init__
    monkeypatch.setattr(TraceResult, "__post_init__", lambda self: (built.append(self), check(self))[-1])
    result = tracer.trace([TextItem("Describe it."), ImageItem(str(media["image_a"]))],
                          generation={"max_new_tokens": 4})
    assert built == [result]


def test_top_sources_are_the_strongest_units_of_a_token(traced):
    unit_sum, _ = traced.unit_scores()
    assert len(traced.tokens) > 0
    for t in range(len(traced.tokens)):
        top = traced.top_sources(t)
        assert [u for u, _ in top] == [u for u in np.argsort(-unit_sum[t], kind="stable")[:3] if unit_sum[t, u] > 0]
        assert [m for _, m in top] == pytest.approx([unit_sum[t, u] for u, _ in top])
    assert len(traced.top_sources(0, k=1)) <= 1


def test_a_selected_zero_vote_source_is_described_by_its_tokens_evidence(tracer, media):
    # A real trace's inputs (a text and an image item), with two generated tokens set by hand:
    # a NOUN whose mass is on the text unit and a PUNCT (vote 0) whose mass is on the image
    # unit's tiles, rising with the tile index. With p_min and coverage off both are selected;
    # the image keeps its tile map although its vote is 0.
    base = tracer.trace([TextItem("Which tile is bright?"), ImageItem(str(media["image_a"]))],
                        generation={"max_new_tokens": 1})
    text_unit = next(u for u, unit in enumerate(base.units) if unit.modality == "text")
    image_unit = next(u for u, unit in enumerate(base.units) if unit.modality == "image")
    atoms = base.sources
    rows = np.zeros((2, atoms.num_atoms))
    rows[0, atoms.atom_unit == text_unit] = 0.5
    on_image = np.flatnonzero(atoms.atom_unit == image_unit)
    rows[1, on_image] = (atoms.atom_tile[on_image] + 1.0) / 100
    tokens = (GeneratedToken(0, 1, "Bright", 0, 6, "NOUN"), GeneratedToken(1, 2, ".", 6, 7, "PUNCT"))
    span = Span(index=0, text="Bright.", char_start=0, char_end=7, token_start=0, token_end=2, sources=())
    hand = replace(base, text="Bright.", tokens=tokens, atom_sum=rows, atom_max=rows.copy(),
                    outside=1.0 - rows.sum(axis=1), spans=(span,))
    (curated,) = hand.recurate(replace(CFG, use_p_min=False, use_coverage=False)).spans
    text_source, image_source = curated.sources
    assert (text_source.unit, image_source.unit) == (text_unit, image_unit)
    assert (text_source.share, image_source.share) == (1.0, 0.0)
    tiles = np.asarray(image_source.tile_scores)
    assert tiles.max() == 1.0 and np.argmax(tiles) == len(tiles) - 1
