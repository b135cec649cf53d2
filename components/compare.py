"""Multi-signal comparison of one generation: per-sentence agreement of the curated sources.

Pure: results in, a comparison (and its escaped HTML table) out. Two traces describe the same
generation only if their token ids match; greedy decoding makes that the normal case, and a
mismatch is reported instead of compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Mapping, Sequence

from omnitrace_core import TraceResult

from .explorer_view import esc


def jaccard(a: frozenset[int], b: frozenset[int]) -> float:
    """|a & b| / |a | b|; two empty sets agree completely (1.0): neither signal finds a source."""
    union = a | b
    return 1.0 if not union else len(a & b) / len(union)


def first_difference(a: TraceResult, b: TraceResult) -> int | None:
    """Index of the first generated token where the two traces differ (None if identical)."""
    ids_a = [t.token_id for t in a.tokens]
    ids_b = [t.token_id for t in b.tokens]
    for k, (x, y) in enumerate(zip(ids_a, ids_b)):
        if x != y:
            return k
    return None if len(ids_a) == len(ids_b) else min(len(ids_a), len(ids_b))


@dataclass(frozen=True)
class SentenceAgreement:
    """One output sentence across signals.

    Attributes:
        index, text: the sentence.
        units: signal -> curated unit indices.
        labels: signal -> curated source labels with shares, strongest first.
        pairwise: "a|b" -> Jaccard of the two signals' unit sets.
        mean: mean pairwise Jaccard (None with fewer than two comparable signals).
    """

    index: int
    text: str
    units: Mapping[str, frozenset[int]]
    labels: Mapping[str, tuple[str, ...]]
    pairwise: Mapping[str, float]
    mean: float | None


@dataclass(frozen=True)
class Comparison:
    """The comparison of several signals' traces of one generation.

    Attributes:
        base: the signal of the reference trace.
        signals: the compared signals (base first), all with the base's token ids.
        mismatched: signal -> first differing token index, for traces of another generation.
        sentences: per-sentence agreement.
    """

    base: str
    signals: tuple[str, ...]
    mismatched: Mapping[str, int]
    sentences: tuple[SentenceAgreement, ...]

    @property
    def mean(self) -> float | None:
        values = [s.mean for s in self.sentences if s.mean is not None]
        return sum(values) / len(values) if values else None


def compare_results(results: Mapping[str, TraceResult], base: str) -> Comparison:
    """Compare the curated sources of several traces sentence by sentence.

    Args:
        results: signal -> trace (all curated with the same settings).
        base: the reference signal (its trace must be in ``results``).
    """
    reference = results[base]
    mismatched: dict[str, int] = {}
    signals = [base]
    for signal, result in results.items():
        if signal == base:
            continue
        diff = first_difference(reference, result)
        if diff is None:
            signals.append(signal)
        else:
            mismatched[signal] = diff
    sentences = []
    for k, span in enumerate(reference.spans):
        units = {s: frozenset(src.unit for src in results[s].spans[k].sources) for s in signals}
        labels = {s: tuple(f"{src.label} ({100 * src.share:.0f}%)"
                           for src in sorted(results[s].spans[k].sources, key=lambda x: -x.share)) for s in signals}
        pairwise = {f"{a}|{b}": jaccard(units[a], units[b]) for a, b in combinations(signals, 2)}
        mean = sum(pairwise.values()) / len(pairwise) if pairwise else None
        sentences.append(SentenceAgreement(k, span.text, units, labels, pairwise, mean))
    return Comparison(base=base, signals=tuple(signals), mismatched=mismatched, sentences=tuple(sentences))


def _agreement_cell(value: float | None) -> str:
    if value is None:
        return '<td class="ot-agree">&ndash;</td>'
    return f'<td class="ot-agree" style="--ot-s:{value:.3f}">{value:.2f}</td>'


def render_comparison(comparison: Comparison | None, pending: Sequence[str] = ()) -> str:
    """Side-by-side table: one row per sentence, one column per signal, agreement at the end."""
    if comparison is None:
        return ('<div class="ot-compare"><p class="ot-empty">Trace an input, then choose more signals: the same '
                'generation is re-traced (greedy decoding) and compared sentence by sentence.</p></div>')
    notes = []
    for signal, index in comparison.mismatched.items():
        notes.append(f'<p class="ot-warn">{esc(signal)}: token ids differ from the {esc(comparison.base)} run at token '
                     f'{index}, so it traced a different generation; it is left out of the comparison.</p>')
    if pending:
        notes.append(f'<p class="ot-sub">Tracing with {esc(", ".join(pending))}...</p>')
    head = "".join(f"<th>{esc(s)}{' (base)' if s == comparison.base else ''}</th>" for s in comparison.signals)
    rows = []
    for sentence in comparison.sentences:
        cells = "".join(
            f'<td><ul>{"".join(f"<li>{esc(label)}</li>" for label in sentence.labels[s]) or "<li class=ot-none>no source</li>"}</ul></td>'
            for s in comparison.signals)
        rows.append(f'<tr data-sentence="{sentence.index}"><td class="ot-ctext">{esc(sentence.text)}</td>{cells}'
                    f'{_agreement_cell(sentence.mean)}</tr>')
    mean = comparison.mean
    summary = (f'<p class="ot-sub">Mean per-sentence agreement (Jaccard of curated unit sets): '
               f'<b>{mean:.2f}</b> over {len(comparison.signals)} signals.</p>') if mean is not None else ""
    return (f'<div class="ot-compare">{"".join(notes)}{summary}<table class="ot-ctable"><thead><tr><th>sentence</th>'
            f'{head}<th>agreement</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>')
