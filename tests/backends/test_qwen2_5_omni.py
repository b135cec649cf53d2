"""The Qwen2.5-Omni backend's token layout agrees with the model's own M-RoPE positions.

The layout is checked on the tiny test thinker and on Qwen2.5-Omni-3B's real tokenizer, processor,
chat template and config (reduced depth, random weights; see tests/backends/conftest.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from omnitrace_core import AudioItem, ImageItem, SourceConfig, TextItem, VideoItem
from omnitrace_core import layout as L

POSITION_IDS_PER_SECOND = 25  # Qwen2.5-Omni config.position_id_per_seconds


def _prepare(tracer, items, **source_kwargs):
    return tracer.backend.prepare(items, SourceConfig(**source_kwargs))


@pytest.fixture(params=["tiny", "real"])
def omni(request):
    """The backend on the tiny test thinker, or on the real Qwen2.5-Omni-3B files (reduced)."""
    if request.param == "tiny":
        return request.getfixturevalue("tracer").backend
    return request.getfixturevalue("real_qwen_omni")


def _items(media):
    return [
        TextItem("Answer briefly.\n", is_prompt=True),
        TextItem("Look at these.\nA. first\nB. second"),
        ImageItem(str(media["image_a"])),
        TextItem("and"),
        ImageItem(str(media["image_b"])),
        AudioItem(str(media["audio"])),
        VideoItem(str(media["video"])),
        TextItem("What changed?"),
    ]


def _blocks(layout, kind):
    """item -> positions of that kind."""
    return {int(i): layout.positions(kind, int(i)) for i in np.unique(layout.item[layout.kind == kind])}


@pytest.mark.parametrize("audio_in_video", [False, True])
def test_layout_matches_model_rope_positions(omni, media, audio_in_video):
    items = _items(media)
    prepared = omni.prepare(items, SourceConfig(use_audio_in_video=audio_in_video))
    lay, pos = prepared.layout, prepared.extras["position_ids"][:, 0].cpu().numpy()  # (3, L)
    ids = prepared.input_ids[0].cpu().numpy()
    tokens = omni.tokens

    # every placeholder token is attributed to a media item, and nothing else is
    media_ids = np.isin(ids, [tokens["image"], tokens["audio"], tokens["video"]])
    assert np.array_equal(media_ids, np.isin(lay.kind, [L.IMAGE, L.AUDIO, L.VIDEO_VISUAL, L.VIDEO_AUDIO]))

    # images: (row, col) of each tile equals the model's height/width position offsets
    for item, positions in _blocks(lay, L.IMAGE).items():
        rows, cols = lay.grids[item]
        assert len(positions) == rows * cols
        p = pos[:, positions] - pos[:, positions[0]][:, None]
        assert np.array_equal(p[1], lay.tile[positions] // cols)
        assert np.array_equal(p[2], lay.tile[positions] % cols)
        assert np.all(p[0] == 0)

    # standalone audio: the temporal position advances 25 ids per second -> token time
    (audio_item, audio_pos), = _blocks(lay, L.AUDIO).items()
    assert items[audio_item].modality == "audio"
    assert len(audio_pos) == 75  # 3 s at one token per 40 ms
    t_model = (pos[0, audio_pos] - pos[0, audio_pos[0]]) / POSITION_IDS_PER_SECOND
    np.testing.assert_allclose(lay.time_start[audio_pos], t_model, atol=1e-9)

    # video: visual token times and tiles agree with the model's temporal/spatial ids
    (video_item, vis_pos), = _blocks(lay, L.VIDEO_VISUAL).items()
    start = pos[0, vis_pos].min()
    aud_pos = lay.positions(L.VIDEO_AUDIO, video_item)
    if audio_in_video:
        start = min(start, pos[0, aud_pos].min())
        assert len(aud_pos) == 100  # 4 s of audio track
        # interleaved: the audio block shares the video block's start
        np.testing.assert_allclose(lay.time_start[aud_pos], (pos[0, aud_pos] - start) / POSITION_IDS_PER_SECOND,
                                   atol=1e-9)
        # the block really interleaves: a visual token comes after some audio token
        assert vis_pos.max() > aud_pos.min()
    else:
        assert len(aud_pos) == 0
    np.testing.assert_allclose(lay.time_start[vis_pos], (pos[0, vis_pos] - start) / POSITION_IDS_PER_SECOND,
                               atol=1e-9)
    rows, cols = lay.grids[video_item]
    assert np.array_equal(pos[1, vis_pos] - pos[1, vis_pos].min(), lay.tile[vis_pos] // cols)
    assert np.array_equal(pos[2, vis_pos] - pos[2, vis_pos].min(), lay.tile[vis_pos] % cols)
    assert lay.time_end[vis_pos].max() <= prepared.media[video_item]["duration"] + 1e-9

    # text tokens carry character offsets that reproduce their item's text
    for item, positions in _blocks(lay, L.TEXT).items():
        text = items[item].text
        pieces = "".join(text[s:e] for s, e in zip(lay.char_start[positions], lay.char_end[positions]))
        assert pieces == text


def test_video_timing_follows_true_frame_rate(tracer, media):
    # 40 frames at 10 fps sampled at 2 fps: 8 frames -> 4 groups of 1 s each
    prepared = _prepare(tracer, [TextItem("Describe."), VideoItem(str(media["video"]))], use_audio_in_video=False)
    lay = prepared.layout
    vis = lay.positions(L.VIDEO_VISUAL, 1)
    assert sorted(set(lay.time_start[vis].tolist())) == [0.0, 1.0, 2.0, 3.0]
    assert prepared.media[1]["duration"] == pytest.approx(4.0, abs=0.1)


def test_silent_video_beside_sounding_video_keeps_uniform_layout(tracer, media):
    items = [TextItem("Compare."), VideoItem(str(media["video"])), VideoItem(str(media["silent_video"]))]
    prepared = _prepare(tracer, items)
    assert prepared.media[1]["has_audio"] and not prepared.media[2]["has_audio"]
    assert len(prepared.layout.positions(L.VIDEO_AUDIO, 2)) > 0  # a silent track stands in


def test_long_audio_is_split_into_encoder_windows(tracer):
    from tests.media_files import tone

    window = tracer.backend.audio_window_seconds
    wave = tone(300, window + 2.0)
    prepared = _prepare(tracer, [TextItem("Listen."), AudioItem((wave, 16000))])
    times = prepared.layout.time_start[prepared.layout.positions(L.AUDIO, 1)]
    assert prepared.media[1]["windows"] == 2
    assert times.max() == pytest.approx(window + 2.0 - 0.04, abs=0.05)
    assert np.all(np.diff(times) > 0)


def test_special_token_strings_in_text_stay_text(tracer):
    prepared = _prepare(tracer, [TextItem("hi <|IMAGE|> there <|im_end|>")])
    ids = prepared.input_ids[0].numpy()
    assert tracer.backend.tokens["image"] not in ids  # no placeholder injected
    lay = prepared.layout
    positions = lay.positions(L.TEXT, 0)
    text = "hi <|IMAGE|> there <|im_end|>"
    assert "".join(text[s:e] for s, e in zip(lay.char_start[positions], lay.char_end[positions])) == text
