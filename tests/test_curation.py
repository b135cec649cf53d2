"""Tests of span-level source curation (omnitrace_core.curation), numbers worked by hand.

Default config used throughout unless stated: POS weights NOUN/PROPN/NUM 1.0, VERB 0.9,
ADJ 0.8, ADV 0.5, DET (and other function words) 0.1, PUNCT 0.0; gamma 2; alpha 0.8;
run_min 0.10 with run_min_tokens 2; p_min 0.07; coverage 0.85.
So a NOUN at confidence 1 votes 1.0 and a NOUN at confidence 0.5 votes 0.25.
"""

from __future__ import annotations

import math
from dataclasses import fields, replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnitrace_core.config import CurationConfig
from omnitrace_core.curation import CuratedSource, ablation_configs, curate, token_votes

CFG = CurationConfig()
approx = pytest.approx


def _units(result: list[CuratedSource]) -> list[int]:
    return [s.unit for s in result]


# --------------------------------------------------------------------------- token votes


def test_token_votes_combine_pos_weight_and_shaped_confidence():
    # NOUN 1.0 * 1.0**2 = 1.0 ; VERB 0.9 * 0.5**2 = 0.225 ; DET 0.1 * 1.0 = 0.1 ;
    # PUNCT 0.0 ; unknown tag -> default 0.3 * 0.5**2 = 0.075 ; negative confidence -> 0.
    pos = ["NOUN", "VERB", "DET", "PUNCT", "X", "NOUN"]
    conf = [1.0, 0.5, 1.0, 1.0, 0.5, -0.4]
    assert token_votes(pos, conf, CFG) == approx([1.0, 0.225, 0.1, 0.0, 0.075, 0.0])
    # No confidence shaping: the confidence factor is 1 (even for the negative one).
    no_conf = replace(CFG, use_confidence=False)
    assert token_votes(pos, conf, no_conf) == approx([1.0, 0.9, 0.1, 0.0, 0.3, 1.0])
    # No POS weights: every tag weighs 1 -> votes are just max(c, 0)**2.
    no_pos = replace(CFG, use_pos_weights=False)
    assert token_votes(pos, conf, no_pos) == approx([1.0, 0.25, 1.0, 1.0, 0.25, 0.0])


def test_token_votes_rejects_bad_input():
    with pytest.raises(ValueError, match="one entry per token"):
        token_votes(["NOUN"], [1.0, 1.0], CFG)
    with pytest.raises(ValueError, match="finite"):
        token_votes(["NOUN"], [float("nan")], CFG)


# --------------------------------------------------------------------------- default config


def test_default_two_sources_one_dominates():
    # units 0 0 1 0 0, all NOUN, confidence 1 except the unit-1 token at 0.5.
    # votes 1, 1, 0.25, 1, 1 -> total 4.25
    # share0 = 4/4.25 = 0.941176 ; share1 = 0.25/4.25 = 0.058824
    # unit 0's heaviest run is 2 tokens (vote 2) -> run_vote_share0 = 2/4.25 = 0.470588
    # score0 = 0.8*0.941176 + 0.2*0.470588 = 0.847059 ; score1 = 0.058824 (one-token run)
    # Walk: unit 0 -> cumulative 0.941 >= 0.85 -> stop. Unit 1 never reached.
    units = [0, 0, 1, 0, 0]
    pos = ["NOUN"] * 5
    conf = [1.0, 1.0, 0.5, 1.0, 1.0]
    (only,) = curate(units, pos, conf)
    assert only.unit == 0
    assert only.share == approx(4 / 4.25)
    assert only.score == approx(0.8 * 4 / 4.25 + 0.2 * 2 / 4.25)
    assert only.score == approx(0.847059, abs=1e-6)
    assert only.run_share == approx(2 / 5)  # longest run 2 tokens of 5 counted
    assert only.rescued is False


def test_p_min_drops_weak_sources():
    # units 0 1 0 2 0 3 0 4, unit 0 tokens NOUN conf 1 (vote 1 each, 4 in all),
    # units 1..4 one NOUN at conf 0.5 each (vote 0.25). total = 5.
    # share0 = 0.8 ; share1..4 = 0.05 each (< p_min 0.07).
    # unit 0 is fragmented: heaviest run vote 1 -> score0 = 0.8*0.8 + 0.2*0.2 = 0.68.
    # units 1..4: score 0.05 each; one-token runs (run_share 1/8 = 0.125 >= run_min, but
    # 1 token < run_min_tokens 2) -> not strongly run -> all four dropped.
    # Walk: unit 0 (cum 0.8 < 0.85), skip 1, 2, 3, 4 -> [0], coverage never reached.
    units = [0, 1, 0, 2, 0, 3, 0, 4]
    pos = ["NOUN"] * 8
    conf = [1.0, 0.5] * 4
    result = curate(units, pos, conf)
    assert _units(result) == [0]
    assert result[0].share == approx(0.8)
    assert result[0].score == approx(0.68)
    # Without p_min: unit 1 (first of the tied 0.05s) is kept and 0.8 + 0.05 = 0.85 stops.
    no_p_min = curate(units, pos, conf, replace(CFG, use_p_min=False))
    assert _units(no_p_min) == [0, 1]
    assert no_p_min[1].share == approx(0.05)
    assert sum(s.share for s in no_p_min) == approx(0.85)


def test_strong_token_run_rescues_a_source_the_papers_code_would_drop():
    # units 0 0 0 0 1 1 1 2 3
    #   unit 0: 4 NOUN conf 1      -> votes 1,1,1,1   mass 4.0
    #   unit 1: 3 DET conf 1       -> votes .1,.1,.1  mass 0.3
    #   unit 2, 3: 1 NOUN conf 0.5 -> vote 0.25 each
    # total = 4.8 ; share0 = 0.833333, share1 = 0.0625, share2 = share3 = 0.052083
    # Scores (all runs contiguous, so run_vote_share == share): same as the shares.
    # Walk: unit 0 -> cum 0.8333 < 0.85. Unit 1: share 0.0625 < p_min 0.07, but its run is
    # 3 tokens (>= run_min_tokens 2) of 9 counted: 3/9 = 0.3333 >= run_min 0.10 -> rescued,
    # cum 0.8958 >= 0.85 -> stop.
    # The paper's printed code measures the run in vote mass: run_frac1 = 0.3/4.8 = 0.0625
    # < run_min 0.10, so there unit 1 is NOT strongly run and is dropped (as are units 2, 3:
    # run_frac 0.052 < 0.10) -> the paper's code would return [0].
    units = [0, 0, 0, 0, 1, 1, 1, 2, 3]
    pos = ["NOUN"] * 4 + ["DET"] * 3 + ["NOUN", "NOUN"]
    conf = [1.0] * 7 + [0.5, 0.5]
    result = curate(units, pos, conf)
    assert _units(result) == [0, 1]
    first, rescued = result
    assert first.share == approx(4 / 4.8) and first.rescued is False
    assert rescued.share == approx(0.0625)
    assert rescued.run_share == approx(3 / 9)
    assert rescued.score == approx(0.0625)
    assert rescued.rescued is True
    # The paper's run_frac (vote mass of the run / total) would not have passed run_min:
    assert 0.3 / 4.8 < CFG.run_min
    # Same span with a run_min_tokens the run does not reach: no rescue.
    assert _units(curate(units, pos, conf, replace(CFG, run_min_tokens=4))) == [0]
    # And without run coherence there is no rescue at all.
    assert _units(curate(units, pos, conf, replace(CFG, use_run_coherence=False))) == [0]


def test_coverage_stops_early():
    # units 0*6, 1*3, 2 ; all NOUN conf 1 -> votes 1 each, total 10.
    # share = 0.6, 0.3, 0.1 ; all runs contiguous so score == share.
    # Walk: 0 (cum 0.6), 1 (cum 0.9 >= 0.85 -> stop). Unit 2 would pass p_min
    # (0.1 >= 0.07) but is never reached.
    units = [0] * 6 + [1] * 3 + [2]
    pos = ["NOUN"] * 10
    conf = [1.0] * 10
    result = curate(units, pos, conf)
    assert _units(result) == [0, 1]
    assert [s.share for s in result] == approx([0.6, 0.3])
    assert [s.run_share for s in result] == approx([0.6, 0.3])
    # Switching coverage off keeps every unit that passes p_min.
    no_cov = curate(units, pos, conf, replace(CFG, use_coverage=False))
    assert _units(no_cov) == [0, 1, 2]
    assert no_cov[2].share == approx(0.1)


# --------------------------------------------------------------------------- each switch


def test_no_pos_weights_changes_the_outcome():
    # units 0 0 0 1 1 1 1 1 ; unit 0 three NOUNs, unit 1 five DETs ; conf 1.
    # Full: votes 1,1,1 and .1 x5 -> total 3.5 ; share0 = 3/3.5 = 0.857143 -> [0].
    # No POS weights: every vote 1 -> total 8 ; share1 = 5/8 = 0.625, share0 = 0.375.
    #   Ranking 1 (cum 0.625), 0 (cum 1.0) -> [1, 0].
    units = [0, 0, 0, 1, 1, 1, 1, 1]
    pos = ["NOUN"] * 3 + ["DET"] * 5
    conf = [1.0] * 8
    full = curate(units, pos, conf)
    assert _units(full) == [0]
    assert full[0].share == approx(3 / 3.5)
    ablated = curate(units, pos, conf, ablation_configs()["no_pos_weights"])
    assert _units(ablated) == [1, 0]
    assert [s.share for s in ablated] == approx([0.625, 0.375])


def test_no_confidence_changes_the_outcome():
    # units 0 0 0 1 1 1 ; all NOUN ; conf 0.9 for unit 0, 0.3 for unit 1.
    # Full: votes 0.81 x3 = 2.43 and 0.09 x3 = 0.27 -> total 2.7 ; share0 = 0.9 -> [0].
    # No confidence shaping: all votes 1 -> share 0.5 / 0.5, scores tie at 0.5 -> the lower
    # index first: 0 (cum 0.5), 1 (cum 1.0) -> [0, 1].
    units = [0, 0, 0, 1, 1, 1]
    pos = ["NOUN"] * 6
    conf = [0.9] * 3 + [0.3] * 3
    full = curate(units, pos, conf)
    assert _units(full) == [0]
    assert full[0].share == approx(0.9)
    ablated = curate(units, pos, conf, ablation_configs()["no_confidence"])
    assert _units(ablated) == [0, 1]
    assert [s.share for s in ablated] == approx([0.5, 0.5])


def test_no_run_coherence_changes_the_outcome():
    # units: 0 x13, then 1 0 1 0 1 0 1 0, then 2 2 ; conf 1.
    #   unit 0: 17 NOUN -> mass 17, heaviest run 13
    #   unit 1: 4 ADV (0.5 each), never adjacent -> mass 2.0, heaviest run 0.5
    #   unit 2: 2 VERB (0.9 each), adjacent -> mass 1.8, heaviest run 1.8
    # total = 20.8 ; share0 = 0.817308, share1 = 0.096154, share2 = 0.086538
    # Full scores: 0: (0.8*17 + 0.2*13)/20.8 = 16.2/20.8 = 0.778846
    #              1: (0.8*2 + 0.2*0.5)/20.8 = 1.7/20.8 = 0.081731
    #              2: (0.8*1.8 + 0.2*1.8)/20.8 = 1.8/20.8 = 0.086538
    #   ranking 0, 2, 1 -> 0 (cum 0.8173), 2 (cum 0.9038 >= 0.85) -> [0, 2]
    # Without run coherence the score is the share: ranking 0, 1, 2 ->
    #   0 (cum 0.8173), 1 (cum 0.9135) -> [0, 1]
    units = [0] * 13 + [1, 0, 1, 0, 1, 0, 1, 0] + [2, 2]
    pos = ["NOUN"] * 13 + ["ADV", "NOUN"] * 4 + ["VERB", "VERB"]
    conf = [1.0] * len(units)
    full = curate(units, pos, conf)
    assert _units(full) == [0, 2]
    assert [s.score for s in full] == approx([16.2 / 20.8, 1.8 / 20.8])
    assert [s.share for s in full] == approx([17 / 20.8, 1.8 / 20.8])
    assert full[0].run_share == approx(13 / 23)  # 23 counted tokens
    ablated = curate(units, pos, conf, ablation_configs()["no_run_coherence"])
    assert _units(ablated) == [0, 1]
    assert [s.score for s in ablated] == approx([17 / 20.8, 2.0 / 20.8])
    assert ablated[1].run_share == approx(1 / 23)  # still reported, just not used


def test_no_p_min_and_no_coverage_switches_through_ablation_configs():
    # Same spans as test_p_min_drops_weak_sources and test_coverage_stops_early.
    cfgs = ablation_configs()
    units = [0, 1, 0, 2, 0, 3, 0, 4]
    pos, conf = ["NOUN"] * 8, [1.0, 0.5] * 4
    assert _units(curate(units, pos, conf, cfgs["full"])) == [0]
    assert _units(curate(units, pos, conf, cfgs["no_p_min"])) == [0, 1]
    units = [0] * 6 + [1] * 3 + [2]
    pos, conf = ["NOUN"] * 10, [1.0] * 10
    assert _units(curate(units, pos, conf, cfgs["full"])) == [0, 1]
    assert _units(curate(units, pos, conf, cfgs["no_coverage"])) == [0, 1, 2]


# --------------------------------------------------------------------------- edge cases


def test_untraced_tokens_are_ignored_and_break_runs():
    # units 0 0 -1 0 1 -1 ; all NOUN conf 1. The -1 tokens cast no vote and are not counted.
    # Counted tokens: 4 ; total 4 ; share0 = 0.75, share1 = 0.25.
    # Unit 0's runs are [0 0] and [0] (the -1 breaks it): heaviest run vote 2 -> 0.5,
    #   longest run 2 tokens -> run_share 2/4 = 0.5 ; score0 = 0.8*0.75 + 0.2*0.5 = 0.7.
    # Unit 1: score 0.25, run_share 1/4.
    # Walk: 0 (cum 0.75), 1 (cum 1.0) -> [0, 1].
    units = [0, 0, -1, 0, 1, -1]
    pos = ["NOUN"] * 6
    conf = [1.0] * 6
    result = curate(units, pos, conf)
    assert _units(result) == [0, 1]
    assert [s.share for s in result] == approx([0.75, 0.25])
    assert [s.score for s in result] == approx([0.7, 0.25])
    assert [s.run_share for s in result] == approx([0.5, 0.25])
    # A span traced to nothing at all selects nothing.
    assert curate([-1, -1], ["NOUN", "NOUN"], [1.0, 1.0]) == []


def test_empty_zero_confidence_and_punct_only_spans_select_nothing():
    assert curate([], [], []) == []
    # gamma 2: 0.0**2 = 0 -> every vote 0 -> total 0.
    assert curate([0, 1, 1], ["NOUN"] * 3, [0.0, 0.0, 0.0]) == []
    # Negative confidences are clipped to 0 as well.
    assert curate([0, 1], ["NOUN"] * 2, [-0.5, -1.0]) == []
    # PUNCT weighs 0 -> total 0, even though the run of unit 3 is long.
    assert curate([3, 3, 3, 3], ["PUNCT"] * 4, [1.0] * 4) == []


def test_zero_vote_units_are_never_selected():
    # units 0 0 5 5 5 ; unit 5 is a run of three PUNCT tokens (vote 0). Unit 0: two NOUNs.
    # share0 = 1.0 ; unit 5 has no mass, so neither coverage-off nor p_min-off nor its
    # 3/5 token run brings it in.
    units = [0, 0, 5, 5, 5]
    pos = ["NOUN", "NOUN", "PUNCT", "PUNCT", "PUNCT"]
    conf = [1.0] * 5
    off = replace(CFG, use_coverage=False, use_p_min=False)
    assert _units(curate(units, pos, conf)) == [0]
    assert _units(curate(units, pos, conf, off)) == [0]


def test_length_mismatch_and_bad_units_raise():
    with pytest.raises(ValueError, match="lengths 2, 1 and 2"):
        curate([0, 1], ["NOUN"], [1.0, 1.0])
    with pytest.raises(ValueError, match="lengths 1, 1 and 0"):
        curate([0], ["NOUN"], [])
    with pytest.raises(ValueError, match=r"units\[1\] = -2"):
        curate([0, -2], ["NOUN", "NOUN"], [1.0, 1.0])
    with pytest.raises(ValueError, match="integer"):
        curate([0.5], ["NOUN"], [1.0])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="finite"):
        curate([0], ["NOUN"], [math.inf])


def test_ties_are_broken_by_lower_unit_index_deterministically():
    # units 1 0 ; both NOUN conf 1 -> share 0.5 each, one-token runs, score 0.5 each.
    # The tie goes to unit 0 whatever the token order.
    for units in ([1, 0], [0, 1]):
        result = curate(units, ["NOUN", "NOUN"], [1.0, 1.0])
        assert _units(result) == [0, 1]
        assert [s.score for s in result] == [0.5, 0.5]
    # With coverage 0.5 only the tie winner is kept.
    assert _units(curate([1, 0], ["NOUN", "NOUN"], [1.0, 1.0], replace(CFG, coverage=0.5))) == [0]
    # Float-sensitive tie: votes 0.1, 0.2, 0.3 in opposite orders. Naively
    # (0.1 + 0.2) + 0.3 != (0.3 + 0.2) + 0.1 in floating point; the masses must still tie.
    cfg = replace(CFG, use_confidence=False, pos_weights={"A": 0.1, "B": 0.2, "C": 0.3})
    units = [1, 1, 1, 0, 0, 0]
    pos = ["A", "B", "C", "C", "B", "A"]
    first = curate(units, pos, [1.0] * 6, cfg)
    assert _units(first) == [0, 1]
    assert first[0].score == first[1].score
    # Same input, same output, every time.
    assert all(curate(units, pos, [1.0] * 6, cfg) == first for _ in range(5))


def test_ablation_configs_layout():
    cfgs = ablation_configs()
    assert list(cfgs) == [
        "full",
        "no_pos_weights",
        "no_confidence",
        "no_run_coherence",
        "no_p_min",
        "no_coverage",
    ]
    full = cfgs["full"]
    assert full == CurationConfig()
    switched = {
        "no_pos_weights": "use_pos_weights",
        "no_confidence": "use_confidence",
        "no_run_coherence": "use_run_coherence",
        "no_p_min": "use_p_min",
        "no_coverage": "use_coverage",
    }
    for name, field_name in switched.items():
        diff = [
            f.name
            for f in fields(CurationConfig)
            if getattr(cfgs[name], f.name) != getattr(full, f.name)
        ]
        assert diff == [field_name], name
        assert getattr(cfgs[name], field_name) is False
    # A custom base is carried into every variant.
    base = replace(CFG, p_min=0.2)
    assert all(c.p_min == 0.2 for c in ablation_configs(base).values())


# --------------------------------------------------------------------------- property test

_TAGS = ["NOUN", "VERB", "ADJ", "DET", "PUNCT", "X"]
_token = st.tuples(
    st.integers(min_value=-1, max_value=5),
    st.sampled_from(_TAGS),
    st.floats(min_value=-0.5, max_value=1.5, allow_nan=False),
)
_config = st.builds(
    CurationConfig,
    use_pos_weights=st.booleans(),
    use_confidence=st.booleans(),
    use_run_coherence=st.booleans(),
    use_p_min=st.booleans(),
    use_coverage=st.booleans(),
    gamma=st.sampled_from([0.5, 1.0, 2.0]),
    alpha=st.floats(min_value=0.0, max_value=1.0),
    p_min=st.floats(min_value=0.0, max_value=0.3),
    coverage=st.floats(min_value=0.05, max_value=1.0),
    run_min=st.floats(min_value=0.0, max_value=0.5),
    run_min_tokens=st.integers(min_value=1, max_value=4),
)


@settings(max_examples=300, deadline=None)
@given(tokens=st.lists(_token, max_size=30), cfg=_config)
def test_curation_properties(tokens, cfg):
    units = [u for u, _, _ in tokens]
    pos = [p for _, p, _ in tokens]
    conf = [c for _, _, c in tokens]

    # Independent share computation over the counted (traced) tokens.
    votes = token_votes(pos, conf, cfg)
    mass: dict[int, float] = {}
    for u, v in zip(units, votes):
        if u != -1:
            mass[u] = mass.get(u, 0.0) + v
    total = sum(mass.values())

    result = curate(units, pos, conf, cfg)
    everything = curate(units, pos, conf, replace(cfg, use_p_min=False, use_coverage=False))
    if total <= 0:
        assert result == [] and everything == []
        return

    # Shares of all units (with positive mass) sum to 1 and match the independent ones.
    positive = {u: m / total for u, m in mass.items() if m > 0}
    assert {s.unit: s.share for s in everything} == approx(positive)
    assert sum(s.share for s in everything) == approx(1.0)

    # Selected units are distinct, a subset, in score order, with sane fields.
    chosen = _units(result)
    assert len(chosen) == len(set(chosen))
    assert set(chosen) <= set(positive)
    scores = [s.score for s in result]
    assert scores == sorted(scores, reverse=True)
    for s in result:
        assert 0.0 <= s.share <= 1.0 + 1e-12
        assert 0.0 < s.run_share <= 1.0
        assert s.share == approx(positive[s.unit])
        if s.rescued:
            assert cfg.use_p_min and cfg.use_run_coherence and s.share < cfg.p_min
            assert s.run_share >= cfg.run_min
        elif cfg.use_p_min:
            assert s.share >= cfg.p_min
        if not cfg.use_run_coherence:
            assert s.score == s.share

    # Coverage: the selection reaches it unless units ran out or were filtered by p_min.
    covered = sum(s.share for s in result)
    if cfg.use_coverage and covered < cfg.coverage - 1e-9:
        for u, share in positive.items():
            if u not in chosen:
                assert cfg.use_p_min and share < cfg.p_min
    if cfg.use_coverage:
        # No unit beyond the one that reached coverage: dropping the last one falls short.
        if result:
            assert covered - result[-1].share < cfg.coverage + 1e-9
    else:
        # Without coverage every unit that passes p_min (or is rescued) is kept.
        for u, share in positive.items():
            if not cfg.use_p_min or share >= cfg.p_min:
                assert u in chosen
