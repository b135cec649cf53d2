"""Post-hoc baselines of the paper (appendix C.2), on the same outputs and source units as the traces.

- **Random**: a uniform random score per (sentence, unit), kept above a threshold.
- **Embedding similarity**: cosine similarity between the mean *input embedding of the model
  itself* over an output sentence's tokens and over each source unit's positions (text token
  embeddings; the vision and audio encoders' outputs for images, audio and video bins: exactly
  the vectors the language model reads), kept above a threshold.
- **Self-attribution**: the model is shown the inputs, one of its output sentences and the
  numbered source units, and asked for the numbers of the supporting ones (``[1, 3]``). A model
  not trained to follow such prompts answers something else; the parse rate says so.

Thresholds of the first two are swept per modality on a held-out split (:func:`tune_thresholds`)
and applied unchanged to the scored split. Unlike the paper, embedding and random scores are also
computed for audio and video bins: a bin is a discrete unit here, so the comparison is defined.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from ..config import SourceConfig
from ..inputs import MODALITIES, Item, TextItem
from ..result import TraceResult
from .scoring import SamplePrediction, SpanPrediction, Scores

logger = logging.getLogger(__name__)

ScoreTable = list[dict[int, float]]  # per output sentence: unit index -> score


# ------------------------------------------------------------------------------- scores
def random_scores(key: str, result: TraceResult, seed: int = 0) -> ScoreTable:
    """Uniform scores in [0, 1) per (sentence, unit), a function of (seed, key) only."""
    digest = int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "little")
    rng = np.random.default_rng(digest)
    return [dict(enumerate(rng.random(len(result.units)).tolist())) for _ in result.spans]


def _lm_input_embeddings(backend, prepared) -> torch.Tensor:
    """(L - 1, hidden): what the language model reads at each prompt position (prefill input)."""
    decoder = backend.model.get_decoder()
    captured: dict[str, torch.Tensor] = {}

    def grab(_module, _args, kwargs):
        captured["embeds"] = kwargs["inputs_embeds"].detach()

    handle = decoder.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        backend.prefill(prepared)
    finally:
        handle.remove()
    return captured["embeds"][0].float()


def embedding_scores(backend, items: Sequence[Item], result: TraceResult, sources: SourceConfig) -> ScoreTable:
    """Cosine similarity of each output sentence's mean token embedding to each unit's mean input embedding."""
    from ..sources import build_sources

    prepared = backend.prepare(items, sources)
    source_set = build_sources(prepared.layout, items, sources, labels=prepared.labels)
    if len(source_set.units) != len(result.units):
        raise RuntimeError(f"re-prepared input has {len(source_set.units)} units, the trace {len(result.units)}")
    with torch.no_grad():
        embeds = _lm_input_embeddings(backend, prepared)
        position_unit = np.full(len(source_set.position_atom), -1)
        known = source_set.position_atom >= 0
        position_unit[known] = source_set.atom_unit[source_set.position_atom[known]]
        position_unit = position_unit[: embeds.shape[0]]
        units = torch.zeros(len(result.units), embeds.shape[1])
        for u in range(len(result.units)):
            rows = np.flatnonzero(position_unit == u)
            if len(rows):
                units[u] = embeds[torch.as_tensor(rows)].mean(0)
        table = backend.model.get_input_embeddings()
        out = []
        for span in result.spans:
            ids = [t.token_id for t in result.tokens[span.token_start:span.token_end]]
            vector = table(torch.tensor(ids, device=table.weight.device)).float().mean(0).cpu()
            sims = torch.nn.functional.cosine_similarity(units, vector[None], dim=-1)
            out.append({u: float(s) for u, s in enumerate(sims)})
    return out


# ------------------------------------------------------------------------------- thresholds
def predictions_at(base: Sequence[SamplePrediction], tables: Sequence[ScoreTable],
                   thresholds: Mapping[str, float]) -> list[SamplePrediction]:
    """Keep, per sentence, the units whose score reaches their modality's threshold."""
    out = []
    for pred, table in zip(base, tables):
        spans = []
        for span, scores in zip(pred.spans, table):
            chosen = tuple(u for u, s in sorted(scores.items())
                           if pred.units[u].modality in thresholds and s >= thresholds[pred.units[u].modality])
            spans.append(SpanPrediction(span.text, chosen, scores))
        out.append(replace(pred, spans=tuple(spans), option_masses=_option_scores(pred, table)))
    return out


def _option_scores(pred: SamplePrediction, table: ScoreTable) -> dict[str, float] | None:
    """Option consistency of a score-based baseline: the answer sentence's score of each option line."""
    from .outputs import parse_option
    from .predictions import _OPTION_LINE

    answer = next((k for k in range(len(pred.spans) - 1, -1, -1) if parse_option(pred.spans[k].text)), None)
    if answer is None:
        return None
    masses: dict[str, float] = {}
    for u in pred.units:
        text = pred.item_texts.get(u.item)
        if u.modality != "text" or text is None:
            continue
        match = _OPTION_LINE.match(text[u.char_start:u.char_end] + " ")
        if match:
            # shift to positive masses: the consistency metric reads 0 as "no attribution"
            masses[match.group(1)] = max(masses.get(match.group(1), 0.0), table[answer][u.index] + 2.0)
    return masses or None


def tune_thresholds(base: Sequence[SamplePrediction], tables: Sequence[ScoreTable],
                    score_fn: Callable[[Sequence[SamplePrediction]], Scores], steps: int = 40) -> dict[str, float]:
    """Per modality, the threshold (from a grid over the observed scores) with the best F1 on ``base``."""
    values = {m: [] for m in MODALITIES}
    for pred, table in zip(base, tables):
        for scores in table:
            for u, s in scores.items():
                values[pred.units[u].modality].append(s)
    best: dict[str, float] = {}
    for m, seen in values.items():
        if not seen:
            continue
        grid = np.unique(np.quantile(seen, np.linspace(0.0, 1.0, steps + 1)))
        scored = []
        for t in grid:
            prf, n = score_fn(predictions_at(base, tables, {m: float(t)})).modality(m)
            scored.append((prf.f1 if n else -1.0, -float(t)))
        f1, neg_t = max(scored)
        best[m] = -neg_t
        logger.info("threshold for %s: %.4f (dev F1 %.2f)", m, best[m], 100 * f1)
    return best


# ------------------------------------------------------------------------------- self-attribution
_LIST = re.compile(r"\[\s*(\d+(?:\s*,\s*\d+)*)\s*\]")


def _describe_unit(result: TraceResult, index: int) -> str:
    u = result.units[index]
    if u.modality == "text":
        text = result.items[u.item].text or ""
        return f'the text "{" ".join(text[u.char_start:u.char_end].split())}"'
    ordinal = 1 + sum(1 for i in result.items[:u.item] if i.modality == u.modality)
    if u.modality == "image":
        return f"image {ordinal}"
    return f"{u.modality} {ordinal} from {u.time_start:g} s to {u.time_end:g} s"


def self_attribution_prompt(result: TraceResult, sentence: str) -> str:
    """The question appended to the inputs (the paper's appendix B.1 task, in short form)."""
    lines = [f"[{k + 1}] {_describe_unit(result, k)}" for k in range(len(result.units))]
    return (f'Which of these sources support the sentence "{sentence}"?\n' + "\n".join(lines)
            + "\nAnswer only with the numbers of the supporting sources, like [1, 3].")


def parse_source_list(text: str, count: int) -> tuple[int, ...] | None:
    """Unit indices from an answer like "[2, 5]" (1-based in the text), or None if it has no such list."""
    match = _LIST.search(text)
    if not match:
        return None
    numbers = [int(n) for n in re.findall(r"\d+", match.group(1))]
    return tuple(sorted({n - 1 for n in numbers if 1 <= n <= count}))


def self_attribution(backend, items: Sequence[Item], result: TraceResult, sources: SourceConfig,
                     max_new_tokens: int = 32) -> tuple[list[tuple[int, ...]], int]:
    """Ask the model for the sources of each of its sentences; returns (unit tuples, parsed count)."""
    chosen, parsed = [], 0
    for span in result.spans:
        question = TextItem(self_attribution_prompt(result, span.text))
        prepared = backend.prepare(list(items) + [question], sources)
        with torch.no_grad():
            out = backend.model.generate(**backend.generate_kwargs(prepared), max_new_tokens=max_new_tokens,
                                         do_sample=False)
        answer = backend.decode(out[0, prepared.length:].tolist())
        units = parse_source_list(answer, len(result.units))
        parsed += units is not None
        chosen.append(units or ())
    return chosen, parsed


def as_prediction(base: SamplePrediction, chosen: Sequence[tuple[int, ...]]) -> SamplePrediction:
    spans = tuple(SpanPrediction(s.text, tuple(c)) for s, c in zip(base.spans, chosen))
    return replace(base, spans=spans, option_masses=None)


def describe(name: str) -> dict[str, Any]:
    return {"random": "uniform random scores, threshold swept per modality on the dev split",
            "embedding": "cosine similarity of the model's own input embeddings, threshold swept per modality on "
                         "the dev split",
            "self": "the model prompted to list the numbers of its supporting sources"}[name]
