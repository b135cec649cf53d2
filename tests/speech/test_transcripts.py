"""Transcript readers: SRT, WebVTT and JSON, valid and malformed."""

from __future__ import annotations

import json

import pytest

from omnitrace_core import InputError
from omnitrace_core.speech import SpeechSegment, load_transcript, parse_json, parse_srt, parse_vtt

SRT = """\ufeff1
00:00:00,500 --> 00:00:02,500
<i>Hello</i> there,
general Kenobi.

2
00:00:04,000 --> 00:00:06,500
{\\an8}Second cue.
"""

VTT = """WEBVTT - a title
Kind: captions

NOTE this is a comment
spanning two lines

STYLE
::cue { color: red }

intro
00:00.500 --> 00:02.500 align:start position:10%
<v Alice>Hello &amp; welcome</v>

00:00:04.000 --> 00:00:06.500
<c.loud>Second</c> <00:00:05.000>cue.
"""


def _seg(start, end, text):
    return SpeechSegment(start, end, text)


def test_srt_cues_with_tags_bom_and_multiline_text():
    assert parse_srt(SRT) == (_seg(0.5, 2.5, "Hello there, general Kenobi."), _seg(4.0, 6.5, "Second cue."))


def test_srt_without_cue_numbers_and_with_dot_milliseconds():
    text = "00:00:01.25 --> 00:00:02.5\nshort fractions\n\n00:01:02,000 --> 01:00:00,000\nlong\n"
    assert parse_srt(text) == (_seg(1.25, 2.5, "short fractions"), _seg(62.0, 3600.0, "long"))


def test_vtt_skips_header_notes_styles_and_strips_tags():
    assert parse_vtt(VTT) == (_seg(0.5, 2.5, "Hello & welcome"), _seg(4.0, 6.5, "Second cue."))


@pytest.mark.parametrize("text, message", [
    ("1\n00:00:01,000 -> 00:00:02,000\nbad arrow\n", "line 1: expected a cue number"),
    ("1\n00:00:01,000 --> 00:00:0x,000\nbad digits\n", "line 2: cannot read the time range"),
    ("1\n00:00:01,000 --> 00:00:02,000\nok\n\n2\n00:00:05,000 --> 00:00:04,000\nreversed\n",
     "line 6: the cue ends (4.000 s) before it starts (5.000 s)"),
    ("hello\nworld\n", "line 1: expected a cue number"),
    ("\n\n", "holds no subtitle cues"),
])
def test_malformed_srt_names_the_line(text, message):
    with pytest.raises(InputError, match=None) as info:
        parse_srt(text, name="talk.srt")
    assert "transcript 'talk.srt'" in str(info.value)
    assert message in str(info.value)


@pytest.mark.parametrize("text, message", [
    ("00:00.000 --> 00:01.000\nno header\n", "line 1: a WebVTT file must start with 'WEBVTT'"),
    ("WEBVTT\n\n00:00.000 --> 00:01.000\nok\n\njust some words\n", "line 6: expected a cue timing line"),
    ("WEBVTT\n\nid\n00:00.000 --> 00:0a.000\nbad\n", "line 4: cannot read the time range"),
    ("WEBVTT\n\nNOTE nothing else\n", "holds no cues"),
])
def test_malformed_vtt_names_the_line(text, message):
    with pytest.raises(InputError) as info:
        parse_vtt(text, name="talk.vtt")
    assert message in str(info.value)


def test_json_list_segments_object_and_pipeline_chunks():
    listed = [{"start": 0.5, "end": 2.5, "text": " Hello  there "}, {"start": 4, "end": 6.5}]
    expected = (_seg(0.5, 2.5, "Hello there"), _seg(4.0, 6.5, ""))
    assert parse_json(json.dumps(listed)) == expected
    assert parse_json(json.dumps({"language": "en", "segments": listed})) == expected
    chunks = {"text": "...", "chunks": [{"timestamp": [0.5, 2.5], "text": "Hello there"}, {"timestamp": [4, 6.5]}]}
    assert parse_json(json.dumps(chunks)) == expected


@pytest.mark.parametrize("text, message", [
    ('[{"start": 0, "end": 1, "text": "a"},\n {"start": 1, "end": 2, "text": "b"', "line 2, column"),
    ('{"start": 0, "end": 1}', "JSON must be a list of segments"),
    ("[]", "JSON list is empty"),
    ('[{"start": 0, "end": 1}, "text"]', "entry 2 is str, not an object"),
    ('[{"start": 0, "text": "a"}]', "entry 1 lacks 'end'"),
    ('[{"start": "0:01", "end": 2}]', "entry 1: 'start' must be a number of seconds"),
    ('[{"start": 0, "end": 2, "text": 5}]', "entry 1: 'text' must be a string"),
])
def test_malformed_json_is_explained(text, message):
    with pytest.raises(InputError) as info:
        parse_json(text, name="talk.json")
    assert message in str(info.value)


def test_load_transcript_dispatches_on_extension_then_content(tmp_path):
    (tmp_path / "a.srt").write_text(SRT, encoding="utf-8")
    (tmp_path / "a.vtt").write_text(VTT, encoding="utf-8")
    (tmp_path / "a.json").write_text('[{"start": 1, "end": 2, "text": "x"}]', encoding="utf-8")
    (tmp_path / "a.txt").write_text(VTT, encoding="utf-8")  # unknown extension: sniffed
    assert load_transcript(tmp_path / "a.srt")[1].text == "Second cue."
    assert load_transcript(str(tmp_path / "a.vtt"))[0].text == "Hello & welcome"
    assert load_transcript(tmp_path / "a.json") == (_seg(1, 2, "x"),)
    assert load_transcript(tmp_path / "a.txt") == load_transcript(tmp_path / "a.vtt")
    assert load_transcript(SRT) == parse_srt(SRT)  # text, not a path
    assert load_transcript([(1, 2, "x"), {"start": 3, "end": 4}]) == (_seg(1, 2, "x"), _seg(3, 4, ""))


def test_load_transcript_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_transcript(tmp_path / "missing.srt")
    (tmp_path / "bin.srt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(InputError, match="not UTF-8"):
        load_transcript(tmp_path / "bin.srt")
    with pytest.raises(InputError, match="inline transcript"):
        load_transcript([{"start": 0}])
    with pytest.raises(InputError, match="cannot read a transcript from a int"):
        load_transcript(5)
