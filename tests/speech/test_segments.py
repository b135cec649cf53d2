"""Speech segments: strict validation of user transcripts, lenient cleaning of recogniser output, merging."""

from __future__ import annotations

import pytest

from omnitrace_core import InputError
from omnitrace_core.speech import SpeechSegment as S
from omnitrace_core.speech import clean_segments, ends_sentence, merge_segments, validate_segments


def _spans(segments):
    return [(s.start, s.end, s.text) for s in segments]


# --------------------------------------------------------------------------- validate_segments
def test_valid_segments_pass_and_small_overruns_are_clipped():
    out = validate_segments([{"start": 0, "end": 2, "text": "a"}, (2.2, 5.0, "b"), S(5.0, 8.3, "c")], duration=8.0)
    assert _spans(out) == [(0.0, 2.0, "a"), (2.2, 5.0, "b"), (5.0, 8.0, "c")]


def test_a_small_overlap_is_trimmed():
    out = validate_segments([S(0, 2.3, "a"), S(2.0, 4, "b")], duration=5)
    assert _spans(out) == [(0.0, 2.0, "a"), (2.0, 4.0, "b")]


@pytest.mark.parametrize("segments, message", [
    ([], "the transcript has no segments"),
    ([S(-1, 2, "a")], "segment 1 of 1 (-1.000-2.000 s, 'a') has a negative time"),
    ([S(0, 1, "a"), S(3, 2, "b")], "segment 2 of 2 (3.000-2.000 s, 'b') ends before it starts"),
    ([S(0, 1, "a"), S(1, 1, "b")], "ends before it starts (or has no length)"),
    ([S(4, 5, "a"), S(1, 2, "b")], "segment 2 of 2 (1.000-2.000 s, 'b') starts before segment 1"),
    ([S(0, 4, "a"), S(2, 5, "b")], "overlaps segment 1 (which ends at 4.000 s) by 2.000 s"),
    ([S(0, 1, "a"), S(9, 9.5, "b")], "segment 2 of 2 (9.000-9.500 s, 'b') starts at or after the end of the media"),
    ([S(0, 9.0, "a")], "ends 1.000 s after the end of the media (8.000 s)"),
    ([{"start": 0}], "segment 1 of 1: speech segment"),
])
def test_invalid_segments_name_the_segment_and_the_rule(segments, message):
    with pytest.raises(InputError) as info:
        validate_segments(segments, duration=8.0)
    assert message in str(info.value)


def test_segment_fields_are_checked():
    with pytest.raises(InputError, match="finite number"):
        S(float("nan"), 1.0)
    with pytest.raises(InputError, match="text must be a string"):
        S(0, 1, 5)


# --------------------------------------------------------------------------- clean_segments
def test_recogniser_output_is_cleaned_not_rejected():
    raw = [S(7.0, 12.0, " past  the end "), S(0.0, 3.0, "first"), S(2.5, 4.0, "overlap"), S(4.0, 4.0, "empty span"),
           S(4.5, 5.0, "   "), S(9.0, 9.5, "beyond"), S(-0.5, 0.2, "before")]
    # "before" is clipped to start at 0 like "first": segments with the same start are joined
    assert _spans(clean_segments(raw, duration=8.0)) == [
        (0.0, 2.5, "before first"), (2.5, 4.0, "overlap"), (7.0, 8.0, "past the end")]


# --------------------------------------------------------------------------- merge_segments
def test_sentence_sized_segments_stay_as_they_are():
    segs = [S(0, 3, "Hello there."), S(3, 6, "How are you?"), S(6.2, 9, "Fine, thanks!")]
    assert merge_segments(segs) == tuple(segs)


def test_a_sentence_split_over_cues_becomes_one_unit():
    segs = [S(0, 2.5, "We went to the"), S(2.6, 5, "market yesterday."), S(5.1, 8, "It was closed.")]
    assert _spans(merge_segments(segs)) == [(0, 5, "We went to the market yesterday."), (5.1, 8, "It was closed.")]


def test_short_segments_join_the_sentence_they_belong_to():
    segs = [S(0, 4, "First sentence."), S(4.2, 4.6, "Yes."), S(6.0, 6.4, "So"), S(6.5, 9, "we left.")]
    assert _spans(merge_segments(segs)) == [(0, 4.6, "First sentence. Yes."), (6.0, 9, "So we left.")]


def test_merging_never_exceeds_max_and_never_splits():
    words = [S(k, k + 1, f"w{k}") for k in range(7)]  # unpunctuated, like CTC word timestamps
    merged = merge_segments(words, min_seconds=2, max_seconds=3)
    assert _spans(merged) == [(0, 3, "w0 w1 w2"), (3, 6, "w3 w4 w5"), (6, 7, "w6")]
    assert merge_segments([S(0, 40, "a very long monologue")], max_seconds=30) == (S(0, 40, "a very long monologue"),)


def test_pauses_longer_than_the_gap_limit_separate_units():
    segs = [S(0, 1, "a"), S(5, 6, "b"), S(6.5, 7, "c")]
    assert _spans(merge_segments(segs, max_gap_seconds=1.0)) == [(0, 1, "a"), (5, 7, "b c")]
    assert merge_segments(segs, min_seconds=0) == tuple(segs)  # unpunctuated and no minimum: untouched


def test_a_short_last_unit_joins_its_predecessor():
    segs = [S(0, 3, "One sentence."), S(3.1, 3.5, "And")]
    assert _spans(merge_segments(segs)) == [(0, 3.5, "One sentence. And")]


def test_ends_sentence():
    assert ends_sentence('He said "stop."') and ends_sentence("Why?) ") and ends_sentence("好。")
    assert not ends_sentence("and then,") and not ends_sentence("")


def test_merge_rejects_bad_limits():
    with pytest.raises(InputError):
        merge_segments([S(0, 1)], max_seconds=0)
