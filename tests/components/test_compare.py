"""Multi-signal agreement (pure) and the comparison panel's re-tracing on the tiny model."""

from __future__ import annotations

from dataclasses import replace

import pytest

from components.compare import compare_results, first_difference, jaccard, render_comparison
from components.compare_panel import session_comparison, trace_signals
from components.session import Session
from components.trace_panel import run_settings
from omnitrace_core import InputError
from tests.components.synthetic import synthetic_trace


def test_jaccard():
    assert jaccard(frozenset({1, 2}), frozenset({2, 3})) == pytest.approx(1 / 3)
    assert jaccard(frozenset(), frozenset()) == 1.0
    assert jaccard(frozenset({1}), frozenset()) == 0.0


def test_identical_traces_agree_everywhere(synthetic):
    comparison = compare_results({"attmean": synthetic, "attraw": replace(synthetic, signal="attraw")}, "attmean")
    assert comparison.signals == ("attmean", "attraw") and not comparison.mismatched
    assert [s.mean for s in comparison.sentences] == [1.0] * len(synthetic.spans)
    assert comparison.mean == 1.0


def test_disagreement_is_per_sentence(gallery_result, synthetic):
    swapped = synthetic_trace(gallery_result, sentences=(
        ("The house and the sun are described in the text.", "image"),
        ("The image shows a red house.", "image"),
        ("A click is heard after one second.", "audio"),
        ("The car turns blue near the end.", "video"),
        ("Nothing supports this sentence.", None)))
    comparison = compare_results({"a": synthetic, "b": replace(swapped, signal="b")}, "a")
    assert [round(s.mean, 3) for s in comparison.sentences] == [0.0, 1.0, 1.0, 1.0, 1.0]
    markup = render_comparison(comparison)
    assert markup.count("<tr data-sentence=") == 5 and "0.00" in markup


def test_a_different_generation_is_reported_not_compared(synthetic):
    tokens = list(synthetic.tokens)
    tokens[2] = replace(tokens[2], token_id=tokens[2].token_id + 1)
    other = replace(synthetic, signal="attraw", tokens=tuple(tokens))
    assert first_difference(synthetic, other) == 2
    comparison = compare_results({"attmean": synthetic, "attraw": other}, "attmean")
    assert comparison.mismatched == {"attraw": 2} and comparison.signals == ("attmean",)
    assert "token ids differ" in render_comparison(comparison)


def test_comparison_table_escapes_text(gallery_result):
    poisoned = synthetic_trace(gallery_result, sentences=(("<script>x()</script> done.", "text"),))
    markup = render_comparison(compare_results({"s": poisoned}, "s"))
    assert "<script" not in markup


def test_retracing_with_other_signals_keeps_the_generation(tracer, gallery_items):
    session = Session()
    generation, sources = run_settings(5, 1.0, 1.0, False)
    items = tuple(i.to_engine() for i in gallery_items)
    session.new_generation("attmean", items, {"generation": generation, "sources": sources})
    session.results["attmean"] = tracer.trace(items, signal="attmean", generation=generation, sources=sources,
                                              curation=session.curation)
    comparisons = list(trace_signals(tracer, session, ["attraw", "attmean"]))
    assert len(comparisons) == 1  # attmean was traced already
    comparison = comparisons[-1]
    assert comparison.signals == ("attmean", "attraw") and not comparison.mismatched  # greedy: same token ids
    assert session_comparison(session).signals == comparison.signals


def test_retracing_needs_a_generation(synthetic, tracer):
    session = Session()
    with pytest.raises(InputError, match="trace an input first"):
        list(trace_signals(tracer, session, ["attraw"]))
    session.adopt(synthetic)
    with pytest.raises(InputError, match="loaded from a file"):
        list(trace_signals(tracer, session, ["attraw"]))
