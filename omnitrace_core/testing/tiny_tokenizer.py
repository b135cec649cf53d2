"""The Qwen2.5-Omni tokenizer rebuilt offline: its official added tokens and chat template over a byte-level
BPE trained on a small corpus (:func:`train_tokenizer`).

The tiny checkpoints (:mod:`.tiny_qwen2_5_omni`), the demo model and the cost benchmark's models use it;
nothing is downloaded.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Iterable, Iterator

if TYPE_CHECKING:  # pragma: no cover - imports for type checkers only
    import transformers

logger = logging.getLogger(__name__)

__all__ = ["ADDED_TOKENS", "CHAT_TEMPLATE", "DEFAULT_CORPUS", "GENERATION_EOS_TOKENS", "PAD_TOKEN", "train_tokenizer"]

# --------------------------------------------------------------------------------------------
# Official Qwen2.5-Omni tokenizer facts (tokenizer_config.json / chat_template of Qwen2.5-Omni-7B)
# --------------------------------------------------------------------------------------------

#: The 22 added tokens of Qwen2.5-Omni in their official order (ids base+0 .. base+21, where base
#: is the size of the BPE vocabulary), with the official ``special`` flag of each.
ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|AUDIO|>", True),
    ("<|audio_bos|>", True),
    ("<|audio_eos|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_bos|>", True),
    ("<|vision_eos|>", True),
    ("<|vision_pad|>", True),
    ("<|IMAGE|>", True),
    ("<|VIDEO|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
)

#: ``additional_special_tokens`` of the official tokenizer_config, in order.
_ADDITIONAL_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|im_start|>",
    "<|im_end|>",
    "<|AUDIO|>",
    "<|audio_bos|>",
    "<|audio_eos|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_bos|>",
    "<|vision_eos|>",
    "<|vision_pad|>",
    "<|IMAGE|>",
    "<|VIDEO|>",
)

#: Named multimodal tokens that ``Qwen2_5OmniProcessor`` reads from the tokenizer.
_NAMED_MM_TOKENS: dict[str, str] = {
    "image_token": "<|IMAGE|>",
    "video_token": "<|VIDEO|>",
    "audio_token": "<|AUDIO|>",
    "vision_bos_token": "<|vision_bos|>",
    "vision_eos_token": "<|vision_eos|>",
    "audio_bos_token": "<|audio_bos|>",
    "audio_eos_token": "<|audio_eos|>",
}

EOS_TOKEN = "<|im_end|>"
PAD_TOKEN = "<|endoftext|>"
#: The tokens that end generation, as in the official generation settings.
GENERATION_EOS_TOKENS: tuple[str, ...] = ("<|im_end|>", "<|endoftext|>")
MODEL_MAX_LENGTH = 32768

#: The official Qwen2.5-Omni chat template, unchanged.
CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}{% set image_count = namespace(value=0) %}"
    "{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_bos|><|IMAGE|><|vision_eos|>"
    "{% elif content['type'] == 'audio' or 'audio' in content or 'audio_url' in content %}"
    "{% set audio_count.value = audio_count.value + 1 %}"
    "{% if add_audio_id %}Audio {{ audio_count.value }}: {% endif %}"
    "<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_bos|><|VIDEO|><|vision_eos|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

#: Qwen2's pre-tokenization regex (the same one transformers' Qwen2 tokenizer uses).
_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# --------------------------------------------------------------------------------------------
# Default training corpus
# --------------------------------------------------------------------------------------------
_CORPUS_PARAGRAPHS: tuple[str, ...] = (
    "You are a helpful assistant.",
    "system\nYou are a helpful assistant that looks at images, listens to audio and watches video.",
    "user\nWhat is shown in the picture?\nassistant\n"
    "The picture shows a red circle on a white background.",
    "user\nHow many squares are there?\nassistant\nThere are three squares.",
    "user\nWhich animal can you hear in the audio?\nassistant\nI can hear a dog barking twice.",
    "user\nDescribe the video.\nassistant\n"
    "A blue ball rolls from the left to the right, then stops.",
    "Answer with the letter of the correct option.",
    "Question: What colour is the triangle?\nA. red\nB. green\nC. blue\nD. yellow\nAnswer: B",
    "Question: Which animal is in the image?\nA. cat\nB. dog\nC. bird\nD. fish\nAnswer: A",
    "Question: How many stars are there?\nA. one\nB. two\nC. three\nD. four\nAnswer: C",
    "Question: What sound do you hear?\nA. music\nB. speech\nC. a beep\nD. silence\nAnswer: C",
    "A. cat\nB. dog\nC. horse\nD. cow",
    "A. 1\nB. 2\nC. 3\nD. 4\nE. 5",
    "(A) yes (B) no (C) maybe",
    "The quick brown fox jumps over the lazy dog.",
    "She sells sea shells by the sea shore, and the shells she sells are surely sea shells.",
    "In the first image there is a small green square; "
    "in the second image there is a large purple star.",
    "The speaker says: \"Good morning! The meeting starts at 9:30, not at 10:00.\"",
    "At 2.5 seconds a short tone plays; at 4 seconds the tone stops and a voice begins.",
    "The video is 6 seconds long and has 12 frames at 2 frames per second.",
    "Frame 1 shows a door. Frame 2 shows a hand. Frame 3 shows the door opening.",
    "It's raining, isn't it? I'd say we'll stay inside; they've already left.",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 25 30 40 50 60 70 80 90 100.",
    "Big numbers: 1,000 and 2,500,000; decimals: 3.14, 0.5, 99.9; percentages: 50%, 12.5%.",
    "Dates and times: 2024-05-17, 12/31/1999, 07:45, 23:59:59.",
    "zero, one, two, three, four, five, six, seven, eight, nine, ten, eleven, twelve, thirteen, "
    "fourteen, fifteen, sixteen, seventeen, eighteen, nineteen, twenty, hundred, thousand.",
    "first, second, third, fourth, fifth, last, next, before, after, left, right, top, bottom, "
    "middle, centre, center, above, below, between, inside, outside, near, far.",
    "Punctuation test: commas, periods. Questions? Exclamations! Colons: semicolons; dashes - and "
    "(parentheses) [brackets] {braces} 'single' \"double\" quotes... and / slashes \\ too.",
    "Email me at someone@example.com or visit https://example.org/path?query=1&x=2#top.",
    "The cat is black and white. The dog is brown. The bird is yellow. The fish is orange.",
    "A red apple, a yellow banana, a green pear, a purple grape, an orange orange.",
    "The man is talking, the woman is singing, the child is laughing, and the baby is crying.",
    "Sounds: a bell rings, a car horn honks, water flows, wind blows, a piano plays, people clap.",
    "The image is bright; the video is dark; the audio is loud; the text is short.",
    "First, look at the image. Then, listen to the audio. Finally, answer the question.",
    "Explain your reasoning step by step, then give the final answer.",
    "Summary: the scene contains two people, one table, four chairs and a lamp.",
    "Colours and shapes help us describe simple pictures for testing a model.",
    "Hello! How are you today? I am fine, thank you. What about you?",
    "This is a test. This is only a test. Nothing here is important.",
    "Mixed CASE words: Apple, BANANA, cherry, DaTe, and elderberry.",
    "Tabs\tand  double  spaces   and\nnew lines\n\nare part of real text too.",
    "Café, naïve, résumé, jalapeño, über, façade: accented words appear now and then.",
    "Code: def add(a, b): return a + b  # adds two numbers",
    "Math: 2 + 2 = 4, 3 * 4 = 12, 10 / 2 = 5, 7 - 9 = -2, x^2 + y^2 = z^2.",
    "The weather is sunny in the morning, cloudy at noon and rainy in the evening.",
    "Yes. No. Maybe. True. False. Correct. Incorrect. Unknown.",
)

_COLOURS = (
    "red", "green", "blue", "yellow", "orange", "purple", "pink", "brown", "black", "white", "gray",
    "grey",
)
_SHAPES = (
    "circle", "square", "triangle", "rectangle", "star", "heart", "oval", "diamond", "hexagon",
    "cross",
)
_COUNT_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_ANIMALS = ("cat", "dog", "bird", "fish", "horse", "cow", "sheep", "lion", "duck", "frog")


def _templated_sentences() -> Iterator[str]:
    """Yield deterministic sentences combining colours, shapes, counts and option letters."""
    for index, colour in enumerate(_COLOURS):
        shape = _SHAPES[index % len(_SHAPES)]
        count = _COUNT_WORDS[index % len(_COUNT_WORDS)]
        plural = f"{shape}es" if shape.endswith(("x", "s")) else f"{shape}s"
        yield f"There are {count} {colour} {plural} in the image."
        yield f"Question: What colour is the {shape}?\nAnswer: The {shape} is {colour}."
        yield f"How many {plural} are there? {count.capitalize()} ({index + 1})."
    for index, animal in enumerate(_ANIMALS):
        letters = "ABCD"
        options = [_ANIMALS[(index + k) % len(_ANIMALS)] for k in range(4)]
        lines = "\n".join(f"{letter}. {option}" for letter, option in zip(letters, options))
        yield f"Which animal do you see?\n{lines}\nAnswer: A. {animal}"
        yield f"The {animal} makes a sound at {index + 1}.{index * 2} seconds."


#: The built-in corpus used when :func:`train_tokenizer` is called without one (a few KB).
DEFAULT_CORPUS: tuple[str, ...] = _CORPUS_PARAGRAPHS + tuple(_templated_sentences())


# --------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------
def train_tokenizer(
    corpus: Iterable[str] | None = None, vocab_size: int = 2048
) -> "transformers.Qwen2TokenizerFast":
    """Train a byte-level BPE tokenizer the Qwen2 way and wrap it as the Qwen2 tokenizer class.

    The pipeline is Qwen2's: NFC normalizer; Split on the Qwen2 regex followed by ByteLevel
    (without its own regex) as pre-tokenizer; ByteLevel decoder; BPE without unknown token or
    byte fallback. The 22 Qwen2.5-Omni added tokens follow the BPE vocabulary in their official
    order, and eos/pad, the named multimodal tokens and the chat template are the official ones.

    Args:
        corpus: Training texts. ``None`` uses :data:`DEFAULT_CORPUS`.
        vocab_size: Upper bound of the total vocabulary (BPE tokens plus the 22 added tokens).
            A small corpus may stop short of it; the 256 byte symbols are always present.

    Returns:
        The trained tokenizer. The same corpus and ``vocab_size`` always give the same vocabulary.

    Raises:
        ValueError: If ``vocab_size`` cannot hold the byte alphabet plus the added tokens.
    """
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, trainers
    from tokenizers.models import BPE
    from transformers import AddedToken, Qwen2TokenizerFast

    byte_alphabet = pre_tokenizers.ByteLevel.alphabet()
    minimum = len(byte_alphabet) + len(ADDED_TOKENS)
    if vocab_size < minimum:
        raise ValueError(f"vocab_size must be at least {minimum} (256 bytes + 22 added tokens)")
    texts = list(DEFAULT_CORPUS if corpus is None else corpus)

    backend = Tokenizer(
        BPE(
            dropout=None,
            unk_token=None,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
            byte_fallback=False,
        )
    )
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(ADDED_TOKENS),
        min_frequency=0,
        show_progress=False,
        special_tokens=[],
        initial_alphabet=sorted(byte_alphabet),
    )
    backend.train_from_iterator(texts, trainer=trainer, length=len(texts))

    model_state = json.loads(backend.to_str())["model"]
    vocab: dict[str, int] = model_state["vocab"]
    merges = [
        tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model_state["merges"]
    ]
    base = len(vocab)
    added_tokens_decoder = {
        base + offset: AddedToken(content, special=special, normalized=False)
        for offset, (content, special) in enumerate(ADDED_TOKENS)
    }
    tokenizer = Qwen2TokenizerFast(
        vocab=vocab,
        merges=merges,
        added_tokens_decoder=added_tokens_decoder,
        errors="replace",
        unk_token=None,
        bos_token=None,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        extra_special_tokens=list(_ADDITIONAL_SPECIAL_TOKENS),
        model_max_length=MODEL_MAX_LENGTH,
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
        chat_template=CHAT_TEMPLATE,
        **_NAMED_MM_TOKENS,
    )
    for offset, (content, _special) in enumerate(ADDED_TOKENS):
        if tokenizer.convert_tokens_to_ids(content) != base + offset:  # pragma: no cover - guard
            raise RuntimeError(f"added token {content!r} did not land at id {base + offset}")
    logger.info("trained tokenizer: %d BPE tokens + %d added tokens", base, len(ADDED_TOKENS))
    return tokenizer
