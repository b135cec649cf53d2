"""Tests of one span's source selection (omnitrace_core.curation.selection), numbers worked by hand.

Default config used throughout unless stated: POS weights NOUN/PROPN/NUM 1.0, VERB 0.9,
ADJ 0.8, ADV 0.5, DET (and other function words) 0.1, PUNCT 0.0; gamma 2; alpha 0.8;
run_min 0.10 with run_min_tokens 2; p_min 0.07; coverage 0.85.
So a NOUN at confidence 1 votes 1.0 and a NOUN at confidence 0.5 votes 0.25.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, fields, replace
from itertools import groupby
from typing import List, Mapping

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
    # With the token rescue off, curation is the appendix's code: [0].
    assert _units(curate(units, pos, conf, replace(CFG, use_run_rescue=False))) == [0]


def test_the_papers_vote_mass_rescue_fires_when_run_min_is_below_p_min():
    # units 0 0 0 0 0 0 0 0 0 1 1 ; unit 0: 9 NOUN (vote 9), unit 1: 2 NOUN at conf 0.5
    # (0.25 each) -> total 9.5, share1 = 0.5/9.5 = 0.052632 < p_min 0.07.
    # Unit 1's heaviest run holds all its vote: run_vote_share1 = 0.052632.
    # Appendix: strong_run = run_frac >= run_min. With run_min 0.05 (< p_min) it holds.
    # Walk (coverage 0.95): 0 (cum 0.947), 1 kept by that rescue (cum 1.0) -> [0, 1].
    # The token rescue is off, and its condition fails anyway (2/11 tokens, 2 tokens < 3).
    units = [0] * 9 + [1, 1]
    pos = ["NOUN"] * 11
    conf = [1.0] * 9 + [0.5, 0.5]
    cfg = replace(CFG, run_min=0.05, run_min_tokens=3, coverage=0.95, use_run_rescue=False)
    result = curate(units, pos, conf, cfg)
    assert _units(result) == [0, 1]
    assert result[1].rescued is True and result[1].share == approx(0.5 / 9.5)
    # At the default run_min (0.10 >= p_min) the same rescue cannot fire.
    assert _units(curate(units, pos, conf, replace(cfg, run_min=0.10))) == [0]


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
    # No confidence shaping: all votes 1 -> share 0.5 / 0.5, scores tie at 0.5 -> the order of
    # first appearance (the appendix's stable sort): 0 (cum 0.5), 1 (cum 1.0) -> [0, 1].
    units = [0, 0, 0, 1, 1, 1]
    pos = ["NOUN"] * 6
    conf = [0.9] * 3 + [0.3] * 3
    full = curate(units, pos, conf)
    assert _units(full) == [0]
    assert full[0].share == approx(0.9)
    ablated = curate(units, pos, conf, ablation_configs()["no_confidence"])
    assert _units(ablated) == [0, 1]
    assert [s.share for s in ablated] == approx([0.5, 0.5])
    # The same span with the units renumbered: the tie still goes to the unit seen first.
    renumbered = curate([4] * 3 + [2] * 3, pos, conf, ablation_configs()["no_confidence"])
    assert _units(renumbered) == [4, 2]


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


def test_untraced_tokens_take_part_like_any_unit_and_are_never_returned():
    # Appendix A.1 treats -1 like every other id. units 0 0 -1 0 1 -1 ; all NOUN conf 1.
    # total 6 ; share0 = 3/6 = 0.5, share(-1) = 2/6, share1 = 1/6.
    # Runs: unit 0's heaviest is [0 0] (vote 2) -> score0 = 0.8*0.5 + 0.2*2/6 = 0.466667 ;
    #   -1: runs of one -> 0.8*2/6 + 0.2*1/6 = 0.3 ; unit 1: 1/6.
    # Walk: 0 (cum 0.5), -1 (cum 0.8333, not returned: it names no source), 1 (cum 1.0).
    units = [0, 0, -1, 0, 1, -1]
    pos = ["NOUN"] * 6
    conf = [1.0] * 6
    result = curate(units, pos, conf)
    assert _units(result) == [0, 1]
    assert [s.share for s in result] == approx([0.5, 1 / 6])
    assert [s.score for s in result] == approx([0.8 * 0.5 + 0.2 * 2 / 6, 1 / 6])
    assert [s.run_share for s in result] == approx([2 / 6, 1 / 6])  # tokens of the span
    # A kept -1 counts toward coverage: units -1 x5, 0 x3, 1 ; all NOUN conf 1 -> total 9,
    # shares 5/9, 3/9, 1/9. Walk: -1 (cum 0.556), 0 (cum 0.889 >= 0.85) -> [0].
    stopped = curate([-1] * 5 + [0] * 3 + [1], ["NOUN"] * 9, [1.0] * 9)
    assert _units(stopped) == [0]
    assert stopped[0].share == approx(3 / 9)
    # A span traced to nothing at all selects nothing.
    assert curate([-1, -1], ["NOUN", "NOUN"], [1.0, 1.0]) == []


def test_untraced_tokens_are_never_rescued_by_their_token_run():
    # alpha 0 (score = heaviest run only). Tokens: 0 x4, 1, 0 x2, 1, 0 x2, 1, -1 x6.
    #   unit 0: 8 NOUN conf 1 -> 8.0, heaviest run 4.0
    #   unit 1: 3 NOUN conf 0.7 -> 0.49 each, 1.47, never adjacent -> heaviest run 0.49
    #   -1: 6 DET conf 1 -> 0.6, one run of 6 tokens (6/17 of the span)
    # total 10.07 ; shares 0.794439, 0.145978, 0.059583 ; scores 0.397219, 0.048659, 0.059583
    # Walk: 0 (cum 0.794), -1 (share < p_min; its 6-token run rescues nothing), 1 (cum 0.940).
    # Had -1 been rescued, its 0.0596 would have ended the walk at 0.854 without unit 1.
    units = [0] * 4 + [1] + [0] * 2 + [1] + [0] * 2 + [1] + [-1] * 6
    pos = ["NOUN"] * 11 + ["DET"] * 6
    conf = [1.0] * 4 + [0.7] + [1.0] * 2 + [0.7] + [1.0] * 2 + [0.7] + [1.0] * 6
    cfg = replace(CFG, alpha=0.0)
    result = curate(units, pos, conf, cfg)
    assert _units(result) == [0, 1]
    assert [s.share for s in result] == approx([8 / 10.07, 1.47 / 10.07])
    assert [s.rescued for s in result] == [False, False]


def test_empty_zero_confidence_and_punct_only_spans_select_nothing():
    assert curate([], [], []) == []
    # gamma 2: 0.0**2 = 0 -> every vote 0 -> total 0.
    assert curate([0, 1, 1], ["NOUN"] * 3, [0.0, 0.0, 0.0]) == []
    # Negative confidences are clipped to 0 as well.
    assert curate([0, 1], ["NOUN"] * 2, [-0.5, -1.0]) == []
    # PUNCT weighs 0 -> total 0, even though the run of unit 3 is long.
    assert curate([3, 3, 3, 3], ["PUNCT"] * 4, [1.0] * 4) == []


def test_zero_vote_units_are_selected_only_where_the_appendix_selects_them():
    # units 0 0 5 5 5 ; unit 5 is a run of three PUNCT tokens (vote 0). Unit 0: two NOUNs.
    # share0 = 1.0, share5 = 0.0. Defaults: 0 (cum 1.0 >= 0.85) -> [0].
    units = [0, 0, 5, 5, 5]
    pos = ["NOUN", "NOUN", "PUNCT", "PUNCT", "PUNCT"]
    conf = [1.0] * 5
    assert _units(curate(units, pos, conf)) == [0]
    # Without coverage the walk reaches unit 5; p_min drops it, and its 3/5 token run
    # rescues nothing (a unit without vote is never rescued).
    assert _units(curate(units, pos, conf, replace(CFG, use_coverage=False))) == [0]
    # Without p_min as well, the appendix keeps it (p_mass 0 < p_min 0 is false): so do we.
    off = curate(units, pos, conf, replace(CFG, use_coverage=False, use_p_min=False))
    assert _units(off) == [0, 5]
    assert off[1].share == 0.0 and off[1].rescued is False


def test_coverage_is_compared_exactly_as_the_appendix_does():
    # units 0..9, one NOUN each at conf 1 -> share 0.1 each, tied, kept in order of appearance.
    # Summed in floating point, eight shares of 0.1 make 0.7999999999999999 < 0.8, so the
    # appendix's walk (cum >= coverage, no tolerance) goes on to a ninth unit.
    units = list(range(10))
    result = curate(units, ["NOUN"] * 10, [1.0] * 10, replace(CFG, coverage=0.8))
    assert sum([0.1] * 8) < 0.8
    assert _units(result) == list(range(9))


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


def test_ties_keep_the_order_of_first_appearance():
    # units 1 0 ; both NOUN conf 1 -> share 0.5 each, one-token runs, score 0.5 each.
    # The appendix ranks with a stable sort over units in order of first appearance.
    for units in ([1, 0], [0, 1]):
        result = curate(units, ["NOUN", "NOUN"], [1.0, 1.0])
        assert _units(result) == units
        assert [s.score for s in result] == [0.5, 0.5]
    # With coverage 0.5 only the unit seen first is kept.
    assert _units(curate([1, 0], ["NOUN", "NOUN"], [1.0, 1.0], replace(CFG, coverage=0.5))) == [1]
    # Masses are summed token by token as in the appendix, so rounding decides near-ties as
    # it does there: unit 1 sums 0.3 + 0.2 + 0.1 = 0.6, unit 0 sums 0.1 + 0.2 + 0.3 =
    # 0.6000000000000001, and unit 0 ranks first although unit 1 appears first.
    cfg = replace(CFG, use_confidence=False, pos_weights={"A": 0.1, "B": 0.2, "C": 0.3})
    units = [1, 1, 1, 0, 0, 0]
    pos = ["C", "B", "A", "A", "B", "C"]
    assert (0.3 + 0.2) + 0.1 < (0.1 + 0.2) + 0.3
    first = curate(units, pos, [1.0] * 6, cfg)
    assert _units(first) == [0, 1]
    assert first[0].score > first[1].score
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


# --------------------------------------------------------------------------- appendix A.1


@dataclass(frozen=True)
class AppendixConfig:
    """The parameters ``curate_sources_with_conf`` reads (its ``cfg``, plus ``POS_W``)."""

    gamma: float
    alpha: float
    run_min: float
    p_min: float
    coverage: float
    POS_W: Mapping[str, float]
    other_pos_weight: float


def curate_sources_with_conf(source_ids, pos, conf, cfg):
    """Appendix A.1 of the OmniTrace paper, transcribed line for line from the paper.

    The one edit: the paper reads the module constant ``POS_W`` and the literal default 0.3;
    here both come from ``cfg`` so that the ablations (POS weights all 1) can be expressed.
    """
    T = len(source_ids)
    if T == 0:
        return []
    if not (T == len(pos) == len(conf)):
        raise ValueError("source_ids, pos, conf must have the same length.")
    vote: List[float] = []
    for p, c in zip(pos, conf):
        pw = cfg.POS_W.get(p, cfg.other_pos_weight)
        cw = (max(c, 0.0) ** cfg.gamma)
        vote.append(pw * cw)
    total = float(sum(vote))
    if total <= 0:
        return []
    mass = defaultdict(float)
    for s, v in zip(source_ids, vote):
        mass[s] += v
    p_mass = {s: m / total for s, m in mass.items()}
    run_max = defaultdict(float)
    cur_s, cur_run = source_ids[0], vote[0]
    for i in range(1, T):
        if source_ids[i] == cur_s:
            cur_run += vote[i]
        else:
            run_max[cur_s] = max(run_max[cur_s], cur_run)
            cur_s, cur_run = source_ids[i], vote[i]
    run_max[cur_s] = max(run_max[cur_s], cur_run)
    run_frac = {s: run_max[s] / total for s in mass.keys()}

    def score(s: int) -> float:
        return cfg.alpha * p_mass[s] + (1.0 - cfg.alpha) * run_frac[s]

    ranked = sorted(p_mass.keys(), key=score, reverse=True)
    selected: List[int] = []
    cum = 0.0
    for s in ranked:
        strong_run = run_frac[s] >= cfg.run_min
        if p_mass[s] < cfg.p_min and not strong_run:
            continue
        selected.append(s)
        cum += p_mass[s]
        if cum >= cfg.coverage:
            break
    return selected


def appendix_config(cfg: CurationConfig) -> AppendixConfig:
    """The appendix's parameters equivalent to ``cfg`` (as CurationConfig's docstring states)."""
    return AppendixConfig(
        POS_W=dict(cfg.pos_weights) if cfg.use_pos_weights else {},
        other_pos_weight=cfg.default_pos_weight if cfg.use_pos_weights else 1.0,
        gamma=cfg.gamma if cfg.use_confidence else 0.0,
        alpha=cfg.alpha if cfg.use_run_coherence else 1.0,
        run_min=cfg.run_min if cfg.use_run_coherence else math.inf,
        p_min=cfg.p_min if cfg.use_p_min else 0.0,
        coverage=cfg.coverage if cfg.use_coverage else math.inf,
    )


def appendix_units(units, pos, conf, cfg: CurationConfig) -> list[int]:
    """What the appendix selects, less -1 (it names no source)."""
    return [s for s in curate_sources_with_conf(units, pos, conf, appendix_config(cfg)) if s != -1]


def test_transcription_reproduces_the_worked_examples():
    # The transcription itself, on spans worked by hand above: it must agree with the
    # arithmetic there before it can serve as the reference.
    appendix = appendix_config(CFG)
    assert curate_sources_with_conf([0, 0, 1, 0, 0], ["NOUN"] * 5, [1.0, 1.0, 0.5, 1.0, 1.0], appendix) == [0]
    rescue = ([0, 0, 0, 0, 1, 1, 1, 2, 3], ["NOUN"] * 4 + ["DET"] * 3 + ["NOUN"] * 2, [1.0] * 7 + [0.5] * 2)
    assert curate_sources_with_conf(*rescue, appendix) == [0]
    assert curate_sources_with_conf([-1] * 5 + [0] * 3 + [1], ["NOUN"] * 9, [1.0] * 9, appendix) == [-1, 0]
    assert curate_sources_with_conf([1, 0], ["NOUN"] * 2, [1.0] * 2, appendix) == [1, 0]


# Small pools make ties, zero votes, untraced tokens and repeated units common.
_TAGS = ["NOUN", "VERB", "ADJ", "DET", "PUNCT", "X"]
_confidence = st.one_of(
    st.sampled_from([0.0, 1.0, 0.5, 0.25, 0.1, 0.2, 0.3, -0.5]),
    st.floats(min_value=-1.0, max_value=2.0, allow_nan=False),
)
_token = st.tuples(st.integers(min_value=-1, max_value=4), st.sampled_from(_TAGS), _confidence)
_unit_interval = st.one_of(st.sampled_from([0.0, 0.05, 0.07, 0.1, 0.25, 0.5, 1.0]), st.floats(0.0, 1.0))
_config = st.builds(
    CurationConfig,
    use_pos_weights=st.booleans(),
    pos_weights=st.one_of(
        st.just(CFG.pos_weights),
        st.dictionaries(st.sampled_from(_TAGS), st.sampled_from([0.0, 0.1, 0.3, 0.5, 1.0, 2.5])),
    ),
    default_pos_weight=st.sampled_from([0.0, 0.3, 1.0]),
    use_confidence=st.booleans(),
    gamma=st.one_of(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0]), st.floats(0.0, 10.0)),
    use_run_coherence=st.booleans(),
    alpha=_unit_interval,
    use_run_rescue=st.booleans(),
    run_min=_unit_interval,
    run_min_tokens=st.integers(min_value=1, max_value=4),
    use_p_min=st.booleans(),
    p_min=_unit_interval,
    use_coverage=st.booleans(),
    coverage=st.one_of(st.sampled_from([0.5, 0.8, 0.85, 1.0]), st.floats(0.0, 1.0, exclude_min=True)),
)


def _columns(tokens):
    return [u for u, _, _ in tokens], [p for _, p, _ in tokens], [c for _, _, c in tokens]


def _token_run_qualifies(units: list[int], cfg: CurationConfig) -> bool:
    """Whether some real unit has a token run the token rescue could act on."""
    if not (cfg.use_run_rescue and cfg.use_run_coherence and cfg.use_p_min):
        return False
    for u, group in groupby(units):
        length = len(list(group))
        if u != -1 and length >= cfg.run_min_tokens and length / len(units) >= cfg.run_min:
            return True
    return False


@settings(max_examples=600, deadline=None)
@given(tokens=st.lists(_token, max_size=30), cfg=_config)
def test_with_the_token_rescue_off_curation_is_appendix_a1(tokens, cfg):
    units, pos, conf = _columns(tokens)
    cfg = replace(cfg, use_run_rescue=False)
    assert _units(curate(units, pos, conf, cfg)) == appendix_units(units, pos, conf, cfg)


@settings(max_examples=600, deadline=None)
@given(tokens=st.lists(_token, max_size=30), cfg=_config)
def test_the_token_rescue_is_the_only_difference_from_appendix_a1(tokens, cfg):
    units, pos, conf = _columns(tokens)
    result = curate(units, pos, conf, cfg)
    if not _token_run_qualifies(units, cfg):
        assert _units(result) == appendix_units(units, pos, conf, cfg)
    chosen = _units(result)
    assert len(chosen) == len(set(chosen)) and -1 not in chosen
    assert set(chosen) <= set(units)
    scores = [s.score for s in result]
    assert scores == sorted(scores, reverse=True)
    for s in result:
        assert 0.0 <= s.share <= 1.0 + 1e-12 and 0.0 < s.run_share <= 1.0
        if not cfg.use_run_coherence:
            assert s.score == s.share
        if s.rescued:
            assert cfg.use_p_min and cfg.use_run_coherence and s.share < cfg.p_min
