"""Every registered signal, built in or added, keeps the contract the engine and curation rely on."""

from __future__ import annotations

import numpy as np
import pytest

from omnitrace_core import DEFAULT_SIGNAL, GenerationConfig, Signal, TextItem, get_signal, list_signals
from omnitrace_core.errors import ConfigError, UnknownNameError

ITEMS = [TextItem("A note. The kite is red. The drum is blue."), TextItem("What colour is the kite?")]


def test_the_default_signal_is_registered():
    assert DEFAULT_SIGNAL in list_signals()


@pytest.mark.parametrize("name", list_signals())
def test_a_signal_is_found_by_its_name_and_declares_what_it_needs(name):
    signal = get_signal(name)
    assert isinstance(signal, Signal) and signal.name == name
    assert isinstance(signal.needs_gradients, bool) and isinstance(signal.post_hoc, bool)
    assert not (signal.needs_gradients and signal.post_hoc)  # a post-hoc signal captures nothing per step
    assert set(signal.selectable) <= {"layers", "heads"}


@pytest.mark.parametrize("name", list_signals())
def test_a_signal_traces_to_non_negative_masses_that_sum_to_one_or_nothing(tracer, name):
    result = tracer.trace(ITEMS, signal=name, generation=GenerationConfig(max_new_tokens=4))
    assert result.signal == name and len(result.tokens) > 0
    for array in (result.atom_sum, result.atom_max, result.outside):
        assert np.all(np.isfinite(array)) and np.all(array >= 0)
    assert np.all(result.atom_max <= result.atom_sum + 1e-12)  # one position's score within its atom's sum
    totals = result.atom_sum.sum(axis=1) + result.outside
    assert np.all(np.isclose(totals, 1.0, atol=1e-5) | np.isclose(totals, 0.0, atol=1e-12))


@pytest.mark.parametrize("name", list_signals())
def test_a_signal_takes_the_selections_it_declares_and_refuses_the_others(name):
    for kind, selection in (("layers", "layers=-1:"), ("heads", "heads=0")):
        if kind in get_signal(name).selectable:
            assert get_signal(f"{name}[{selection}]").name == f"{name}[{selection}]"
        else:
            with pytest.raises(ConfigError, match=name):
                get_signal(f"{name}[{selection}]")


def test_an_unknown_signal_names_every_registered_one():
    with pytest.raises(UnknownNameError) as caught:
        get_signal("no_such_signal")
    assert all(name in str(caught.value) for name in list_signals())
