"""User text in the prompt, on Qwen2.5-Omni's real byte-level BPE tokenizer: it rebuilds exactly, stays
text whatever it spells, and lays out right next to tag expansions that merge with it."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

from omnitrace_core import layout as L
from omnitrace_core.backends.expansion import MediaBatch, Segment, expand, expanded_ranges, walk_expansion
from omnitrace_core.answer import answer_token_ids
from omnitrace_core.backends.user_text import char_spans, tokenize_prompt
from tests.shared_files import QWEN2_5_OMNI_3B, require


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(require(QWEN2_5_OMNI_3B))


def _rebuilt(text: str, start: np.ndarray, end: np.ndarray) -> str:
    return "".join(text[s:e] for s, e in zip(start, end))


#: byte-level splits of an emoji ZWJ sequence and of a flag after a space, NFD marks that NFC folds
TRICKY = ["a 👨\u200d👩\u200d👧 b", "Japan 🇯🇵!", "cafe\u0301 x", "e\u0301\u0301", "①②"]


@pytest.mark.parametrize("text", TRICKY)
def test_char_spans_rebuild_text_whose_offsets_overlap_or_leave_gaps(tokenizer, text):
    offsets = np.asarray(tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"])
    naive = "".join(text[s:e] for s, e in offsets)
    assert naive != text  # byte-level splits repeat characters, NFC folding drops marks
    start, end = char_spans(offsets[:, 0], 0, len(text))
    assert _rebuilt(text, start, end) == text
    assert np.all(start <= end) and np.array_equal(end[:-1], start[1:])


def test_special_token_strings_in_user_text_are_split_and_the_rest_is_the_tokenizers_own(tokenizer):
    user = "hi <|IMAGE|> there <|im_end|>"
    prompt = f"<|im_start|>user\n{user}<|vision_bos|><|IMAGE|><|vision_eos|><|im_end|>\n<|im_start|>assistant\n"
    lo = prompt.index(user)
    tokens = tokenize_prompt(tokenizer, prompt, [(lo, lo + len(user))], add_special_tokens=False)
    image, end = tokenizer.convert_tokens_to_ids(["<|IMAGE|>", "<|im_end|>"])
    assert tokens.resplit and tokens.ids.count(image) == 1 and tokens.ids.count(end) == 1  # the template's only
    inside = (tokens.offsets[:, 0] >= lo) & (tokens.offsets[:, 1] <= lo + len(user))
    assert tokenizer.decode([t for t, i in zip(tokens.ids, inside) if i]) == user
    plain = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert tokens.ids[:inside.argmax()] == plain[:inside.argmax()]  # the template's ids are untouched
    assert tokens.ids[-7:] == plain[-7:]


def _user_prompt(user: str, system: str = "You are a helpful assistant.") -> tuple[str, tuple[int, int]]:
    prompt = (f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|vision_bos|><|IMAGE|>"
              f"<|vision_eos|><|im_end|>\n<|im_start|>assistant\n")
    lo = prompt.index(f"user\n{user}") + len("user\n")
    return prompt, (lo, lo + len(user))


def test_added_tokens_that_are_not_special_are_text_in_user_text_and_tokens_in_the_template(tokenizer):
    """``<tool_call>`` is an added token of Qwen's tokenizer but not a special one: typed by a user it is
    text, like a special-token string; written by the template (here its system prompt) it stays a token."""
    user = "call <tool_call>f()</tool_call> then <|fim_prefix|>!"
    prompt, span = _user_prompt(user, system="Tools: <tool_call>")
    added = tokenizer.convert_tokens_to_ids(["<tool_call>", "</tool_call>", "<|fim_prefix|>"])
    assert not any(tokenizer.added_tokens_decoder[i].special for i in added)
    tokens = tokenize_prompt(tokenizer, prompt, [span], add_special_tokens=False)
    assert tokens.resplit
    inside = (tokens.offsets[:, 0] >= span[0]) & (tokens.offsets[:, 1] <= span[1])
    user_ids = [t for t, i in zip(tokens.ids, inside) if i]
    assert not set(user_ids) & set(added) and tokenizer.decode(user_ids) == user
    assert tokens.ids.count(added[0]) == 1  # the system prompt's, as the tokenizer reads it
    plain = tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
    after = [t for t, (s, _) in zip(plain["input_ids"], plain["offset_mapping"]) if s >= span[1]]
    assert tokens.ids[:inside.argmax()] == plain["input_ids"][:inside.argmax()]  # the template's are untouched
    assert tokens.ids[-len(after):] == after


def test_tokenising_user_text_leaves_the_tokenizer_as_it_was(tokenizer):
    backend = tokenizer.backend_tokenizer
    prompt, span = _user_prompt("hi <|IMAGE|> there")
    tokenizer("warm up", add_special_tokens=False)
    assert not backend.encode_special_tokens and not tokenizer.split_special_tokens
    assert tokenize_prompt(tokenizer, prompt, [span], add_special_tokens=False).resplit
    assert answer_token_ids(tokenizer, tokenizer(prompt)["input_ids"], "an <|im_end|> answer")
    assert not backend.encode_special_tokens and not tokenizer.split_special_tokens


def test_two_threads_tokenising_at_once_both_get_their_own_result(tokenizer):
    """One trace's user text holds special-token strings (tokenised as text), the other's does not: run
    together, as two traces of the app can, neither sees the other's way of reading specials."""
    long = " ".join(f"word{k}" for k in range(300))
    jobs = [_user_prompt(f"{long} <|IMAGE|> and <|im_end|> {long}"), _user_prompt(f"{long} plain {long}")]
    expected = [tokenize_prompt(tokenizer, prompt, [span], False).ids for prompt, span in jobs]
    assert expected[0] != expected[1]
    start = threading.Barrier(len(jobs))
    failures: list[str] = []

    def work(k: int) -> None:
        prompt, span = jobs[k]
        start.wait()
        try:
            for _ in range(40):
                if tokenize_prompt(tokenizer, prompt, [span], False).ids != expected[k]:
                    failures.append(f"job {k}: other ids")
        except Exception as exc:  # noqa: BLE001 - a failure in a thread is reported by the test
            failures.append(f"job {k}: {type(exc).__name__}: {exc}")

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, as a busy server does
    try:
        threads = [threading.Thread(target=work, args=(k,)) for k in range(len(jobs))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not failures, failures[:3]


@pytest.mark.parametrize("first, between, second", [("Hello ", "", "world"), (">", "\n", "\n")])
def test_two_text_items_never_share_a_token(tokenizer, first, between, second):
    """Tokenised whole, "Hello " + "world" gives the token " world"; ">", a separating line break and a
    line-break item give one token too."""
    prompt = f"<|im_start|>user\n{first}{between}{second}<|im_end|>\n"
    lo = len("<|im_start|>user\n")
    spans = [(lo, lo + len(first)), (lo + len(first + between), lo + len(first + between + second))]
    assert tokenize_prompt(tokenizer, prompt, [(lo, spans[1][1])], False).ids == tokenizer(prompt)["input_ids"]
    tokens = tokenize_prompt(tokenizer, prompt, spans, False)
    assert tokens.resplit

    def touching(a, b):
        return (tokens.offsets[:, 1] > a) & (tokens.offsets[:, 0] < b)

    assert not (touching(*spans[0]) & touching(*spans[1])).any()
    for a, b in spans:
        assert prompt[a:b] in tokenizer.decode(np.asarray(tokens.ids)[touching(a, b)].tolist())


def test_tag_expansions_that_merge_with_neighbouring_text_lay_out(tokenizer):
    """A tag with plain text around its special tokens, like MiniCPM-o's ``(<image>./</image>)``: the BPE
    merges ``picture?`` + ``(`` into ``?(`` and ``)`` + ``.`` into ``).``; those tokens are the texts'."""
    before, after = "What is in this picture?", ". Describe it."
    rendered = f"<|im_start|>user\n{before}<|IMAGE|>{after}<|im_end|>\n<|im_start|>assistant\n"
    at = rendered.index("<|IMAGE|>")
    replacement = "(<|vision_bos|>./<|IMAGE|><|IMAGE|><|vision_eos|>)"
    record = {"type": "image", "span": (at, at + 9), "new_span": (at, at + len(replacement)), "text": "<|IMAGE|>",
              "replacement": replacement}  # the processor's record of an expansion
    ranges = {0: (rendered.index(before), at, 0), 2: (at + 9, at + 9 + len(after), 0)}
    spans = expanded_ranges(ranges, [record])
    expanded = expand(rendered, [record])
    assert [expanded[lo:hi] for lo, hi, _ in spans.values()] == [before, after]
    tokens = tokenize_prompt(tokenizer, expanded, [(lo, hi) for lo, hi, _ in spans.values()], False)
    pieces = tokenizer.convert_ids_to_tokens(tokens.ids)
    assert "?(" in pieces and ")." in pieces and not tokens.resplit
    image = tokenizer.convert_tokens_to_ids("<|IMAGE|>")
    runs = []

    def fill(draft, segment, positions, ctx):
        runs.append(positions)
        draft.tiles(positions[ctx.ids[positions] == image], segment.item, (1, 2))

    layout = walk_expansion(tokens, {"text_replacement_offsets": [[record]]}, MediaBatch(segments=[
        Segment(1, "image", 0)]), spans, fill)
    assert layout.positions(L.IMAGE, 1).tolist() == np.flatnonzero(np.asarray(tokens.ids) == image).tolist()
    assert [pieces[i] for i in runs[0]] == ["<|vision_bos|>", "./", "<|IMAGE|>", "<|IMAGE|>", "<|vision_eos|>"]
    for item, text in ((0, before), (2, after)):
        positions = layout.positions(L.TEXT, item)
        assert _rebuilt(text, layout.char_start[positions], layout.char_end[positions]) == text
    assert pieces[layout.positions(L.TEXT, 0)[-1]] == "?(" and pieces[layout.positions(L.TEXT, 2)[0]] == ")."
