"""The next token under a GenerationConfig: greedy, or sampled through transformers' logits warpers."""

from __future__ import annotations

import torch

from .config import GenerationConfig


class TokenChoice:
    """Next-token choice under a GenerationConfig (greedy, or sampling with warpers)."""

    def __init__(self, config: GenerationConfig, device: torch.device, eos: frozenset[int]) -> None:
        from transformers import (NoRepeatNGramLogitsProcessor, RepetitionPenaltyLogitsProcessor,
                                  TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper)

        self.config = config
        self.eos = sorted(eos)
        self.processors = []
        if config.repetition_penalty != 1.0:
            self.processors.append(RepetitionPenaltyLogitsProcessor(config.repetition_penalty))
        if config.no_repeat_ngram_size:
            self.processors.append(NoRepeatNGramLogitsProcessor(config.no_repeat_ngram_size))
        self.warpers = []
        if config.do_sample:
            if config.temperature != 1.0:
                self.warpers.append(TemperatureLogitsWarper(config.temperature))
            if config.top_k:
                self.warpers.append(TopKLogitsWarper(config.top_k))
            if config.top_p < 1.0:
                self.warpers.append(TopPLogitsWarper(config.top_p))
        self.generator = None
        if config.do_sample and config.seed is not None:
            self.generator = torch.Generator(device=device).manual_seed(config.seed)

    def __call__(self, logits: torch.Tensor, generated: list[int]) -> int:
        scores = logits.detach().float()[None]
        if len(generated) < self.config.min_new_tokens and self.eos:
            scores[:, self.eos] = float("-inf")
        if generated:
            # only the generated tokens count: penalising prompt words garbles answers
            ids = torch.tensor([generated], device=scores.device)
            for proc in self.processors:
                scores = proc(ids, scores)
        if not self.config.do_sample:
            return int(scores.argmax(-1))
        ids = torch.tensor([generated], device=scores.device, dtype=torch.long)
        for warp in self.warpers:
            scores = warp(ids, scores)
        probs = torch.softmax(scores, dim=-1)
        return int(torch.multinomial(probs, 1, generator=self.generator))
