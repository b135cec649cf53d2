"""The bundled demo model: a tiny, trained Qwen2.5-Omni thinker that runs anywhere in seconds.

It is a genuine ``Qwen2_5OmniThinkerForConditionalGeneration`` (same class, chat template and
processor classes as the real checkpoints) with small dimensions, its own tokenizer trained on the
benchmark's vocabulary, and two front-end settings sized for short clips:

- the Whisper feature extractor pads and windows audio at 10 s instead of 300 s (longer audio is
  cut into 10 s windows by the backend, as real checkpoints cut at 300 s);
- the audio encoder attends within 2 s windows (``n_window = 100``) as the real checkpoints' does:
  an audio token carries the sound of its own window only, its encoder position restarts in every
  window, and absolute time reaches the decoder through M-RoPE (earlier versions attended over
  10 s, so every token carried the whole clip).

:func:`build_untrained` writes the folder with seeded random weights; :mod:`.train` trains it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..testing.tiny_qwen2_5_omni import TinyOmniSpec
from ..testing.tiny_tokenizer import CHAT_TEMPLATE, DEFAULT_CORPUS

#: Name of the JSON file in the model folder that records how it was built and trained.
CARD_FILENAME = "omnitrace_demo_model.json"
AUDIO_WINDOW_SECONDS = 10


@dataclass(frozen=True)
class DemoSpec:
    """Dimensions of the demo model and of its tokenizer (see :class:`TinyOmniSpec`)."""

    model: TinyOmniSpec = field(default_factory=lambda: TinyOmniSpec(
        text_hidden=128, text_layers=3, text_heads=4, text_kv_heads=2, text_intermediate=384,
        vision_hidden=64, vision_depth=2, vision_heads=2, vision_intermediate=128,
        audio_d_model=64, audio_layers=2, audio_heads=2, audio_ffn=128,
        vocab_size=1024, max_position_embeddings=8192, seed=0))
    #: the official 1e6: most rotary frequencies of a 32-dim head then turn slowly over a prompt, which
    #: leaves room for matching content regardless of position (8 x 16-dim heads at 1e4 learned the
    #: question-driven look-ups far more slowly in trial runs)
    rope_theta: float = 1000000.0
    #: the audio encoder's ``n_window``: it attends within chunks of 2 * n_window mel frames (100: 2 s,
    #: as in the real Qwen2.5-Omni configs)
    audio_window: int = 100
    tokenizer_seed: int = 7
    tokenizer_samples: int = 1600

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DemoSpec":
        data = dict(data)
        data["model"] = TinyOmniSpec(**data["model"])
        return cls(**data)


def tokenizer_corpus(spec: DemoSpec) -> Iterator[str]:
    """The texts the tokenizer is trained on: the builder's corpus, the system prompt, task texts."""
    from ..backends.qwen2_5_omni import DEFAULT_SYSTEM_PROMPT
    from ..tasks import generate

    yield from DEFAULT_CORPUS
    for _ in range(spec.tokenizer_samples // 4):  # frequent enough for whole-word merges
        yield DEFAULT_SYSTEM_PROMPT
    for index in range(spec.tokenizer_samples):
        sample = generate(spec.tokenizer_seed, index)
        yield sample.prompt
        for entry in sample.entries:
            if entry.kind == "text":
                yield entry.value
        yield sample.answer


def build_tokenizer(spec: DemoSpec):
    from ..testing.tiny_tokenizer import train_tokenizer

    return train_tokenizer(list(tokenizer_corpus(spec)), vocab_size=spec.model.vocab_size)


def build_processor(tokenizer):
    """The tiny builder's processor with the demo model's 10 s audio window."""
    from transformers import Qwen2_5OmniProcessor, WhisperFeatureExtractor

    from ..testing.tiny_qwen2_5_omni import build_processor as tiny_processor

    base = tiny_processor(tokenizer)
    feature_extractor = WhisperFeatureExtractor(
        feature_size=128, sampling_rate=16000, hop_length=160, chunk_length=AUDIO_WINDOW_SECONDS, n_fft=400,
        padding_value=0.0, padding_side="right", return_attention_mask=True, dither=0.0)
    return Qwen2_5OmniProcessor(image_processor=base.image_processor, video_processor=base.video_processor,
                                feature_extractor=feature_extractor, tokenizer=tokenizer,
                                chat_template=CHAT_TEMPLATE)


def build_model(tokenizer, spec: DemoSpec):
    """A seeded, untrained thinker for ``spec`` (sdpa attention, float32)."""
    import torch
    from transformers import GenerationConfig, Qwen2_5OmniThinkerForConditionalGeneration

    from ..testing.tiny_qwen2_5_omni import build_config
    from ..testing.tiny_tokenizer import GENERATION_EOS_TOKENS, PAD_TOKEN

    config = build_config(tokenizer, spec.model)
    config.audio_config.n_window = spec.audio_window
    config.text_config.rope_parameters["rope_theta"] = spec.rope_theta
    torch.manual_seed(spec.model.seed)
    model = Qwen2_5OmniThinkerForConditionalGeneration(config)
    ids = tokenizer.convert_tokens_to_ids
    model.generation_config = GenerationConfig(eos_token_id=[ids(t) for t in GENERATION_EOS_TOKENS],
                                               pad_token_id=ids(PAD_TOKEN), bos_token_id=ids("<|im_start|>"))
    return model


def save(folder: Path, model, processor, card: dict[str, Any]) -> Path:
    """Write weights, processor and the card (written last: its presence marks a complete folder)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
    (folder / CARD_FILENAME).write_text(json.dumps(card, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return folder


def read_card(folder: str | Path) -> dict[str, Any] | None:
    """The card of a demo model folder, or None when the folder holds no (complete) demo model."""
    path = Path(folder) / CARD_FILENAME
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
