"""User text in a prompt: where each text item lies, how it is kept text, and which characters each token covers.

Three guarantees, whatever the text (any Unicode, any string the model's tokenizer reads as one added
token, special or not):

- **Where**: each text item is found in the rendered chat template by rendering the same messages
  once more with a marker in place of every text (:func:`locate_texts`); a search for the text
  itself could land in the template's own words (a system prompt, a role name).
- **Text stays text**: a special-token string inside user text (the MANTIS samples write a literal
  ``<image>``, SmolVLM's image placeholder) must neither be expanded by the processor nor become
  that special token. The processor gets the prompt with such strings overwritten by a neutral
  character of the same length (:func:`mask_special_strings`), so it expands only the template's
  placeholders and its record of where it expanded them holds for the real text; the prompt ids are
  then a tokenisation of the real expanded text in which the stretches holding user text are
  tokenised as plain text (:func:`tokenize_prompt`). The same rule holds for added tokens that are
  not special (Qwen's ``<tool_call>``): typed by a user, they are text, not the token a model
  writes to call a tool.
- **Which characters**: the tokeniser's offsets overlap (byte-level BPE splits one emoji, flag or
  ZWJ sequence over several tokens) or leave gaps (NFC folds ``e`` + U+0301 into one character).
  :func:`char_spans` cuts each text item into consecutive ranges, one per token, so that the
  ranges of an item's tokens always rebuild the item exactly.

Everywhere else the prompt ids are the tokeniser's own on the whole string, as the processor makes
them. Two text items never share a token: where a merge would join them (``"Hello "`` + ``"world"``
gives the token ``" world"``; ``">"``, a line break between texts and ``"\n"`` give ``">\n\n"``),
that stretch is tokenised in pieces, one text item each.
"""

from __future__ import annotations

import bisect
import json
import re
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from ..inputs import Item

#: Stand-in for text item k in a marker rendering: private-use characters no chat template writes.
_MARKER = "\ue000{}\ue001"
_MARKER_RE = re.compile("\ue000(\\d+)\ue001")
#: Characters that may overwrite a masked special-token string (the first that is in none of them).
_NEUTRAL = "#~*=x0"
#: tokenizer -> {kind: (its size when copied, a private copy of its backend)}; see :func:`_private_backend`
_BACKENDS: "weakref.WeakKeyDictionary[Any, dict[str, tuple[int, Any]]]" = weakref.WeakKeyDictionary()
_BACKENDS_LOCK = threading.Lock()


def marked_parts(parts: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat content parts with every text item's text replaced by its marker (see :func:`locate_texts`)."""
    return [{**part, "text": _MARKER.format(part["item"])} if "item" in part else dict(part) for part in parts]


def locate_texts(rendered: str, skeleton: str, items: Sequence[Item]) -> dict[int, tuple[int, int, int]]:
    """Where each text item lies in the rendered template: item -> (start, end, lead).

    Args:
        rendered: the chat template rendered with the real texts.
        skeleton: the same messages rendered with :func:`marked_parts`.
        items: the input items (text items are looked up by index).

    ``lead`` is the number of leading characters of the item the template dropped: some templates
    (Gemma's) trim texts, so an item may appear stripped of surrounding whitespace. A
    whitespace-only text such a template drops has no entry.
    """
    pieces = _MARKER_RE.split(skeleton)  # template, item, template, item, ..., template
    if not rendered.startswith(pieces[0]):
        raise RuntimeError("the chat template renders differently with other texts; cannot locate them")
    ranges: dict[int, tuple[int, int, int]] = {}
    cursor = len(pieces[0])
    for k in range(1, len(pieces), 2):
        item, after = int(pieces[k]), pieces[k + 1]
        text = items[item].text
        stripped = text.strip()
        for shown, lead in ((text, 0), (stripped, len(text) - len(text.lstrip()))):
            if rendered.startswith(shown + after, cursor) and (k + 2 < len(pieces) or
                                                                cursor + len(shown + after) == len(rendered)):
                break
        else:
            raise RuntimeError(f"the chat template altered text item {item}; cannot locate it in the prompt")
        if shown:
            ranges[item] = (cursor, cursor + len(shown), lead)
        cursor += len(shown) + len(after)
    return ranges


def special_strings(tokenizer: Any) -> tuple[str, ...]:
    """Every string the tokenizer reads as a special token, longest first."""
    strings = set(s for s in tokenizer.all_special_tokens if s)
    added = getattr(tokenizer, "added_tokens_decoder", {}).values()
    strings.update(str(t) for t in added if getattr(t, "special", False))
    return tuple(sorted(strings, key=len, reverse=True))


def special_ids(tokenizer: Any) -> frozenset[int]:
    """Ids of every special token of the tokenizer."""
    ids = set(tokenizer.all_special_ids)
    ids.update(i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if getattr(t, "special", False))
    return frozenset(ids)


def added_ids(tokenizer: Any) -> frozenset[int]:
    """Ids of every token the tokenizer matches as a whole string before its model runs: its special
    tokens and its other added tokens (Qwen's ``<tool_call>``)."""
    return special_ids(tokenizer) | frozenset(getattr(tokenizer, "added_tokens_decoder", {}))


def encode_as_text(tokenizer: Any, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids and [start, end) character offsets of ``text`` read as plain text: no added token, special
    or not, is matched; every character goes through the model's own tokenisation.

    The tokenizer itself is left as it is, so concurrent calls cannot disturb each other: transformers'
    per-call ``split_special_tokens=True`` sets a flag on the tokenizer's shared backend and leaves it
    set (a trace in another thread then reads its own prompt with specials split, or this one without),
    and it keeps non-special added tokens whole anyway.
    """
    enc = _private_backend(tokenizer, "text").encode(text, add_special_tokens=False)
    return list(enc.ids), [(int(s), int(e)) for s, e in enc.offsets]


def encode_special_split(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` with special-token strings read as text and other added tokens kept: what
    ``tokenizer(text, add_special_tokens=False, split_special_tokens=True)`` gives, without changing the
    tokenizer (see :func:`encode_as_text`)."""
    return list(_private_backend(tokenizer, "split_special").encode(text, add_special_tokens=False).ids)


def _private_backend(tokenizer: Any, kind: str) -> Any:
    """A copy of the (fast) tokenizer's backend, made once per tokenizer and never changed afterwards.

    ``kind``: "text" (no added tokens) or "split_special" (special tokens not matched). A copy takes
    about a second for Qwen's 150k-token vocabulary; it is made again if tokens were added since.
    """
    from tokenizers import Tokenizer

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise TypeError(f"{type(tokenizer).__name__} is not a fast tokenizer; user text needs one "
                        "(load the processor with its fast tokenizer)")
    size = backend.get_vocab_size(with_added_tokens=True)
    with _BACKENDS_LOCK:
        copies = _BACKENDS.setdefault(tokenizer, {})
        if kind not in copies or copies[kind][0] != size:
            state = json.loads(backend.to_str())
            state["truncation"] = state["padding"] = None  # a call's settings, left there by transformers
            if kind == "text":
                state["added_tokens"] = []
            copy = Tokenizer.from_str(json.dumps(state))
            copy.encode_special_tokens = kind == "split_special"
            copies[kind] = (size, copy)
        return copies[kind][1]


def mask_special_strings(rendered: str, ranges: dict[int, tuple[int, int, int]], specials: Sequence[str]) -> str:
    """``rendered`` with every special-token string inside a text item overwritten, same length.

    The processor is called on this text: it then expands only the template's own placeholders,
    and the spans it reports hold for ``rendered`` too. The neutral character is one that occurs in
    no special string, so the masked text can form none.
    """
    neutral = next((c for c in _NEUTRAL if not any(c in s for s in specials)), None)
    if neutral is None:  # pragma: no cover - no tokenizer has specials spelling all of them
        raise RuntimeError("no neutral character to mask special-token strings with")
    chars = list(rendered)
    for lo, hi, _lead in ranges.values():
        text = rendered[lo:hi]
        for special in specials:  # longest first: a longer special is masked whole
            for match in re.finditer(re.escape(special), text):
                chars[lo + match.start():lo + match.end()] = neutral * len(special)
            text = "".join(chars[lo:hi])
    return "".join(chars)


@dataclass(frozen=True)
class PromptTokens:
    """Token ids of a prompt text with each token's character span in it.

    Attributes:
        ids: (L,) token ids.
        offsets: (L, 2) [start, end) character span of each token in the text.
        resplit: whether some stretch was tokenised in pieces (user text holding a special-token
            string, or two text items a token would join), so that the ids differ from a
            plain tokenisation of the whole text.
    """

    ids: list[int]
    offsets: np.ndarray
    resplit: bool


def tokenize_prompt(tokenizer: Any, text: str, spans: Sequence[tuple[int, int]],
                    add_special_tokens: bool) -> PromptTokens:
    """Tokenise a prompt as the processor does, except that user text stays text.

    The whole text is tokenised at once (the processor's ids). A stretch between two of the
    template's added tokens is tokenised again, in pieces (one per user span) and as plain text
    (:func:`encode_as_text`), if a user span in it holds an added token (special or not) or a token
    there straddles two user spans: tokenisers treat the stretches between added tokens
    independently, so nothing else changes.

    Args:
        tokenizer: the processor's (fast) tokenizer.
        text: the prompt, media placeholders expanded.
        spans: [start, end) of every text item in ``text``.
        add_special_tokens: as passed to the processor.

    Raises:
        InputError: the tokenizer cannot read a piece of user text as text (its own vocabulary
            makes an added token of it).
    """
    enc = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)
    spans = sorted((int(a), int(b)) for a, b in spans if b > a)
    added = list(added_ids(tokenizer))
    owner = span_owner(offsets, spans)
    is_added = np.isin(ids, added)
    broken = (is_added & (owner >= 0)) | (owner == -2)
    if not broken.any():
        return PromptTokens(ids, offsets, False)
    # the template's own added tokens bound the stretches a tokenizer reads independently
    wall = is_added & (owner == -1) & (offsets[:, 1] > offsets[:, 0])
    stretches = _stretches(offsets[wall], len(text))
    starts = [lo for lo, _ in stretches]
    stretch = np.array([_stretch_of(stretches, starts, s, e) if e > s and not w else -1
                        for (s, e), w in zip(offsets.tolist(), wall)], dtype=np.int64)
    first = {int(k): int(np.flatnonzero(stretch == k)[0]) for k in set(stretch[broken].tolist())}
    new_ids: list[int] = []
    new_offsets: list[tuple[int, int]] = []
    for i, token in enumerate(ids):
        k = int(stretch[i])
        if k not in first:
            new_ids.append(token)
            new_offsets.append((int(offsets[i, 0]), int(offsets[i, 1])))
        elif first[k] == i:  # the stretch's tokens are replaced by its tokenisation in pieces
            for piece_ids, piece_offsets in _tokenize_pieces(tokenizer, text, stretches[k], spans):
                new_ids += piece_ids
                new_offsets += piece_offsets
    result = np.asarray(new_offsets, dtype=np.int64).reshape(-1, 2)
    owner = span_owner(result, spans)
    left = (np.isin(new_ids, added) & (owner >= 0)) | (owner == -2)
    if left.any():
        s, e = result[int(np.flatnonzero(left)[0])]
        raise InputError(f"the tokenizer cannot read {text[s:e]!r} in the input text as text; reword that part")
    return PromptTokens(new_ids, result, True)


def span_owner(offsets: np.ndarray, spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """Per token ((L, 2) offsets): index of the one span it overlaps, -1 for none, -2 for several.

    A token with an empty span (s, s) overlaps the span holding character s.
    """
    owner = np.full(len(offsets), -1, dtype=np.int64)
    s, e = offsets[:, 0], offsets[:, 1]
    for k, (lo, hi) in enumerate(spans):
        hit = (np.minimum(e, hi) > np.maximum(s, lo)) | ((s == e) & (lo <= s) & (s < hi))
        owner[hit & (owner != -1)] = -2
        owner[hit & (owner == -1)] = k
    return owner


def _stretches(walls: np.ndarray, length: int) -> list[tuple[int, int]]:
    """The stretches of text between consecutive walls ((n, 2) spans of the template's special tokens)."""
    bounds, cursor = [], 0
    for s, e in walls.tolist():
        bounds.append((cursor, s))
        cursor = e
    bounds.append((cursor, length))
    return bounds


def _stretch_of(stretches: list[tuple[int, int]], starts: list[int], s: int, e: int) -> int:
    """Index of the stretch holding [s, e) (-1: none); ``starts``: the stretches' starts."""
    k = bisect.bisect_right(starts, s) - 1
    return k if k >= 0 and e <= stretches[k][1] else -1


def _tokenize_pieces(tokenizer: Any, text: str, stretch: tuple[int, int],
                     spans: list[tuple[int, int]]) -> list[tuple[list[int], list[tuple[int, int]]]]:
    """Tokenise a stretch as plain text, cut after each user span that another one follows in it.

    Each piece then holds one user span, with the template text before it (a separator between
    two texts, such as a line break, can join both of them into one token otherwise).
    """
    lo, hi = stretch
    inside = [(a, b) for a, b in spans if lo <= a and b <= hi]
    cuts = [end for (_, end), _ in zip(inside, inside[1:])]
    out = []
    for a, b in zip([lo, *cuts], [*cuts, hi]):
        if b <= a:
            continue
        ids, offsets = encode_as_text(tokenizer, text[a:b])
        out.append((ids, [(s + a, e + a) for s, e in offsets]))
    return out


def char_spans(starts: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut [lo, hi) into consecutive ranges, one per token, from the tokens' start offsets.

    A token starts at its first character not already taken by an earlier token of the item and
    runs up to where the next one starts (the last to ``hi``): a character several byte-level
    tokens share goes to the last of them (the others get an empty range at that character), and a
    character no token covers (a combining mark folded by NFC) joins the token before it. The ranges
    rebuild text[lo:hi] exactly.

    Args:
        starts: (n,) start offsets of the item's tokens, in prompt order.
        lo, hi: the item's span.

    Returns:
        (start, end) arrays of shape (n,).
    """
    start = np.maximum.accumulate(np.clip(np.asarray(starts, dtype=np.int64), lo, hi))
    start[0] = lo
    end = np.append(start[1:], hi)
    return start, end
