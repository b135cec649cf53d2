"""Composer handlers: add, reorder, remove, uploads checked for type, decodability and limits."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from components.compose import add_files, add_text, item_row_html, load_gallery_example, move_item, read_samples, remove_item
from components.samples import gallery, read_sample_file, sample_items
from components.session import ComposedItem
from components.settings import EXAMPLES_DIR, InputLimits
from omnitrace_core import InputError
from tests.shared_files import OFFICIAL_EXAMPLES, require

LIMITS = InputLimits()
OFFICIAL = OFFICIAL_EXAMPLES / "examples"


@pytest.fixture
def official_dir() -> Path:
    return require(OFFICIAL)


def _texts(*names):
    return [ComposedItem(kind="text", text=n) for n in names]


def test_add_text_appends_and_marks_instructions():
    items = add_text([], "Question?", True, LIMITS)
    items = add_text(items, "More text.", False, LIMITS)
    assert [(i.kind, i.text, i.is_prompt) for i in items] == [("text", "Question?", True), ("text", "More text.", False)]


@pytest.mark.parametrize("text", ["", "   \n "])
def test_add_text_rejects_empty_text(text):
    with pytest.raises(InputError, match="empty"):
        add_text([], text, False, LIMITS)


def test_add_text_respects_the_item_limit():
    with pytest.raises(InputError, match="at most 2"):
        add_text(_texts("a", "b"), "c", False, InputLimits(max_items=2))


def test_add_files_detects_kinds_and_measures(media):
    items, problems = add_files(_texts("intro"), [str(media["image_a"]), str(media["audio"]), str(media["video"])], LIMITS)
    assert problems == []
    assert [i.kind for i in items] == ["text", "image", "audio", "video"]
    assert (items[1].width, items[1].height) == (112, 84)
    assert items[2].duration == pytest.approx(3.0, abs=0.05)
    assert items[3].duration == pytest.approx(4.0, abs=0.1)


def test_add_files_reports_bad_files_and_keeps_good_ones(tmp_path, media):
    unsupported = tmp_path / "notes.xyz"
    unsupported.write_text("hello")
    corrupt_png = tmp_path / "broken.png"
    corrupt_png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    corrupt_wav = tmp_path / "broken.wav"
    corrupt_wav.write_bytes(b"RIFF....WAVEfmt " + bytes(40))
    corrupt_mp4 = tmp_path / "broken.mp4"
    corrupt_mp4.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(100))
    items, problems = add_files([], [str(unsupported), str(corrupt_png), str(media["image_b"]), str(corrupt_wav),
                                     str(corrupt_mp4)], LIMITS)
    assert [i.name for i in items] == ["b.jpg"]
    assert len(problems) == 4
    assert "unsupported file type '.xyz'" in problems[0]
    for name, problem in zip(["broken.png", "broken.wav", "broken.mp4"], problems[1:]):
        assert name in problem


def test_add_files_enforces_limits_in_the_users_terms(tmp_path, media):
    big = tmp_path / "big.png"
    Image.new("RGB", (5000, 4000)).save(big)
    _, big_image = add_files([], [str(big)], InputLimits(max_image_pixels=16_000_000))
    _, long_audio = add_files([], [str(media["audio"])], InputLimits(max_audio_seconds=1.0))
    _, long_video = add_files([], [str(media["video"])], InputLimits(max_video_seconds=2.0))
    _, big_file = add_files([], [str(media["image_a"])], InputLimits(max_file_mb=0.0001))
    assert big_image == ["'big.png' is 5000x4000 pixels (20.0 megapixels); this explorer accepts images up to "
                         "16.0 megapixels: scale it down first"]
    assert long_audio == ["'tone.wav' is 3.0 s long; this explorer accepts audio up to 1 s: cut it to a shorter "
                          "clip first"]
    assert long_video[0].startswith("'clip.mp4' is 4.0 s long; this explorer accepts video up to 2 s")
    assert big_file[0].startswith("'a.png' is ") and "accepts files up to 0.0001 MB" in big_file[0]
    for problem in big_image + long_audio + long_video + big_file:  # nothing a page user cannot act on
        assert "MediaLimits" not in problem and "raise the limit" not in problem and "load_" not in problem


def test_an_audio_only_video_file_becomes_an_audio_item(tmp_path):
    import av

    from omnitrace_core.media.files import encode_audio
    from tests.media_files import tone

    path = tmp_path / "voice.mp4"
    with av.open(str(path), "w", format="mp4") as out:
        sound = out.add_stream("aac", rate=16000)
        sound.layout = "mono"
        encode_audio(out, sound, tone(440, 2.0), 16000)
    items, problems = add_files([], [str(path)], LIMITS)
    assert problems == []
    assert [(i.kind, i.name) for i in items] == [("audio", "voice.mp4")]
    assert items[0].duration == pytest.approx(2.0, abs=0.1)


def test_move_and_remove():
    items = _texts("a", "b", "c")
    assert [i.text for i in move_item(items, 2, -1)] == ["a", "c", "b"]
    assert [i.text for i in move_item(items, 0, -1)] == ["a", "b", "c"]  # clamped
    assert [i.text for i in move_item(items, 0, 5)] == ["b", "c", "a"]
    assert [i.text for i in move_item(items, 7, 1)] == ["a", "b", "c"]  # unknown index: unchanged
    assert [i.text for i in remove_item(items, 1)] == ["a", "c"]
    assert [i.text for i in items] == ["a", "b", "c"]  # handlers never mutate their input


def test_item_rows_are_escaped():
    row = item_row_html(0, ComposedItem(kind="text", text="<img src=x onerror=alert(1)>"))
    assert "<img" not in row and "&lt;img" in row


def test_gallery_examples_load_with_every_modality():
    examples = gallery()
    assert examples is not None and len(examples.keys) >= 3
    items = load_gallery_example(0, examples, LIMITS)
    assert {i.kind for i in items} == {"text", "image", "audio", "video"}
    assert all(Path(i.path).is_relative_to(EXAMPLES_DIR) for i in items if i.kind != "text")
    with pytest.raises(InputError):
        load_gallery_example(99, examples, LIMITS)


@pytest.mark.usefixtures("official_dir")
def test_official_sample_files_load_unchanged():
    sample_file, choices = read_samples([str(OFFICIAL / "question_visual_text.json")])
    assert [key for _, key in choices] == list(sample_file.keys)
    items = sample_items(sample_file, "262:vqa", LIMITS)
    assert [i.kind for i in items] == ["text", "text", "image", "image"] and items[0].is_prompt
    audio_file = read_sample_file(OFFICIAL / "question_audio.json")
    with pytest.raises(InputError, match="01_M014_01.wav"):  # not published with the examples
        sample_items(audio_file, "0:summarization", LIMITS)


@pytest.mark.usefixtures("official_dir")
def test_sample_media_must_come_from_allowed_folders(tmp_path):
    # the app only reads media uploaded with the JSON file or shipped in assets/
    sample_file = read_sample_file(OFFICIAL / "question_visual_text.json")
    with pytest.raises(InputError, match="262_0.jpg"):
        sample_items(sample_file, "262:vqa", LIMITS, roots=[tmp_path])
    uploaded = [tmp_path / "262_0.jpg", tmp_path / "262_1.jpg"]
    for path in uploaded:
        path.write_bytes((OFFICIAL / "media" / path.name).read_bytes())
    with_media = read_sample_file(OFFICIAL / "question_visual_text.json", uploaded)
    items = sample_items(with_media, "262:vqa", LIMITS, roots=[tmp_path])
    assert [Path(i.path).parent for i in items if i.kind == "image"] == [tmp_path, tmp_path]


def test_bad_sample_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="bad.json"):
        read_samples([str(bad)])
    with pytest.raises(InputError, match="exactly one"):
        read_samples([str(bad), str(bad)])
    empty = tmp_path / "empty.json"
    empty.write_text('[{"id": 1, "question": []}]')
    sample_file = read_sample_file(empty)
    with pytest.raises(InputError, match="question"):
        sample_items(sample_file, "1", LIMITS)
