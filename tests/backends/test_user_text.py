"""User text in the prompt, on Qwen2.5-Omni's real byte-level BPE tokenizer: it rebuilds exactly, stays
text whatever it spells, and lays out right next to tag expansions that merge with it."""

from __future__ import annotations

import numpy as np
import pytest

from omnitrace_core import layout as L
from omnitrace_core.backends.expansion import MediaBatch, Segment, expand, expanded_ranges, walk_expansion
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
