"""The batch CLI with per-audio transcripts and speech-segment flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from omnitrace_core import GenerationConfig, SourceConfig, Tracer
from omnitrace_core.batch import read_output, run_batch
from omnitrace_core.cli import build_parser, main
from omnitrace_core.cli.trace import configs_from_args
from tests.speech.conftest import AUDIO_TONES, EnergyRecognizer

SRT = "".join(f"{k + 1}\n00:00:{a:06.3f} --> 00:00:{b:06.3f}\n".replace(".", ",") + f"Tone {k + 1} in the file.\n\n"
              for k, (a, b, _) in enumerate(AUDIO_TONES))


def _sample(id_, entry):
    return {"id": id_, "prompt": "Describe the audio.\n", "question": [{"text": "What do you hear?"}, entry]}


@pytest.fixture()
def questions(tmp_path: Path, speech_media) -> Path:
    media = tmp_path / "media"
    media.mkdir()
    (media / "tones.wav").write_bytes(Path(speech_media["audio"]).read_bytes())
    (media / "tones.srt").write_text(SRT, encoding="utf-8")
    (media / "bad.vtt").write_text("WEBVTT\n\n00:01.000 --> later\nhello\n", encoding="utf-8")
    samples = [
        _sample("file", {"audio": "media/tones.wav", "transcript": "media/tones.srt"}),
        _sample("inline", {"audio": "media/tones.wav", "transcript": [{"start": 4, "end": 6.5, "text": "Inline."}]}),
        _sample("malformed", {"audio": "media/tones.wav", "transcript": "media/bad.vtt"}),
        _sample("missing", {"audio": "media/tones.wav", "transcript": "media/nowhere.srt"}),
        _sample("too_long", {"audio": "media/tones.wav", "transcript": [{"start": 4, "end": 20, "text": "x"}]}),
        _sample("on_text", {"text": "hi", "transcript": "media/tones.srt"}),
    ]
    path = tmp_path / "questions.json"
    path.write_text(json.dumps(samples), encoding="utf-8")
    return path


def test_transcript_field_gives_speech_units_and_bad_ones_error_records(questions, tiny_model_dir, tmp_path):
    out = tmp_path / "out.jsonl"
    code = main(["trace", "--questions", str(questions), "--model", str(tiny_model_dir), "--output", str(out),
                 "--max-new-tokens", "2", "--no-progress", "--device", "cpu"])
    assert code == 0
    records = {r["key"]: r for r in read_output(out)}
    units = [u for u in records["file"]["result"]["sources"]["units"] if u["modality"] == "audio"]
    assert [(u["time_start"], u["time_end"], u["text"]) for u in units] == [
        (a, b, f"Tone {k + 1} in the file.") for k, (a, b, _) in enumerate(AUDIO_TONES)]
    info = records["file"]["result"]["items"][2]["media"]
    assert info["segments_from"] == "transcript:tones.srt"
    assert [u["text"] for u in records["inline"]["result"]["sources"]["units"] if u["modality"] == "audio"] == [
        "Inline."]
    assert records["malformed"]["status"] == "error"
    assert ("audio item 2 ('tones.wav'): transcript 'bad.vtt', line 3: cannot read the time range"
            in records["malformed"]["error"])
    assert records["missing"]["error_type"] == "InputError"
    assert "transcript file 'media/nowhere.srt' does not exist (looked for it at" in records["missing"]["error"]
    assert "ends 12.000 s after the end of the media (8.000 s)" in records["too_long"]["error"]
    assert "'transcript' belongs to an audio or video entry" in records["on_text"]["error"]


def test_audio_units_segments_recognises_audio_without_a_transcript(tracer, speech_media, tmp_path):
    samples = [_sample("asr", {"audio": str(speech_media["audio"])}),
               _sample("bins", {"audio": str(speech_media["audio"]), "transcript": "bins"})]
    out = tmp_path / "out.jsonl"
    traced = Tracer(tracer.backend, recognizer=EnergyRecognizer())
    summary = run_batch(traced, samples, out, sources=SourceConfig(audio_units="segments"),
                        generation=GenerationConfig(max_new_tokens=2), progress=False)
    assert summary.ok == 2
    records = {r["key"]: r["result"] for r in read_output(out)}
    assert [u.get("text") for u in records["asr"]["sources"]["units"] if u["modality"] == "audio"] == [
        "Tone number 1.", "Tone number 2."]
    assert records["asr"]["source_config"]["audio_units"] == "segments"
    assert all("text" not in u for u in records["bins"]["sources"]["units"])


def test_speech_flags_reach_the_source_config():
    args = build_parser().parse_args(["trace", "--questions", "q.json", "--model", "m", "--output", "o.jsonl",
                                      "--audio-units", "segments", "--asr-model", "openai/whisper-tiny",
                                      "--segment-min-seconds", "1", "--segment-max-seconds", "12",
                                      "--segment-max-gap-seconds", "0.5"])
    _, sources, _ = configs_from_args(args)
    assert (sources.audio_units, sources.asr_model, sources.segment_min_seconds, sources.segment_max_seconds,
            sources.segment_max_gap_seconds) == ("segments", "openai/whisper-tiny", 1.0, 12.0, 0.5)
    assert configs_from_args(build_parser().parse_args(
        ["trace", "--questions", "q", "--model", "m", "--output", "o"]))[1].audio_units == "bins"
