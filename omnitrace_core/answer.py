"""A given answer as the token ids the model would write for it, for tracing it by teacher forcing.

The model writes its answer right after the assistant prefix of the chat template (Qwen's
``<|im_start|>assistant\\n``). Byte-level BPE tokenisers read the text between two special tokens as
one stretch, so the answer is tokenised *in that stretch*: the prompt's text after its last special
token (``assistant\\n``), then the answer, with special-token strings in the answer kept as text.
The ids after the prefix's own are the answer's. Where the answer's first characters would merge
with the prefix into one token (an answer that starts with a line break after ``assistant\\n``), the
model cannot write that token, since the prefix is already in the prompt: the answer is then
tokenised on its own, as the model would start it.

This is the tokeniser's own (canonical) encoding. Re-tokenising a greedy output gives back the
model's own ids when the model wrote the canonical encoding, which models trained on that
tokeniser nearly always do (checked on the real Qwen2.5-Omni tokenizer: words, punctuation, line
breaks, emoji and ZWJ sequences). It cannot give them back when:

- the model wrote a non-canonical split (``" bl" + "ue"`` where the tokeniser has ``" blue"``):
  the text is the same, the ids are not;
- the output held special tokens (dropped from the decoded text) or an incomplete UTF-8 character
  at its end (decoded as U+FFFD);
- the text is not in the normal form the tokeniser's normaliser makes (Qwen's folds NFD ``e`` +
  U+0301 into ``é``): the ids are those of the normalised text, and so is the traced text.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

from .backends.user_text import encode_special_split, special_ids
from .errors import InputError

logger = logging.getLogger(__name__)


def answer_token_ids(tokenizer: Any, prompt_ids: Sequence[int], answer: str) -> list[int]:
    """The ids the model would generate for ``answer`` after ``prompt_ids``.

    Args:
        tokenizer: the model's (fast) tokenizer.
        prompt_ids: the prompt's ids, ending with the chat template's assistant prefix.
        answer: the answer text.

    Returns:
        The answer's token ids (no end-of-sequence token).

    Raises:
        InputError: the answer is empty or not a string.
    """
    if not isinstance(answer, str) or not answer:
        raise InputError(f"the answer to trace must be a non-empty string, got {answer!r}")
    prompt_ids = [int(i) for i in prompt_ids]
    specials = special_ids(tokenizer)
    last = max((k for k, i in enumerate(prompt_ids) if i in specials), default=-1)
    tail_ids = prompt_ids[last + 1:]
    tail = tokenizer.decode(tail_ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    ids = encode_special_split(tokenizer, tail + answer)
    if ids[:len(tail_ids)] == tail_ids:
        ids = ids[len(tail_ids):]
    else:  # the answer's start would merge with the prefix; the model starts a token of its own there
        logger.info("the answer's first characters merge with the prompt's last token; tokenised on its own")
        ids = encode_special_split(tokenizer, answer)
    if not ids:
        raise InputError(f"the answer {answer!r} has no tokens")
    return ids
