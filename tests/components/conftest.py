"""Fixtures for the explorer's handler tests: a traced gallery example and its synthetic twin."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def gallery_items():
    """The composed items of the interleaved gallery example (text, image, audio, video)."""
    from components.samples import gallery, sample_items
    from components.settings import InputLimits

    examples = gallery()
    return sample_items(examples, examples.keys[0], InputLimits())


@pytest.fixture(scope="session")
def gallery_result(tracer):
    """A real (tiny-model) trace of the interleaved example."""
    from tests.components.synthetic import gallery_trace

    return gallery_trace(tracer)


@pytest.fixture(scope="session")
def synthetic(gallery_result):
    """The same inputs with hand-set scores: known sources in every modality, one weak sentence."""
    from tests.components.synthetic import synthetic_trace

    return synthetic_trace(gallery_result)


@pytest.fixture
def view_context():
    from components.rendering import ViewContext, upload_roots
    from components.settings import InputLimits

    return ViewContext(model_name="tiny", device="cpu", limits=InputLimits(), roots=tuple(upload_roots()))
