"""OmniTrace traces -> :class:`~.scoring.SamplePrediction`: curated sources per sentence, option masses.

Re-curation is free (a :class:`~omnitrace_core.TraceResult` keeps every token's scores), so the
ablations and token-rule comparisons score the same traces under other
:class:`~omnitrace_core.CurationConfig` values without generating again.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from ..config import CurationConfig
from ..curation import token_votes
from ..errors import InputError
from ..result import TraceResult
from .groundtruth import SampleTruth
from .outputs import parse_option
from .scoring import SamplePrediction, SpanPrediction, text_units_of

_OPTION_LINE = re.compile(r"^\s*\(?([A-Z])[.):]\s")


def read_records(path: str | Path) -> Iterator[tuple[dict[str, Any], TraceResult]]:
    """The ``ok`` records of a batch-CLI JSON Lines file, with their parsed results."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"traces file '{path}' does not exist")
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a half-written last line of a killed run
            if record.get("status") != "ok":
                continue
            yield record, TraceResult.from_dict(record["result"])


def item_texts(result: TraceResult) -> dict[int, str]:
    return {info.index: info.text for info in result.items if info.text is not None}


def option_units(result: TraceResult, truth: SampleTruth | None = None) -> dict[str, set[int]]:
    """Letter -> the text units of that option: from the labels' ``options``, else by line prefix."""
    if truth is not None and truth.options:
        return {letter: text_units_of(ref, result.units) for letter, ref in truth.options.items()}
    texts = item_texts(result)
    out: dict[str, set[int]] = {}
    for u in result.units:
        if u.modality != "text" or u.item not in texts:
            continue
        match = _OPTION_LINE.match(texts[u.item][u.char_start:u.char_end] + " ")
        if match:
            out.setdefault(match.group(1), set()).add(u.index)
    return out


def option_masses(result: TraceResult, curation: CurationConfig | None = None,
                  truth: SampleTruth | None = None) -> dict[str, float] | None:
    """Per option, the weighted votes of the answer sentence's tokens traced to it (appendix B.3).

    The answer sentence is the last output sentence stating an option ("The answer is B.");
    a token's vote is the curation's POS- and confidence-weighted vote. None when no sentence
    states an option or the input has no option lines.
    """
    curation = curation or result.curation
    options = option_units(result, truth)
    answer = next((s for s in reversed(result.spans) if parse_option(s.text)), None)
    if answer is None or not options:
        return None
    units, confidence = result.token_trace(curation.token_rule)
    lo, hi = answer.token_start, answer.token_end
    votes = token_votes([t.pos for t in result.tokens[lo:hi]], confidence[lo:hi].tolist(), curation)
    masses = {}
    for letter, ids in options.items():
        mask = np.isin(units[lo:hi], list(ids))
        masses[letter] = float(np.asarray(votes)[mask].sum())
    return masses


def from_trace(record: Mapping[str, Any], result: TraceResult, curation: CurationConfig | None = None,
               truth: SampleTruth | None = None) -> SamplePrediction:
    """The curated sources of every output sentence of a trace (re-curated under ``curation``)."""
    if curation is not None and curation != result.curation:
        result = result.recurate(curation)
    spans = tuple(SpanPrediction(span.text, tuple(src.unit for src in span.sources)) for span in result.spans)
    return SamplePrediction(key=str(record.get("key", record.get("id"))), id=str(record.get("id")),
                            task=record.get("task"), units=result.units, item_texts=item_texts(result),
                            spans=spans, output=result.text,
                            option_masses=option_masses(result, curation, truth))
