"""TraceResult equality: two results are equal when they record the same trace, as it is saved.

Compared: everything that was traced (model, backend, signal, inputs, source units, tokens, score
arrays, spans, the configs, stop reason, prompt length, schema). Score arrays are compared at the
precision a saved trace keeps (``SAVED_DECIMALS``), NaN equal to NaN, so a trace equals itself
loaded back from JSON. Timings (wall-clock seconds of one run) are not compared.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from omnitrace_core import (AudioItem, CurationConfig, GenerationConfig, ImageItem, TextItem, TraceResult,
                            VideoItem)
from omnitrace_core.result import SAVED_DECIMALS


@pytest.fixture(scope="module")
def result(tracer, media):
    items = [TextItem("Answer the question.\n", is_prompt=True), TextItem("Which is brighter? Think."),
             ImageItem(str(media["image_a"])), AudioItem(str(media["audio"])), VideoItem(str(media["video"]))]
    return tracer.trace(items, generation=GenerationConfig(max_new_tokens=8))


def test_a_trace_equals_itself_saved_and_loaded(result, tmp_path):
    again = TraceResult.load(result.save(tmp_path / "trace.json"))
    assert again == result and result == again
    assert not (again != result)
    # the scores really were rounded on the way: equality is at the saved precision, not exact
    assert not np.array_equal(again.atom_sum, result.atom_sum)
    assert np.abs(again.atom_sum - result.atom_sum).max() <= 0.5 * 10.0 ** -SAVED_DECIMALS + 1e-12


def test_timings_are_not_compared(result):
    assert replace(result, timings={"total_s": 123.0}) == result


def test_nan_scores_equal_nan(result):
    scores = result.atom_sum.copy()
    scores[0, 0] = np.nan
    assert replace(result, atom_sum=scores) == replace(result, atom_sum=scores.copy())


@pytest.mark.parametrize("change", [
    lambda r: replace(r, model_id="another/model"),
    lambda r: replace(r, signal="attraw"),
    lambda r: replace(r, text=r.text + "!"),
    lambda r: replace(r, stop_reason="stopped"),
    lambda r: replace(r, prompt_tokens=r.prompt_tokens + 1),
    lambda r: replace(r, tokens=r.tokens[:-1] + (replace(r.tokens[-1], token_id=r.tokens[-1].token_id + 1),)),
    lambda r: r.recurate(CurationConfig(p_min=0.0, coverage=0.99)),
    lambda r: replace(r, atom_sum=r.atom_sum + 10.0 ** -(SAVED_DECIMALS - 1)),
    lambda r: replace(r, atom_max=np.where(np.arange(r.atom_max.size).reshape(r.atom_max.shape) == 0, np.nan,
                                           r.atom_max)),
    lambda r: replace(r, outside=r.outside * 0.5 + 0.25),
    lambda r: replace(r, sources=replace(r.sources, atom_tile=r.sources.atom_tile + 1)),
    lambda r: replace(r, sources=replace(r.sources, units=r.sources.units[:-1] + (
        replace(r.sources.units[-1], label="other"),))),
], ids=["model", "signal", "text", "stop", "prompt", "token", "curation", "scores", "nan", "outside", "tiles",
        "units"])
def test_a_difference_in_what_was_traced_makes_results_unequal(result, change):
    other = change(result)
    assert other != result and result != other
    assert not (other == result)


def test_not_equal_to_other_types_and_not_hashable(result):
    assert result != result.to_dict()
    assert (result == 3) is False
    with pytest.raises(TypeError):
        hash(result)
