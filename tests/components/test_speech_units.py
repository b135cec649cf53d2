"""Per audio/video item, the user picks time bins, ASR segments or an uploaded transcript."""

from __future__ import annotations

import pytest

from omnitrace_core import InputError

from components.compose import add_files, set_units, timed_items
from components.session import ComposedItem, Session
from components.settings import InputLimits
from components.trace_panel import run_trace

SRT = """1
00:00:00,000 --> 00:00:01,200
The first tone plays.

2
00:00:01,500 --> 00:00:02,800
Then the second one.
"""


@pytest.fixture
def items(media):
    composed, problems = add_files([ComposedItem(kind="text", text="What do you hear?")],
                                   [str(media["image_a"]), str(media["audio"]), str(media["video"])], InputLimits())
    assert not problems
    return composed


def test_only_audio_and_video_items_are_offered(items):
    assert [k for _, k in timed_items(items)] == [2, 3]
    assert all("time bins" in label for label, _ in timed_items(items))


def test_bins_asr_and_transcript_reach_the_engine_items(items, tmp_path):
    srt = tmp_path / "tone.srt"
    srt.write_text(SRT)
    with_asr = set_units(items, 3, "asr", None)
    assert with_asr[3].to_engine().transcript == "asr" and with_asr[3].units_label() == "speech (ASR)"
    with_srt = set_units(with_asr, 2, "transcript", str(srt))
    assert with_srt[2].to_engine().transcript == str(srt)
    assert "transcript tone.srt" in with_srt[2].summary()
    back = set_units(with_srt, 2, "bins", None)
    assert back[2].to_engine().transcript is None and back[2].units_label() == "time bins"
    assert items[2].transcript == ""  # handlers return new lists, the old one is untouched


@pytest.mark.parametrize("index, mode, content, name, message", [
    (1, "asr", None, None, "choose an audio or video item"),
    (None, "asr", None, None, "choose an audio or video item"),
    (2, "transcript", None, None, "upload a transcript file first"),
    (2, "transcript", SRT, "tone.txt", "must be an .srt, .vtt or .json"),
    (2, "transcript", "1\n00:00:00,000 -> 00:00:01,000\nbroken arrow\n", "bad.srt", "line"),
    (2, "transcript", SRT.replace("00:00:02,800", "00:00:09,000"), "long.srt", "segment 2"),
    (2, "louder", None, None, "unknown source-unit mode"),
])
def test_bad_choices_are_refused_with_a_clear_message(items, tmp_path, index, mode, content, name, message):
    path = None
    if content is not None:
        path = tmp_path / name
        path.write_text(content)
    with pytest.raises(InputError, match=message):
        set_units(items, index, mode, str(path) if path else None)


def test_traced_transcript_segments_are_the_audio_units(tracer, view_context, items, tmp_path):
    srt = tmp_path / "tone.srt"
    srt.write_text(SRT)
    composed = set_units(items[:1] + items[2:3], 1, "transcript", str(srt))  # text + the 3 s audio
    session = Session()
    list(run_trace(tracer, view_context, InputLimits(), session, composed, "attmean", 3, 1.0, 1.0, False))
    result = session.results["attmean"]
    audio = [u for u in result.units if u.modality == "audio"]
    # the 1.2 s first segment is under the 2 s minimum unit, so the next one joins it
    assert [u.text for u in audio] == ["The first tone plays. Then the second one."]
    assert [(u.time_start, u.time_end) for u in audio] == [(0.0, 2.8)]
    assert result.items[1].media["segments_from"] == "transcript:tone.srt"
