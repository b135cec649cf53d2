"""Configuration objects refuse bad values with a ConfigError naming field, value and what is accepted."""

from __future__ import annotations

import json
import math
from dataclasses import fields

import numpy as np
import pytest

from omnitrace_core import ConfigError, CurationConfig, GenerationConfig, SourceConfig, TextItem, Tracer
from omnitrace_core.config import as_config
from omnitrace_core.curation import curate

CONFIGS = (GenerationConfig, SourceConfig, CurationConfig)
INF, NAN = math.inf, math.nan

# (config, field, bad value, what the message must say is accepted)
BAD = [
    (GenerationConfig, "max_new_tokens", 0, "an integer >= 1"),
    (GenerationConfig, "max_new_tokens", True, "an integer >= 1"),
    (GenerationConfig, "max_new_tokens", 3.0, "an integer >= 1"),
    (GenerationConfig, "max_new_tokens", "8", "an integer >= 1"),
    (GenerationConfig, "min_new_tokens", -1, "an integer >= 0"),
    (GenerationConfig, "do_sample", 1, "True or False"),
    (GenerationConfig, "do_sample", "yes", "True or False"),
    (GenerationConfig, "temperature", 0, "a finite number > 0"),
    (GenerationConfig, "temperature", INF, "a finite number > 0"),
    (GenerationConfig, "top_k", -1, "an integer >= 0"),
    (GenerationConfig, "top_p", 0.0, "a finite number in (0, 1]"),
    (GenerationConfig, "top_p", NAN, "a finite number in (0, 1]"),
    (GenerationConfig, "repetition_penalty", INF, "a finite number > 0"),
    (GenerationConfig, "no_repeat_ngram_size", -2, "an integer >= 0"),
    (GenerationConfig, "seed", -1, "None or an integer in [0, "),
    (GenerationConfig, "seed", 1.5, "None or an integer in [0, "),
    (GenerationConfig, "max_prompt_tokens", 0, "None or an integer >= 1"),
    (SourceConfig, "audio_bin_seconds", 0, "a finite number > 0"),
    (SourceConfig, "video_bin_seconds", INF, "a finite number > 0"),
    (SourceConfig, "include_prompt", "no", "True or False"),
    (SourceConfig, "split_lines", None, "True or False"),
    (SourceConfig, "use_audio_in_video", 0, "True or False"),
    (SourceConfig, "video_fps", NAN, "a finite number > 0"),
    (SourceConfig, "video_max_frames", 1, "an integer >= 2"),
    (SourceConfig, "video_max_frames", 2.5, "an integer >= 2"),
    (SourceConfig, "audio_units", "words", "one of ['bins', 'segments']"),
    (SourceConfig, "asr_model", "  ", "a non-empty string"),
    (SourceConfig, "asr_model", None, "a non-empty string"),
    (SourceConfig, "segment_min_seconds", -1.0, "a finite number >= 0"),
    (SourceConfig, "segment_max_seconds", INF, "a finite number > 0"),
    (SourceConfig, "segment_max_gap_seconds", NAN, "a finite number >= 0"),
    (CurationConfig, "token_rule", "summ", "one of ['max_token', 'sum']"),
    (CurationConfig, "token_rule", None, "one of ['max_token', 'sum']"),
    (CurationConfig, "use_pos_weights", 1, "True or False"),
    (CurationConfig, "pos_weights", "NOUN", "a mapping of POS tags (strings) to finite numbers >= 0"),
    (CurationConfig, "default_pos_weight", INF, "a finite number >= 0"),
    (CurationConfig, "use_confidence", "False", "True or False"),
    (CurationConfig, "gamma", INF, "a finite number in [0, 10]"),
    (CurationConfig, "gamma", -0.5, "a finite number in [0, 10]"),
    (CurationConfig, "gamma", 50.0, "a finite number in [0, 10]"),
    (CurationConfig, "use_run_coherence", np.int64(1), "True or False"),
    (CurationConfig, "alpha", "0.5", "a finite number in [0, 1]"),
    (CurationConfig, "alpha", True, "a finite number in [0, 1]"),
    (CurationConfig, "use_run_rescue", None, "True or False"),
    (CurationConfig, "run_min", 1.5, "a finite number in [0, 1]"),
    (CurationConfig, "run_min_tokens", 2.0, "an integer >= 1"),
    (CurationConfig, "run_min_tokens", False, "an integer >= 1"),
    (CurationConfig, "use_p_min", "on", "True or False"),
    (CurationConfig, "p_min", NAN, "a finite number in [0, 1]"),
    (CurationConfig, "use_coverage", 0.0, "True or False"),
    (CurationConfig, "coverage", 0, "a finite number in (0, 1]"),
]


@pytest.mark.parametrize("config, name, value, accepted", BAD,
                         ids=[f"{c.__name__}.{n}={v!r}" for c, n, v, _ in BAD])
def test_a_bad_value_names_the_field_the_value_and_what_is_accepted(config, name, value, accepted):
    with pytest.raises(ConfigError) as caught:
        config(**{name: value})
    message = str(caught.value)
    assert message.startswith(f"{config.__name__}.{name} must be {accepted}")
    assert f"got {value!r} ({type(value).__name__})" in message


def test_every_field_of_every_config_is_checked():
    # A value no field accepts reaches each field's check, whatever its kind.
    for config in CONFIGS:
        for f in fields(config):
            with pytest.raises(ConfigError, match=rf"^{config.__name__}\.{f.name} must be "):
                config(**{f.name: object()})


def test_pos_weights_name_the_bad_tag():
    with pytest.raises(ConfigError, match=r"CurationConfig.pos_weights\['NOUN'\] must be a finite number >= 0, "
                                          r"got inf \(float\)"):
        CurationConfig(pos_weights={"NOUN": INF, "VERB": 0.9})
    with pytest.raises(ConfigError, match=r"pos_weights\['DET'\] must be a finite number >= 0, got -0.1"):
        CurationConfig(pos_weights={"DET": -0.1})
    with pytest.raises(ConfigError, match=r"a POS tag of CurationConfig.pos_weights must be a non-empty string, got 3"):
        CurationConfig(pos_weights={3: 1.0})


def test_fields_checked_together():
    with pytest.raises(ConfigError, match=r"GenerationConfig.min_new_tokens must be <= "
                                          r"GenerationConfig.max_new_tokens \(4\), got 5"):
        GenerationConfig(max_new_tokens=4, min_new_tokens=5)
    with pytest.raises(ConfigError, match=r"SourceConfig.segment_min_seconds must be <= "
                                          r"SourceConfig.segment_max_seconds \(3\), got 4"):
        SourceConfig(segment_min_seconds=4.0, segment_max_seconds=3.0)


def test_settings_typed_as_options_are_named_by_their_option():
    options = {"seed": "--seed", "max_new_tokens": "--max-new-tokens", "min_new_tokens": "--min-new"}
    assert GenerationConfig.from_options({"seed": np.int64(7)}, options) == GenerationConfig(seed=7)
    with pytest.raises(ConfigError) as bad:
        GenerationConfig.from_options({"seed": -1}, options)
    assert str(bad.value) == "--seed must be an integer in [0, 18446744073709551615], got -1"
    with pytest.raises(ConfigError, match=r"^--min-new must be <= --max-new-tokens \(4\), got 5$"):
        GenerationConfig.from_options({"max_new_tokens": 4, "min_new_tokens": 5}, options)
    with pytest.raises(ConfigError, match=r"^GenerationConfig.top_p must be a finite number in \(0, 1\], got 2"):
        GenerationConfig.from_options({"top_p": 2}, options)  # a field without an option keeps its own name
    with pytest.raises(ConfigError, match="unknown field"):
        GenerationConfig.from_options({"sead": 1}, options)


def test_values_that_used_to_slip_through_now_refused():
    # gamma = inf made every vote 0 (empty sentences); an infinite POS weight made shares NaN.
    span = ([0, 1], ["NOUN", "VERB"], [0.5, 0.4])
    assert curate(*span, CurationConfig(gamma=10.0))  # the largest accepted gamma still votes
    for bad in (dict(gamma=INF), dict(pos_weights={"NOUN": INF})):
        with pytest.raises(ConfigError):
            CurationConfig(**bad)


def test_numpy_scalars_become_plain_python_values():
    gen = GenerationConfig(max_new_tokens=np.int64(4), temperature=np.float32(0.5), do_sample=np.bool_(True))
    assert (type(gen.max_new_tokens), type(gen.temperature), type(gen.do_sample)) == (int, float, bool)
    cur = CurationConfig(gamma=np.float64(1.5), pos_weights={"NOUN": np.float32(2.0)}, run_min_tokens=np.int32(3))
    json.dumps([gen.to_dict(), cur.to_dict()])  # JSON-ready
    assert cur.pos_weights["NOUN"] == 2.0 and type(cur.run_min_tokens) is int
    # An int where a float is expected is a number like any other.
    assert CurationConfig(alpha=1).alpha == 1.0 and type(CurationConfig(alpha=1).alpha) is float


def test_defaults_are_valid_and_round_trip():
    for config in CONFIGS:
        assert config.from_dict(config().to_dict()) == config()
    with pytest.raises(ConfigError, match="CurationConfig settings must be a mapping of field names to values, got list"):
        CurationConfig.from_dict([("gamma", 1.0)])
    with pytest.raises(ConfigError, match=r"GenerationConfig got unknown field\(s\) \['max_tokens'\]"):
        GenerationConfig.from_dict({"max_tokens": 3})


def test_as_config_accepts_a_config_or_a_mapping_of_its_fields():
    gen = GenerationConfig(max_new_tokens=3)
    assert as_config(GenerationConfig, gen, "generation") is gen
    assert as_config(GenerationConfig, {"max_new_tokens": 3}, "generation") == gen
    with pytest.raises(ConfigError, match=r"GenerationConfig.max_new_tokens must be an integer >= 1, got 0"):
        as_config(GenerationConfig, {"max_new_tokens": 0}, "generation")
    with pytest.raises(ConfigError, match=r"^generation must be a GenerationConfig or a mapping of its fields, "
                                          r"got 5 \(int\)"):
        as_config(GenerationConfig, 5, "generation")
    with pytest.raises(ConfigError, match="curation must be a CurationConfig"):
        as_config(CurationConfig, GenerationConfig(), "curation")


def test_tracer_takes_mappings_for_settings_and_refuses_bad_ones(tracer):
    items = [TextItem("Say hello.")]
    result = tracer.trace(items, generation={"max_new_tokens": 2}, curation={"p_min": 0.2})
    assert result.generation == GenerationConfig(max_new_tokens=2)
    assert result.curation == CurationConfig(p_min=0.2)
    assert len(result.tokens) <= 2
    assert result.recurate({"use_p_min": False}).curation == CurationConfig(use_p_min=False)
    with pytest.raises(ConfigError, match=r"GenerationConfig.max_new_tokens must be an integer >= 1, got '2' \(str\)"):
        tracer.trace(items, generation={"max_new_tokens": "2"})
    with pytest.raises(ConfigError, match=r"SourceConfig got unknown field\(s\) \['fps'\]"):
        tracer.trace(items, sources={"fps": 2.0})
    with pytest.raises(ConfigError, match=r"^curation must be a CurationConfig or a mapping of its fields, got 0.5"):
        tracer.trace(items, curation=0.5)
    other = Tracer(tracer.backend, generation={"max_new_tokens": 1}, sources={"split_lines": False})
    assert other.generation == GenerationConfig(max_new_tokens=1)
    assert other.sources == SourceConfig(split_lines=False)
    with pytest.raises(ConfigError, match=r"CurationConfig.gamma must be a finite number in \[0, 10\], got inf"):
        Tracer(tracer.backend, curation={"gamma": INF})
