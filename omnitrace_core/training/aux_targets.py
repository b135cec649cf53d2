"""Auxiliary per-token training targets of the demo model (training only: their heads are not saved).

A 1 M-parameter model trained from scratch on CPU for under an hour does not find, by the answer
loss alone, the lookups the tasks need (which image is the second one, which note sentence names
the drum, which option line says "red"). Linear probes on intermediate states, trained beside
the answer loss, make the needed features appear early:

- on the language model's *input* embeddings (what the encoders deliver): what a media token
  shows, i.e. the colour and shape in an image cell or video frame, and the sound type at an
  audio token (class 0: nothing); the same probes read the text tokens that name a colour, shape
  or sound, so a word and the media tokens showing what it names share a direction, which a
  question's word can then look up;
- on the *first decoder layer's* output: the second a timed token lies in (and the number of a
  "second N" in the text); the order of the unit a
  token belongs to (the k-th image, the k-th sound or shown object in time, the k-th fact of a
  note); which output sentence an answer token is in; what a note's fact states (name, colour,
  thing) on its last word and full stop, where all of it has been read; an option line's letter on its words; the token
  before every text token; and, where the letter of a QA answer is decided, the option word the
  answer has just stated;
- on the first decoder layer's output too, the same colour, shape and sound probes as on the
  embeddings (what a media token shows, what a word names), and, at the *answer slot* of a QA
  answer (the position that predicts its answer word), the colour, shape, sound or second that
  the answer named before it ("The blue object is a" -> blue): the slot then carries the key of
  its look-up in the same directions as the media tokens that show it, where the next layer's
  queries and keys read both. Without it the look-ups keyed by a colour, a sound or a time formed
  late or never (only the shape-keyed one did, whose key word comes right before the slot).

These shape what each position *contains*; which positions the model attends to when it
generates is learned only from the answer loss, so the attention that OmniTrace reads is the
model's own.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import layout as L
from ..tasks import synth
from ..tasks.families import COLOUR_NAMES, LETTERS, NAMES, THINGS

#: target -> number of classes (0: the vocabulary size).
CLASSES = {"colour": 1 + len(synth.COLOURS), "shape": 1 + len(synth.SHAPES), "sound": 1 + len(synth.SOUNDS),
           "second": 10, "index": 6, "sentence": 8, "fact_name": len(NAMES), "fact_colour": len(COLOUR_NAMES),
           "fact_thing": len(THINGS), "letter": len(LETTERS), "previous": 0, "recall": 0,
           "colour_l1": 1 + len(synth.COLOURS), "shape_l1": 1 + len(synth.SHAPES), "sound_l1": 1 + len(synth.SOUNDS)}
#: targets read from the input embeddings; the others from the first decoder layer's output.
ON_EMBEDDINGS = ("colour", "shape", "sound")
#: first-layer twins of the embedding probes (same targets, plus a QA answer's key at its slot)
KEY_PROBES = {"colour": "colour_l1", "shape": "shape_l1", "sound": "sound_l1"}
_COLOUR = {c: k + 1 for k, c in enumerate(synth.COLOURS)}
_SHAPE = {s: k + 1 for k, s in enumerate(synth.SHAPES)}
_SOUND = {s: k + 1 for k, s in enumerate(synth.SOUNDS)}


def _media(out: dict[str, torch.Tensor], layout, sample, pos: int, kind: int, item: int) -> None:
    meta = sample.entries[item - 1].meta
    if kind == L.IMAGE:
        colour, shape = meta["cells"].get(int(layout.tile[pos]), (None, None))
        out["colour"][pos], out["shape"][pos] = _COLOUR.get(colour, 0), _SHAPE.get(shape, 0)
        out["index"][pos] = min(sum(e.kind == "image" for e in sample.entries[:item - 1]), CLASSES["index"] - 1)
        return
    second = int(np.floor(layout.time_start[pos] + 1e-6))
    out["second"][pos] = min(second, CLASSES["second"] - 1)
    shown = meta.get("shown", {})
    if kind == L.VIDEO_VISUAL:
        colour, shape = shown.get(second, (None, None))
        out["colour"][pos], out["shape"][pos] = _COLOUR.get(colour, 0), _SHAPE.get(shape, 0)
        if second in shown:
            out["index"][pos] = sorted(shown).index(second)
        return
    sounds = meta["sounds"]  # audio, or the audio track of a video (described after the shown objects)
    out["sound"][pos] = _SOUND.get(sounds.get(second), 0)
    if second in sounds:
        out["index"][pos] = len(shown) + sorted(sounds).index(second)


_SHAPE_WORDS = {**_SHAPE, **{s + ("es" if s.endswith("s") else "s"): k for s, k in _SHAPE.items()}}


def _word(out: dict[str, torch.Tensor], pos: int, text: str, lo: int, hi: int) -> None:
    """Targets of a text token from the word it spells: a colour, shape or sound, or the N of "second N"."""
    word = text[lo:hi].strip()
    if word in _COLOUR:
        out["colour"][pos] = _COLOUR[word]
    elif word in _SHAPE_WORDS:
        out["shape"][pos] = _SHAPE_WORDS[word]
    elif word in _SOUND:
        out["sound"][pos] = _SOUND[word]
    elif word.isdigit() and text[:lo].rstrip().endswith("second") and int(word) < CLASSES["second"]:
        out["second"][pos] = int(word)


def _text(out: dict[str, torch.Tensor], layout, sample, pos: int, item: int,
          lines: dict[tuple[int, int, int], int]) -> None:
    if item == 0:  # the instruction
        return
    lo, hi = int(layout.char_start[pos]), int(layout.char_end[pos])
    text = sample.entries[item - 1].value
    _word(out, pos, text, lo, hi)
    for (line_item, a, b), letter in lines.items():
        if item == line_item and a <= lo and hi <= b:
            out["letter"][pos] = letter
    for start, end, index, name, colour, thing in sample.entries[item - 1].meta.get("facts", ()):
        if end - 1 - len(colour) < hi <= end:  # the fact's last word (its colour) and full stop: all of it is known
            out["index"][pos] = index
            out["fact_name"][pos] = NAMES.index(name)
            out["fact_colour"][pos] = COLOUR_NAMES.index(colour)
            out["fact_thing"][pos] = THINGS.index(thing)


def targets(layout, sample, ids: torch.Tensor, answer_offsets: list[tuple[int, int]],
            answer_keys: bool = True) -> dict[str, torch.Tensor]:
    """Per position of prompt + answer, every auxiliary target (-100 where it does not apply).

    Args:
        layout: the prompt's token layout (``PreparedInput.layout``).
        sample: the generated :class:`~.tasks.TaskSample`.
        ids: (L + T,) prompt and answer token ids (the answer ends with ``<|im_end|>``).
        answer_offsets: character range of each answer token in ``sample.answer`` (T - 1 of them).
        answer_keys: also set a QA answer's key at its slot (see :func:`_answer_key`).
    """
    n, length = len(ids), len(layout)
    out = {name: torch.full((n,), -100, dtype=torch.long) for name in CLASSES}
    lines = {(ref.item, ref.char_start + 2, ref.char_end): LETTERS.index(letter)
             for letter, ref in sample.options.items()}  # an option's words, after its "A." prefix
    for pos in np.flatnonzero(layout.kind >= 0):
        kind, item = int(layout.kind[pos]), int(layout.item[pos])
        if kind == L.TEXT:
            _text(out, layout, sample, pos, item, lines)
        else:
            _media(out, layout, sample, pos, kind, item)
    text = torch.zeros(n, dtype=torch.bool)
    text[:length] = torch.as_tensor(layout.kind == L.TEXT)
    text[length:] = True
    text[0] = False
    out["previous"][text] = ids[torch.nonzero(text).flatten() - 1]
    starts = np.cumsum([0] + [len(s.text) + 1 for s in sample.spans])
    for k, (lo, hi) in enumerate(answer_offsets):
        _word(out, length + k, sample.answer, lo, hi)
        out["sentence"][length + k] = min(int(np.searchsorted(starts, hi - 1, side="right")) - 1,
                                          CLASSES["sentence"] - 1)
    if sample.option is not None:
        letter_at = n - 3  # the answer ends with the letter, "." and <|im_end|>
        out["recall"][letter_at - 1] = ids[letter_at - 5]  # "... red. The answer is" -> red
    for embedded, first_layer in KEY_PROBES.items():
        out[first_layer] = out[embedded].clone()
    if answer_keys and sample.option is not None:
        _answer_key(out, sample, length, answer_offsets)
    return out


def _answer_key(out: dict[str, torch.Tensor], sample, length: int, answer_offsets: list[tuple[int, int]]) -> None:
    """At the slot that predicts a QA answer's word, the key words its sentence stated before it.

    "The blue object is a square." -> at "a": colour blue; "The sound at second 2 is a hiss." ->
    second 2; "The number of blue squares is two." -> colour blue and shape square.
    """
    content = sample.spans[0].text
    word_start = content.rstrip(".").rfind(" ") + 1
    first = next((k for k, (_, hi) in enumerate(answer_offsets) if hi > word_start), None)
    if not first:
        return
    slot = length + first - 1
    named = {name: torch.full((1,), -100, dtype=torch.long) for name in ("colour", "shape", "sound", "second")}
    lo = 0
    for word in content[:word_start].split():
        at = content.index(word, lo)
        lo = at + len(word)
        _word(named, 0, content, at, lo)
    for name, target in named.items():
        if int(target) != -100:
            out[KEY_PROBES.get(name, name)][slot] = int(target)


class AuxHeads(torch.nn.Module):
    """Linear probes of the auxiliary targets."""

    def __init__(self, hidden: int, vocab: int, key_probes: bool = True) -> None:
        super().__init__()
        names = [name for name in CLASSES if key_probes or name not in KEY_PROBES.values()]
        self.heads = torch.nn.ModuleDict({name: torch.nn.Linear(hidden, CLASSES[name] or vocab) for name in names})

    def loss(self, embeds: torch.Tensor, layer1: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        """Sum over targets of the mean cross-entropy where the target applies."""
        total = embeds.new_zeros(())
        self.last: dict[str, float] = {}  # each target's loss, for the training log
        for name, head in self.heads.items():
            mask = targets[name] != -100
            if mask.any():
                states = embeds if name in ON_EMBEDDINGS else layer1
                loss = torch.nn.functional.cross_entropy(head(states[mask]).float(), targets[name][mask])
                self.last[name] = loss.item()
                total = total + loss
        return total
