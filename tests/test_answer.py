"""A given answer as the ids the model would write (real Qwen2.5-Omni tokenizer), and tracing it by teacher forcing."""

from __future__ import annotations

import json
import unicodedata

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnitrace_core import InputError, TraceResult
from omnitrace_core.answer import answer_token_ids
from tests.shared_files import QWEN2_5_OMNI_3B, require


@pytest.fixture(scope="module")
def qwen():
    """The real Qwen2.5-Omni tokenizer and a real prompt's ids (the chat template's assistant prefix last)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(require(QWEN2_5_OMNI_3B))
    messages = [{"role": "user", "content": "Which animal is heard?\nA. dog\nB. cat"}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered.endswith("<|im_start|>assistant\n")
    return tokenizer, tokenizer(rendered)["input_ids"]


OUTPUTS = [
    "The ball is blue. The answer is A.",
    "A dog barks at 2 s, then a cat meows.\n\n1. dog\n2. cat",
    "  indented, with   runs of spaces\tand a tab",
    "Numbers: 3.14159, 1,000,000 and -42%.",
    "Emoji 🙂, a family 👩\u200d👩\u200d👧 and a flag 🇫🇷.",
    "中文回答：这是一只狗。 Mixed 日本語 text.",
    "def f(x):\n    return x ** 2  # code",
    "Literal <|im_end|> and <|AUDIO|> strings stay text.",
    "été, naïve, Ångström",
]


@pytest.mark.parametrize("text", OUTPUTS)
def test_a_canonical_greedy_output_re_tokenises_to_its_own_ids(qwen, text):
    tokenizer, prompt = qwen
    # what a model trained on this tokenizer writes: the tokenizer's encoding of the text after the prefix
    written = tokenizer("assistant\n" + text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    assert written[:2] == prompt[-2:]
    written = written[2:]
    decoded = tokenizer.decode(written, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    assert decoded == text
    assert answer_token_ids(tokenizer, prompt, decoded) == written


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_any_text_round_trips(qwen, text):
    tokenizer, prompt = qwen
    text = unicodedata.normalize("NFC", text)  # the tokenizer's normaliser folds other forms (see below)
    ids = answer_token_ids(tokenizer, prompt, text)
    decoded = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    assert decoded == text
    assert answer_token_ids(tokenizer, prompt, decoded) == ids


def test_an_answer_starting_with_a_line_break_does_not_merge_with_the_prefix(qwen):
    tokenizer, prompt = qwen
    # in one stretch, "assistant\n" + "\nHello" would give "\n\n": the model cannot write that token,
    # its prompt already holds the first line break
    ids = answer_token_ids(tokenizer, prompt, "\nHello")
    assert tokenizer.convert_ids_to_tokens(ids) == ["Ċ", "Hello"]


def test_the_documented_cases_where_the_ids_cannot_come_back(qwen):
    tokenizer, prompt = qwen
    canonical = answer_token_ids(tokenizer, prompt, "The ball is blue.")
    # a non-canonical split the model might write: same text, other ids
    split = tokenizer.convert_tokens_to_ids(["The", "Ġball", "Ġis", "Ġbl", "ue", "."])
    assert tokenizer.decode(split) == "The ball is blue." and answer_token_ids(tokenizer, prompt, "The ball is blue.") \
        == canonical != split
    # NFD text is normalised to NFC by the tokenizer: the ids (and the traced text) are the NFC ones
    nfd = unicodedata.normalize("NFD", "été")
    assert tokenizer.decode(answer_token_ids(tokenizer, prompt, nfd)) == "été" != nfd


@pytest.mark.parametrize("bad", ["", None, 3])
def test_an_empty_answer_is_refused(qwen, bad):
    tokenizer, prompt = qwen
    with pytest.raises(InputError, match="non-empty string"):
        answer_token_ids(tokenizer, prompt, bad)


# --------------------------------------------------------------------------------------------
# Tracing a given answer on the demo model (a trained Qwen2.5-Omni thinker: real answers)
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_tracer():
    from omnitrace_core import Tracer
    from omnitrace_core.assets import DEFAULT_MODEL_DIR

    return Tracer.from_pretrained(DEFAULT_MODEL_DIR, device="cpu")


def _samples(tasks):
    from omnitrace_core.batch import load_questions, media_bases
    from omnitrace_core.assets import DEFAULT_BENCHMARK_DIR
    from omnitrace_core.inputs import parse_sample

    path = DEFAULT_BENCHMARK_DIR / "test" / "questions.json"
    raw = load_questions(path)
    return [parse_sample(next(s for s in raw if s["task"] == task), task, media_bases(path)) for task in tasks]


@pytest.mark.parametrize("signal", ["attmean", "attgrads"])
def test_forcing_the_greedy_output_gives_the_same_ids_and_units(demo_tracer, signal):
    for sample in _samples(["text_qa", "image_description", "audio_qa"]):
        free = demo_tracer.trace(sample.items, signal=signal)
        forced = demo_tracer.trace(sample.items, signal=signal, answer=free.text)
        assert [t.token_id for t in forced.tokens] == [t.token_id for t in free.tokens]
        assert forced.text == free.text and forced.forced and not free.forced
        assert forced.stop_reason == "answer"
        np.testing.assert_array_equal(forced.token_trace()[0], free.token_trace()[0])
        np.testing.assert_allclose(forced.atom_sum, free.atom_sum, atol=1e-6)
        assert [s.sources for s in forced.spans] == [s.sources for s in free.spans]
        # greedy: every token is the model's top choice, rated, with no other choice named
        assert all(t.logprob is not None and t.logprob <= 0 and t.top_id is None for t in free.tokens)
        assert [t.logprob for t in forced.tokens] == pytest.approx([t.logprob for t in free.tokens], abs=1e-5)


def test_a_wrong_answer_shows_where_the_model_disagrees(demo_tracer):
    (sample,) = _samples(["text_qa"])
    right = sample.raw["answer"]  # "The ball is blue. The answer is A."
    wrong = right.replace("blue", "red")
    result = demo_tracer.trace(sample.items, answer=wrong, generation={"max_new_tokens": 2})
    assert result.text == wrong  # traced whole: max_new_tokens does not cut a given answer
    disagree = [t for t in result.tokens if t.top_id is not None]
    assert [t.text for t in disagree][0] == " red"
    red = disagree[0]
    assert red.top_text == " blue" and red.top_logprob > red.logprob
    assert red.logprob < min(t.logprob for t in result.tokens if t.top_id is None)
    assert len(result.spans) == 2 and all(s.sources for s in result.spans)  # traced like generated text
    again = TraceResult.from_json(result.to_json())
    assert again == result and again.forced and again.tokens[red.index].top_text == " blue"
    saved = json.loads(result.to_json())
    assert saved["forced"] is True and "top_id" not in saved["tokens"][0]


def test_stream_forces_the_answer_token_by_token(demo_tracer):
    (sample,) = _samples(["text_qa"])
    steps = list(demo_tracer.stream(sample.items, answer="The ball is blue."))
    assert "".join(s.token_text for s in steps if not s.done) == "The ball is blue."
    assert all(s.logprob is not None for s in steps if not s.done) and steps[-1].result.forced
