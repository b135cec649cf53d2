"""The backend registry: every family is reachable by its model_type; others get a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnitrace_core import Backend, list_backends, load_backend
from omnitrace_core.backends import backend_for_model_type
from omnitrace_core.errors import UnknownNameError

FAMILIES = {
    "qwen2_5_omni": "qwen2_5_omni", "qwen2_5_omni_thinker": "qwen2_5_omni",
    "qwen2_5_vl": "qwen2_5_vl", "qwen2_vl": "qwen2_5_vl", "qwen3_vl": "qwen3_vl", "qwen3_vl_moe": "qwen3_vl",
    "qwen2_audio": "qwen2_audio", "smolvlm": "smolvlm", "idefics3": "smolvlm", "llava_onevision": "llava_onevision",
    "qwen3_omni_moe": "qwen3_omni", "qwen3_omni_moe_thinker": "qwen3_omni", "gemma3n": "gemma3n",
    "minicpmv4_6": "minicpmv4_6", "minicpmo": "minicpm_o",
}


def test_every_family_is_registered_under_its_model_types():
    assert list_backends() == FAMILIES


@pytest.mark.parametrize("model_type", sorted(list_backends()))
def test_a_registered_backend_is_found_by_its_model_type_and_has_its_tests(model_type):
    backend = backend_for_model_type(model_type)
    assert issubclass(backend, Backend) and backend.name == list_backends()[model_type]
    assert (Path(__file__).parent / f"test_{backend.name}.py").is_file(), "each backend has its test module"


def test_an_unsupported_architecture_is_refused_with_the_supported_list(tmp_path):
    from transformers import GPT2Config

    GPT2Config(n_layer=1, n_embd=8, n_head=2).save_pretrained(tmp_path)
    with pytest.raises(UnknownNameError) as caught:
        load_backend(str(tmp_path))
    message = str(caught.value)
    assert "model_type 'gpt2'" in message
    for model_type in FAMILIES:
        assert model_type in message
