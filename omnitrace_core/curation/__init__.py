"""Curation: per-token traces -> span-level curated sources (the paper's Algorithm 1 and appendix A.1).

Data flows one way: the engine's per-token scores come in as arrays, spans with curated and
described sources come out; the result only stores them. Nothing here knows models or media.

- :mod:`.token_rules`: which source unit a generated token traces to, with what confidence
  (registered by name: ``sum``, ``max_token``);
- :mod:`.selection`: one span's token traces -> its selected units (appendix A.1, operation for
  operation), and :func:`explain`, the same walk with every unit's outcome;
- :mod:`.spans`: :class:`Span` / :class:`SpanSource`, :func:`curate_spans` (every span of a trace,
  its sources described: tile scores, track shares) and :func:`span_shares` (what lies behind one
  span's curated list).
"""

from .selection import NO_SOURCE, CuratedSource, Decision, ablation_configs, curate, explain, token_votes
from .spans import Span, SpanShares, SpanSource, TokenScores, curate_spans, span_shares
from .token_rules import TokenRule, get_token_rule, list_token_rules, register_token_rule

__all__ = [
    "NO_SOURCE", "CuratedSource", "Decision", "Span", "SpanShares", "SpanSource", "TokenRule", "TokenScores",
    "ablation_configs", "curate", "curate_spans", "explain", "get_token_rule", "list_token_rules",
    "register_token_rule", "span_shares", "token_votes",
]
