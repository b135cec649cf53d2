"""Known-truth tasks: procedurally generated interleaved inputs whose supporting sources are known.

Eight task families cover every modality and both task kinds of the OmniTrace paper:

=====================  ===================================================================
``text_qa``            facts in a note; "What colour is the drum?" with lettered options
``text_summary``       an extractive summary: the facts of a note, without its filler sentences
``image_qa``           2-3 images of flat shapes; colour, shape or count of one of them
``image_description``  one sentence per image, in order
``audio_qa``           a 4 s clip with 2-3 sound events at whole seconds; when / which
``audio_description``  one sentence per sound event, in time order
``video_qa``           a 4 s video: objects shown during some seconds, a sound on its track
``video_description``  one sentence per shown object in time order, then one for the sound
=====================  ===================================================================

Every expected output sentence carries the sources it states, by construction: a sentence of a
text item (character range), an image, or a one-second interval of an audio or video item.
QA answers state the content first, ending with the chosen option's words ("The drum is red."),
labelled with its evidence and with the question line whose words it copies ("What colour is the
drum?"), then the letter ("The answer is A."), whose source is the chosen option's line.
Distractors are always present: other facts,
other images, other sound events and empty seconds, plus, in some samples, an unrelated item of
another modality.

Item numbering follows the tracer: the instruction prompt is item 0 and the question entries
follow in order, so ground-truth ``item`` indices equal ``TraceResult.items`` indices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..evaluation.groundtruth import GoldSpan, SourceRef
from . import synth

NAMES = ("Mia", "Leo", "Ava", "Sam", "Zoe", "Max", "Ivy", "Tom")
THINGS = ("kite", "drum", "lamp", "ball", "book", "cup", "hat", "bike")
FILLERS = ("The bus was late.", "It rained in the morning.", "The shop opens at nine.", "The park was quiet.",
           "Lunch was at noon.", "The wind was cold.")
COLOUR_NAMES = tuple(synth.COLOURS)
LETTERS = "ABCD"
ORDINALS = ("first", "second", "third")
COUNT_WORDS = {1: "a", 2: "two", 3: "three"}
OPTION_COUNTS = ("one", "two", "three", "four")

QA_PROMPT = "Answer the question."
PROMPTS = {
    "text_summary": "Summarize the notes.",
    "image_description": "Describe the images.",
    "audio_description": "Describe the audio.",
    "video_description": "Describe the video.",
}


@dataclass(frozen=True)
class Entry:
    """One question entry: ``kind`` is text, image, audio or video; ``value`` the content.

    text: str; image: (84, 84, 3) uint8; audio: float32 waveform at 16 kHz; video: :class:`synth.VideoClip`.
    ``meta`` says what the media show: ``{"cells": {cell: (colour, shape)}}`` (image),
    ``{"sounds": {second: type}}`` (audio), both ``"shown": {second: (colour, shape)}`` and
    ``"sounds"`` (video). Training reads it for auxiliary perception targets.
    """

    kind: str
    value: Any
    meta: dict = field(default_factory=dict)


@dataclass
class TaskSample:
    """A generated sample: instruction, interleaved entries, expected output and its ground truth.

    Attributes:
        index: position in its split (names the media files).
        task: the task family.
        prompt: the instruction (item 0).
        entries: the question entries (items 1..n).
        spans: expected output sentences with their sources.
        option: the correct letter of a QA sample (None for descriptions).
        options: letter -> the option line's source (QA samples).
        question_type: what a QA question asks for and by what it names its target, e.g.
            ``"shape of a colour"`` ("What shape is the blue object?"); None for descriptions.
    """

    index: int
    task: str
    prompt: str
    entries: list[Entry]
    spans: list[GoldSpan]
    option: str | None = None
    options: dict[str, SourceRef] = field(default_factory=dict)
    question_type: str | None = None

    @property
    def kind(self) -> str:
        return "qa" if self.task.endswith("_qa") else "description"

    @property
    def answer(self) -> str:
        return " ".join(span.text for span in self.spans)


class _Builder:
    """Accumulates entries; returns the item index of each one (the prompt is item 0)."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def add(self, kind: str, value: Any, **meta: Any) -> int:
        self.entries.append(Entry(kind, value, meta))
        return len(self.entries)

    def question(self, question: str, options: Sequence[str]) -> "Question":
        """A question line followed by lettered option lines, as one text item."""
        text = question
        spans = {}
        for letter, option in zip(LETTERS, options):
            line = f"{letter}. {option}"
            text += "\n"
            spans[letter] = (len(text), len(text) + len(line))
            text += line
        item = self.add("text", text)
        return Question(SourceRef("text", item, char_start=0, char_end=len(question)),
                        {k: SourceRef("text", item, char_start=a, char_end=b) for k, (a, b) in spans.items()})


@dataclass(frozen=True)
class Question:
    """A question entry's labels: its question line and each option letter's line."""

    line: SourceRef
    options: dict[str, SourceRef]


def _pick(rng: np.random.Generator, pool: Sequence[Any], k: int) -> list[Any]:
    return [pool[i] for i in rng.choice(len(pool), size=k, replace=False)]


def _options(rng: np.random.Generator, correct: Any, present: Sequence[Any], pool: Sequence[Any]) -> list[Any]:
    """Four shuffled options: the correct one, the other present values (distractors), then random fill."""
    chosen = [correct] + [p for p in present if p != correct]
    rest = [p for p in pool if p not in chosen]
    chosen = chosen[:4] + _pick(rng, rest, 4 - min(4, len(chosen)))
    return [chosen[i] for i in rng.permutation(4)]


def _plural(shape: str) -> str:
    return shape + ("es" if shape.endswith("s") else "s")


def _fact(name: str, colour: str, thing: str) -> str:
    # "The kite is red." answers "What colour is the kite?" with the words that follow "kite is"
    return f"{name}'s {thing} is {colour}."


def _note(rng: np.random.Generator, sentences: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    text, ranges = "", []
    for sentence in sentences:
        if text:
            text += " "
        ranges.append((len(text), len(text) + len(sentence)))
        text += sentence
    return text, ranges


def _add_image(b: "_Builder", rng: np.random.Generator, colour: str, shape: str, count: int) -> int:
    cells = {c: (colour, shape) for c in _pick(rng, range(synth.GRID * synth.GRID), count)}
    return b.add("image", synth.draw_cells(cells, rng), cells=cells)


def _add_note(b: "_Builder", rng: np.random.Generator, sentences: Sequence[str], facts: Sequence[str],
              names: Sequence[str], colours: Sequence[str], things: Sequence[str]) -> int:
    """A text item of sentences; its meta lists each fact's range and content (for training targets)."""
    text, ranges = _note(rng, sentences)
    content = {fact: (k, name, colour, thing) for k, (fact, name, colour, thing)
               in enumerate(zip(facts, names, colours, things))}
    meta_facts = [(lo, hi, *content[s]) for s, (lo, hi) in zip(sentences, ranges) if s in content]
    return b.add("text", text, ranges=ranges, facts=meta_facts)


def _random_image(b: "_Builder", rng: np.random.Generator) -> int:
    """A distractor image: 1-3 objects of one random colour and shape."""
    colour, shape = COLOUR_NAMES[rng.integers(len(COLOUR_NAMES))], synth.SHAPES[rng.integers(len(synth.SHAPES))]
    return _add_image(b, rng, colour, shape, int(rng.integers(1, 4)))


def _answer_spans(content: str, evidence: Sequence[SourceRef], letter: str, question: Question) -> list[GoldSpan]:
    """A QA output's labels: the content sentence draws on its evidence and on the question line whose
    words it copies ("What colour is the kite?" -> "The kite is red."); the letter on its option line."""
    return [GoldSpan(content, (*evidence, question.line)), GoldSpan(f"The answer is {letter}.",
                                                                     (question.options[letter],))]


# ------------------------------------------------------------------------------ text
def text_qa(rng: np.random.Generator) -> TaskSample:
    b = _Builder()
    n = int(rng.integers(3, 5))
    names, things, colours = _pick(rng, NAMES, n), _pick(rng, THINGS, n), _pick(rng, COLOUR_NAMES, n)
    facts = [_fact(*f) for f in zip(names, colours, things)]
    sentences = list(facts)
    if rng.random() < 0.5:
        sentences.insert(int(rng.integers(0, n + 1)), FILLERS[rng.integers(len(FILLERS))])
    note = _add_note(b, rng, sentences, facts, names, colours, things)
    ranges = b.entries[note - 1].meta["ranges"]
    if rng.random() < 0.4:
        _random_image(b, rng)
    target = int(rng.integers(n))
    fact_ref = SourceRef("text", note, *ranges[sentences.index(facts[target])])
    thing, colour = things[target], colours[target]
    options = _options(rng, colour, colours, COLOUR_NAMES)
    q = b.question(f"What colour is the {thing}?", options)
    content, correct = f"The {thing} is {colour}.", colour
    letter = LETTERS[options.index(correct)]
    return TaskSample(0, "text_qa", QA_PROMPT, b.entries, _answer_spans(content, (fact_ref,), letter, q), letter,
                      q.options, question_type="colour of a thing")


def text_summary(rng: np.random.Generator) -> TaskSample:
    """An extractive summary: the note's facts, in order, without its filler sentences."""
    b = _Builder()
    n = int(rng.integers(2, 4))
    names, things, colours = _pick(rng, NAMES, n), _pick(rng, THINGS, n), _pick(rng, COLOUR_NAMES, n)
    facts = [_fact(*f) for f in zip(names, colours, things)]
    fillers = _pick(rng, FILLERS, int(rng.integers(1, 3)))
    before = int(rng.integers(0, len(fillers) + 1))
    sentences = fillers[:before] + facts + fillers[before:]
    image_first = rng.random() < 0.5
    if image_first and rng.random() < 0.5:
        _random_image(b, rng)
    item = _add_note(b, rng, sentences, facts, names, colours, things)
    ranges = b.entries[item - 1].meta["ranges"]
    if not image_first and rng.random() < 0.5:
        _random_image(b, rng)
    spans = [GoldSpan(fact, (SourceRef("text", item, *ranges[sentences.index(fact)]),)) for fact in facts]
    return TaskSample(0, "text_summary", PROMPTS["text_summary"], b.entries, spans)


# ------------------------------------------------------------------------------ images
def _images(rng: np.random.Generator, b: _Builder) -> tuple[list[int], list[tuple[str, str, int]]]:
    """2-3 images, each with 1-3 objects of one colour and shape; colours and shapes all differ."""
    if rng.random() < 0.4:
        b.add("text", FILLERS[rng.integers(len(FILLERS))])
    n = int(rng.integers(2, 4))
    colours, shapes = _pick(rng, COLOUR_NAMES, n), _pick(rng, synth.SHAPES, n)
    items, contents = [], []
    for colour, shape in zip(colours, shapes):
        count = int(rng.integers(1, 4))
        items.append(_add_image(b, rng, colour, shape, count))
        contents.append((colour, shape, count))
    return items, contents


def image_qa(rng: np.random.Generator) -> TaskSample:
    b = _Builder()
    items, contents = _images(rng, b)
    target = int(rng.integers(len(items)))
    colour, shape, count = contents[target]
    kind = rng.integers(3)
    if kind == 0:
        options = _options(rng, colour, [c[0] for c in contents], COLOUR_NAMES)
        q = b.question(f"What colour is the {shape}?", options)
        content, letter = f"The {shape} is {colour}.", LETTERS[options.index(colour)]
        asked = "colour of a shape"
    elif kind == 1:
        options = _options(rng, shape, [c[1] for c in contents], synth.SHAPES)
        q = b.question(f"What shape is the {colour} object?", options)
        content, letter = f"The {colour} object is a {shape}.", LETTERS[options.index(shape)]
        asked = "shape of a colour"
    else:
        options = [OPTION_COUNTS[i] for i in rng.permutation(4)]
        q = b.question(f"How many {colour} {_plural(shape)} are there?", options)
        content = f"The number of {colour} {_plural(shape)} is {OPTION_COUNTS[count - 1]}."
        letter = LETTERS[options.index(OPTION_COUNTS[count - 1])]
        asked = "count of a colour and shape"
    return TaskSample(0, "image_qa", QA_PROMPT, b.entries,
                      _answer_spans(content, (SourceRef("image", items[target]),), letter, q), letter, q.options,
                      question_type=asked)


def image_description(rng: np.random.Generator) -> TaskSample:
    b = _Builder()
    items, contents = _images(rng, b)
    spans = []
    for k, (item, (colour, shape, count)) in enumerate(zip(items, contents)):
        thing = shape if count == 1 else _plural(shape)
        spans.append(GoldSpan(f"The {ORDINALS[k]} image shows {COUNT_WORDS[count]} {colour} {thing}.",
                              (SourceRef("image", item),)))
    return TaskSample(0, "image_description", PROMPTS["image_description"], b.entries, spans)


# ------------------------------------------------------------------------------ audio
def _clip_events(rng: np.random.Generator, low: int, high: int) -> dict[int, str]:
    seconds = sorted(_pick(rng, range(synth.CLIP_SECONDS), int(rng.integers(low, high + 1))))
    return dict(zip(seconds, _pick(rng, synth.SOUNDS, len(seconds))))


def _sound_sentence(kind: str, second: int) -> str:
    return f"The {kind} plays at second {second}."


def _audio(rng: np.random.Generator, b: _Builder) -> tuple[int, dict[int, str]]:
    if rng.random() < 0.3:
        _random_image(b, rng)
    events = _clip_events(rng, 2, 3)
    return b.add("audio", synth.soundtrack(events, rng), sounds=events), events


def _interval(modality: str, item: int, second: int) -> SourceRef:
    return SourceRef(modality, item, time_start=float(second), time_end=float(second + 1))


def audio_qa(rng: np.random.Generator) -> TaskSample:
    b = _Builder()
    item, events = _audio(rng, b)
    second = list(events)[rng.integers(len(events))]
    kind = events[second]
    if rng.random() < 0.5:
        options = [f"second {s}" for s in rng.permutation(synth.CLIP_SECONDS)]
        q = b.question(f"When does the {kind} play?", options)
        letter = LETTERS[options.index(f"second {second}")]
        content, asked = _sound_sentence(kind, second), "time of a sound"
    else:
        options = _options(rng, kind, list(events.values()), synth.SOUNDS)
        q = b.question(f"Which sound plays at second {second}?", options)
        letter = LETTERS[options.index(kind)]
        content, asked = f"The sound at second {second} is a {kind}.", "sound at a time"
    return TaskSample(0, "audio_qa", QA_PROMPT, b.entries,
                      _answer_spans(content, (_interval("audio", item, second),), letter, q), letter, q.options,
                      question_type=asked)


def audio_description(rng: np.random.Generator) -> TaskSample:
    b = _Builder()
    item, events = _audio(rng, b)
    spans = [GoldSpan(_sound_sentence(kind, s), (_interval("audio", item, s),)) for s, kind in events.items()]
    return TaskSample(0, "audio_description", PROMPTS["audio_description"], b.entries, spans)


# ------------------------------------------------------------------------------ video
def _video(rng: np.random.Generator, b: _Builder) -> tuple[int, dict[int, tuple[str, str]], dict[int, str]]:
    if rng.random() < 0.3:
        b.add("text", FILLERS[rng.integers(len(FILLERS))])
    seconds = sorted(_pick(rng, range(synth.CLIP_SECONDS), 2))
    shown = dict(zip(seconds, zip(_pick(rng, COLOUR_NAMES, 2), _pick(rng, synth.SHAPES, 2))))
    sounds = _clip_events(rng, 1, 1)
    return b.add("video", synth.video_clip(shown, sounds, rng), shown=shown, sounds=sounds), shown, sounds


def _shown_sentence(colour: str, shape: str, second: int) -> str:
    return f"A {colour} {shape} appears at second {second}."


def video_qa(rng: np.random.Generator) -> TaskSample:
    b = _Builder()
    item, shown, sounds = _video(rng, b)
    kind = rng.integers(4)
    if kind < 3:
        second = list(shown)[rng.integers(len(shown))]
        colour, shape = shown[second]
        if kind == 0:
            options = _options(rng, shape, [s for _, s in shown.values()], synth.SHAPES)
            q = b.question(f"What shape appears at second {second}?", options)
            content, correct, asked = f"The shape at second {second} is a {shape}.", shape, "shape at a time"
        elif kind == 1:
            options = _options(rng, colour, [c for c, _ in shown.values()], COLOUR_NAMES)
            q = b.question(f"What colour appears at second {second}?", options)
            content, correct, asked = f"The colour at second {second} is {colour}.", colour, "colour at a time"
        else:
            options = [f"second {s}" for s in rng.permutation(synth.CLIP_SECONDS)]
            q = b.question(f"When does the {colour} {shape} appear?", options)
            content, correct = f"The {colour} {shape} appears at second {second}.", f"second {second}"
            asked = "time of a colour and shape"
    else:
        second, sound = next(iter(sounds.items()))
        options = [f"second {s}" for s in rng.permutation(synth.CLIP_SECONDS)]
        q = b.question(f"When does the {sound} play?", options)
        content, correct, asked = _sound_sentence(sound, second), f"second {second}", "time of the sound"
    letter = LETTERS[options.index(correct)]
    return TaskSample(0, "video_qa", QA_PROMPT, b.entries,
                      _answer_spans(content, (_interval("video", item, second),), letter, q), letter, q.options,
                      question_type=asked)


def video_description(rng: np.random.Generator) -> TaskSample:
    b = _Builder()
    item, shown, sounds = _video(rng, b)
    spans = [GoldSpan(_shown_sentence(c, s, sec), (_interval("video", item, sec),)) for sec, (c, s) in shown.items()]
    spans += [GoldSpan(_sound_sentence(kind, sec), (_interval("video", item, sec),)) for sec, kind in sounds.items()]
    return TaskSample(0, "video_description", PROMPTS["video_description"], b.entries, spans)


#: task name -> generator (a function of a numpy Generator).
TASKS: dict[str, Callable[[np.random.Generator], TaskSample]] = {
    "text_qa": text_qa,
    "text_summary": text_summary,
    "image_qa": image_qa,
    "image_description": image_description,
    "audio_qa": audio_qa,
    "audio_description": audio_description,
    "video_qa": video_qa,
    "video_description": video_description,
}
TASK_NAMES: tuple[str, ...] = tuple(TASKS)


def generate(seed: int, index: int, task: str | None = None) -> TaskSample:
    """The ``index``-th sample of the stream seeded by ``seed``.

    Each sample has its own generator (``default_rng([seed, index])``), so any sample can be
    generated alone and the result never depends on which others were generated. Without
    ``task`` the family cycles through :data:`TASK_NAMES` by index.
    """
    name = task or TASK_NAMES[index % len(TASK_NAMES)]
    try:
        make = TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(TASK_NAMES)}") from None
    sample = make(np.random.default_rng([seed, index, TASK_NAMES.index(name)]))
    sample.index = index
    return sample
