"""Tiny random-weight speech-recognition checkpoints built offline: real classes, real timestamp machinery.

:func:`build_tiny_whisper` (segment timestamps) and :func:`build_tiny_wav2vec2` (a CTC model,
word timestamps). For Whisper, the Hub is out of reach in tests, so the tokenizer is a byte-level BPE trained on a few
sentences and extended with Whisper's special tokens in their official order
(``<|endoftext|>``, ``<|startoftranscript|>``, the language tokens, task tokens,
``<|notimestamps|>``) followed by the 1501 timestamp tokens ``<|0.00|>`` ... ``<|30.00|>``:
transformers finds the timestamps as "the ids after ``<|notimestamps|>``", so that order is
what makes ``return_timestamps=True`` work. The generation config carries what Whisper's
``generate`` reads (no-timestamps id, language and task ids, the initial-timestamp bound), and
a ``max_length`` of 24 instead of 448: random weights never stop on their own.
Random weights say nothing meaningful: tests assert on structure and timing, never on text.
"""

from __future__ import annotations

import json
from pathlib import Path

CORPUS = ["the quick brown fox jumps over the lazy dog", "hello world, this is a test of speech.",
          "segments of speech are cited by people, bins are not."]


def build_tiny_whisper(out_dir: str | Path, seed: int = 0) -> Path:
    """Write a tiny multilingual-style Whisper checkpoint (model, tokenizer, feature extractor) to ``out_dir``."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import (AddedToken, GenerationConfig, WhisperConfig, WhisperFeatureExtractor,
                              WhisperForConditionalGeneration, WhisperProcessor, WhisperTokenizer)
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    out = Path(out_dir)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train_from_iterator(CORPUS * 4, trainers.BpeTrainer(
        vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
              for m in json.loads(bpe.to_str())["model"]["merges"]]
    tokenizer = WhisperTokenizer(vocab=bpe.get_vocab(), merges=merges)  # adds <|endoftext|> after the BPE ids
    specials = (["<|startoftranscript|>"] + [f"<|{code}|>" for code in LANGUAGES]
                + ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>",
                   "<|notimestamps|>"])
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    tokenizer.add_tokens([AddedToken("<|%.2f|>" % (i * 0.02), lstrip=False, rstrip=False, normalized=False,
                                     special=False) for i in range(1501)])
    token = tokenizer.convert_tokens_to_ids
    eot, sot = token("<|endoftext|>"), token("<|startoftranscript|>")
    assert token("<|0.00|>") == token("<|notimestamps|>") + 1, "timestamps must follow <|notimestamps|>"

    config = WhisperConfig(vocab_size=len(tokenizer), num_mel_bins=80, d_model=32, encoder_layers=1,
                           decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
                           encoder_ffn_dim=64, decoder_ffn_dim=64, max_source_positions=1500,
                           max_target_positions=448, pad_token_id=eot, bos_token_id=eot, eos_token_id=eot,
                           decoder_start_token_id=sot)
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        decoder_start_token_id=sot, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot, max_length=24,
        no_timestamps_token_id=token("<|notimestamps|>"), prev_sot_token_id=token("<|startofprev|>"),
        is_multilingual=True, lang_to_id={f"<|{code}|>": token(f"<|{code}|>") for code in LANGUAGES},
        task_to_id={"transcribe": token("<|transcribe|>"), "translate": token("<|translate|>")},
        max_initial_timestamp_index=50, begin_suppress_tokens=[eot], suppress_tokens=[])
    model.save_pretrained(out)
    processor = WhisperProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tokenizer)
    processor.save_pretrained(out)
    return out


def build_tiny_wav2vec2(out_dir: str | Path, seed: int = 0) -> Path:
    """Write a tiny wav2vec2 CTC checkpoint (character vocabulary, ``|`` between words) to ``out_dir``."""
    import torch
    from transformers import (Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC,
                              Wav2Vec2Processor)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    letters = "abcdefghijklmnopqrstuvwxyz'"
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, **{c: i + 5 for i, c in enumerate(letters)}}
    (out / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    tokenizer = Wav2Vec2CTCTokenizer(str(out / "vocab.json"), word_delimiter_token="|")
    features = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                                        return_attention_mask=False)
    config = Wav2Vec2Config(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=64, conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8),
                            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, pad_token_id=0)
    torch.manual_seed(seed)
    Wav2Vec2ForCTC(config).eval().save_pretrained(out)
    Wav2Vec2Processor(feature_extractor=features, tokenizer=tokenizer).save_pretrained(out)
    return out
