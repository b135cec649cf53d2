"""Layers and heads: the optional head-mass capture, layer/head-restricted signals, and what lies behind curation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from omnitrace_core import (ConfigError, CurationConfig, GenerationConfig, ImageItem, AudioItem, TextItem, TraceResult,
                            UnknownNameError, get_signal)
from omnitrace_core.signals.selection import RestrictedSignal

GEN = GenerationConfig(max_new_tokens=6)


@pytest.fixture(scope="module")
def items(media):
    return [TextItem("Answer the question.\n", is_prompt=True),
            TextItem("Which is brighter? Think.\nA. left\nB. right"),
            ImageItem(str(media["image_a"])), AudioItem(str(media["audio"]))]


@pytest.fixture(scope="module")
def with_heads(tracer, items):
    """An attraw trace (it reads only the last layer) with every layer's and head's masses captured."""
    return tracer.trace(items, signal="attraw", generation=GEN, heads=True)


def _unit_mass(result):
    return result.sources.unit_totals(result.atom_sum)


def test_head_masses_average_to_the_attmean_trace(tracer, items, with_heads):
    config = tracer.backend.text_model_config()
    T, U = len(with_heads.tokens), len(with_heads.units)
    assert T > 0 and with_heads.heads.mass.shape == (T, config.num_hidden_layers, config.num_attention_heads, U)
    assert with_heads.heads.layers == tuple(range(config.num_hidden_layers))
    attmean = tracer.trace(items, signal="attmean", generation=GEN)
    assert [t.token_id for t in attmean.tokens] == [t.token_id for t in with_heads.tokens]
    np.testing.assert_allclose(with_heads.heads.mass.mean(axis=(1, 2)), _unit_mass(attmean), atol=1e-6)
    # and its last layer is what the attraw trace itself read
    np.testing.assert_allclose(with_heads.heads.mass[:, -1].mean(axis=1), _unit_mass(with_heads), atol=1e-6)


def test_capture_is_off_by_default_and_round_trips(tracer, items, with_heads):
    plain = tracer.trace(items, signal="attraw", generation=GEN)
    assert plain.heads is None and "heads" not in plain.to_dict()
    # capturing changes nothing else (layers read explicitly instead of by SDPA: float rounding only)
    assert [t.token_id for t in plain.tokens] == [t.token_id for t in with_heads.tokens]
    np.testing.assert_allclose(plain.atom_sum, with_heads.atom_sum, atol=1e-6)
    again = TraceResult.from_json(with_heads.to_json())
    assert again == with_heads and again.heads == with_heads.heads
    assert json.loads(with_heads.to_json())["heads"]["dtype"] == "<f4"
    broken = with_heads.to_dict()
    broken["heads"]["shape"][2] += 1
    with pytest.raises(Exception, match="heads"):
        TraceResult.from_dict(broken)


@pytest.mark.parametrize("name, layers, heads", [
    ("attmean[1]", [1], None),
    ("attmean[layers=0:1]", [0], None),
    ("attmean[-1:]", [1], None),
    ("attmean[heads=0,3]", None, [0, 3]),
    ("attmean[0;heads=1:3]", [0], [1, 2]),
    ("attraw[heads=2]", [1], [2]),
])
def test_a_restricted_signal_equals_the_manual_restriction(tracer, items, with_heads, name, layers, heads):
    result = tracer.trace(items, signal=name, generation=GEN)
    assert result.signal == get_signal(name).name
    mass = with_heads.heads.mass
    mass = mass[:, layers] if layers is not None else mass
    mass = mass[:, :, heads] if heads is not None else mass
    np.testing.assert_allclose(_unit_mass(result), mass.mean(axis=(1, 2)), atol=1e-6)


def test_attgrads_over_layers_sums_each_layers_products(tracer, items):
    both = tracer.trace(items, signal="attgrads[layers=0:2]", generation=GEN)
    last = tracer.trace(items, signal="attgrads", generation=GEN)
    assert [t.token_id for t in both.tokens] == [t.token_id for t in last.tokens]
    assert not np.allclose(both.atom_sum, last.atom_sum)  # layer 0 contributes
    assert np.allclose(both.atom_sum.sum(axis=1) + both.outside, 1.0)


def test_selections_by_keyword_and_their_canonical_names():
    assert get_signal("attmean", layers=range(4, 8)).name == "attmean[layers=4:8]" == get_signal("attmean[4:8]").name
    assert get_signal("attmean", heads=[0, 3]).name == "attmean[heads=0,3]"
    assert get_signal("attmean", layers=slice(-4, None), heads=1).name == "attmean[layers=-4:;heads=1]"
    assert get_signal(" attmean[ 4 : 8 ; heads = 0 ] ").name == "attmean[layers=4:8;heads=0]"
    assert get_signal(get_signal("attmean[4:8]"), heads=2).name == "attmean[layers=4:8;heads=2]"
    assert get_signal("attmean[4:8]").layers(12) == (4, 5, 6, 7)
    assert get_signal("attmean[-2:]").layers(12) == (10, 11)
    restricted = get_signal("attgrads[heads=0]")
    assert isinstance(restricted, RestrictedSignal) and restricted.needs_gradients


@pytest.mark.parametrize("name, message", [
    ("attraw[layers=0]", "cannot select layers"),
    ("occlusion[heads=0]", "cannot select heads"),
    ("attmean[4-8]", "must be a slice"),
    ("attmean[heads=0;heads=1]", "twice"),
    ("attmean[0;1]", "selects nothing"),
    ("attmean[4:8", "malformed"),
])
def test_bad_selections_say_what_is_accepted(name, message):
    with pytest.raises(ConfigError, match=message):
        get_signal(name)


def test_unknown_base_names_are_listed():
    with pytest.raises(UnknownNameError, match="attmean"):
        get_signal("nosuch[0]")


@pytest.mark.parametrize("name, message", [
    ("attmean[5:9]", "selects no layers"), ("attmean[7]", r"selects layers \[7\], but the model has 2 layers"),
    ("attmean[heads=9]", "selects heads"),
])
def test_a_selection_outside_the_model_fails_before_any_work(tracer, items, name, message):
    with pytest.raises(ConfigError, match=message):
        tracer.trace(items, signal=name, generation=GEN)


def test_head_map_of_a_sentence_and_a_token(with_heads):
    span = with_heads.spans[0]
    unit = int(np.argmax(with_heads.heads.mass[span.token_start].mean(axis=(0, 1))))
    grid = with_heads.head_map(unit, span=0)
    assert grid.shape == with_heads.heads.mass.shape[1:3]
    np.testing.assert_allclose(grid, with_heads.heads.mass[span.token_start:span.token_end, :, :, unit].mean(axis=0))
    np.testing.assert_allclose(with_heads.head_map(unit, token=0), with_heads.heads.mass[0, :, :, unit])
    with pytest.raises(ValueError, match="exactly one"):
        with_heads.head_map(unit)


def test_span_shares_show_every_unit_before_curation(with_heads):
    for span in with_heads.spans:
        shares = with_heads.span_shares(span.index)
        kept = [d for d in shares.decisions if d.kept and d.unit >= 0]
        assert [d.unit for d in kept] == [s.unit for s in span.sources]
        assert [d.share for d in kept] == pytest.approx([s.share for s in span.sources])
        assert sum(d.share for d in shares.decisions) == pytest.approx(1.0)
        assert shares.mass.shape == (len(with_heads.units),) and shares.mass.sum() == pytest.approx(1.0)
        assert (shares.p_min, shares.coverage) == (0.07, 0.85)
        for d in shares.decisions:
            if d.outcome == "below p_min":
                assert d.share < shares.p_min
    loose = with_heads.span_shares(0, CurationConfig(use_p_min=False, use_coverage=False))
    assert loose.p_min is None and loose.coverage is None
    assert all(d.kept for d in loose.decisions)
