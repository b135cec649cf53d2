"""Tests for omnitrace_core.media on real media files written with Pillow, soundfile and PyAV."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from omnitrace_core.errors import ConfigError, MediaError
from omnitrace_core.media import (
    AudioClip,
    MediaLimits,
    VideoClip,
    load_audio,
    load_image,
    load_video,
    probe_duration,
)
from tests.media_files import encode_audio
from tests.shared_files import OFFICIAL_EXAMPLES, require

EXAMPLES = OFFICIAL_EXAMPLES / "examples" / "media"


@pytest.fixture
def needs_examples_dir() -> Path:
    return require(EXAMPLES)


needs_examples = pytest.mark.usefixtures("needs_examples_dir")

W, H = 64, 48
VIDEO_RATE = Fraction(25, 2)  # 12.5 fps, an odd rate on purpose
N_FRAMES = 40  # 3.2 s


# ------------------------------------------------------------------- helpers


def _has_encoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except Exception:  # noqa: BLE001 - any failure means "not available here"
        return False
    return True


VIDEO_CODEC = "libx264" if _has_encoder("libx264") else "mpeg4"


def _colour(i: int) -> tuple[int, int, int]:
    """A distinct flat colour per frame index (base-4 digits on levels 85 apart)."""
    return ((i // 16) % 4 * 85, (i // 4) % 4 * 85, i % 4 * 85)


def _index_of(rgb: np.ndarray) -> int:
    """Invert :func:`_colour` from the centre pixel of a decoded frame."""
    r, g, b = (int(round(float(v) / 85.0)) for v in rgb[H // 2, W // 2])
    return r * 16 + g * 4 + b


def _tone(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _write_video(path: Path, codec: str = VIDEO_CODEC, rate=VIDEO_RATE, n: int = N_FRAMES,
                 audio: bool = True, audio_rate: int = 44100, options: dict | None = None) -> Path:
    """Write ``n`` frames at ``rate`` fps, frame i filled with ``_colour(i)``; optional AAC tone."""
    with av.open(str(path), "w", options=options or {}) as out:
        vs = out.add_stream(codec, rate=rate)
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        astream = None
        if audio:
            astream = out.add_stream("aac", rate=audio_rate)
            astream.layout = "stereo"
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.full((H, W, 3), _colour(i), np.uint8), format="rgb24")
            frame.pts = i
            frame.time_base = 1 / Fraction(rate)
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        if astream is not None:
            encode_audio(out, astream, _tone(1000, n / float(rate), audio_rate), audio_rate)
    return path


def _write_audio_only_mp4(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=44100)
        stream.layout = "mono"
        encode_audio(out, stream, _tone(440, 1.0, 44100), 44100)
    return path


def _peak_hz(clip: AudioClip) -> float:
    spectrum = np.abs(np.fft.rfft(clip.waveform))
    return float(np.argmax(spectrum)) * clip.sampling_rate / clip.waveform.shape[0]


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def video_av(media_dir) -> Path:
    return _write_video(media_dir / "tone_12p5fps.mp4")


@pytest.fixture(scope="module")
def video_silent(media_dir) -> Path:
    return _write_video(media_dir / "silent_10fps.mp4", codec="mpeg4", rate=10, n=25, audio=False)


# -------------------------------------------------------------------- images


def test_load_image_png_rgba_is_rgb_on_white_and_loaded(tmp_path):
    arr = np.zeros((10, 20, 4), np.uint8)
    arr[:, :10] = (255, 0, 0, 255)  # opaque red left half, transparent right half
    Image.fromarray(arr, "RGBA").save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    assert img.mode == "RGB" and img.size == (20, 10)
    px = np.asarray(img)
    assert px.shape == (10, 20, 3) and px.dtype == np.uint8
    assert tuple(px[0, 0]) == (255, 0, 0)
    assert tuple(px[0, 15]) == (255, 255, 255)
    assert getattr(img, "fp", None) is None  # fully decoded, file not held open


def test_load_image_jpeg_grayscale_and_pil_input(tmp_path):
    Image.new("L", (32, 16), 128).save(tmp_path / "g.jpg", quality=95)
    img = load_image(str(tmp_path / "g.jpg"))
    assert img.mode == "RGB" and img.size == (32, 16)
    assert abs(int(np.asarray(img)[8, 16, 0]) - 128) <= 2
    same = load_image(Image.new("P", (5, 4)))
    assert same.mode == "RGB" and same.size == (5, 4)


def _blocks(mode: str, values: list, **info) -> Image.Image:
    """An 8 x 24 image of ``mode`` made of three flat 8 x 8 blocks, one per value (a pixel of that mode)."""
    img = Image.new(mode, (24, 8))
    for k, value in enumerate(values):  # pasting a colour into I;16 swaps its bytes: paste a block instead
        img.paste(Image.new(mode, (8, 8), value), (8 * k, 0))
    img.info.update(info)
    return img


def _palette(mode: str, transparency=None) -> Image.Image:
    """Palette indices 0, 1, 2 -> red, green, blue; index 1 is transparent when ``transparency`` says so."""
    img = _blocks(mode, [0, 1, 2] if mode == "P" else [(0, 255), (1, 255), (2, 0)])
    img.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    if transparency is not None:
        img.info["transparency"] = transparency
    return img


def _on_white(gray: float, alpha: float) -> int:
    return round(gray * alpha / 255 + 255 * (1 - alpha / 255))


WHITE, BLACK = (255, 255, 255), (0, 0, 0)
# (case, image in that mode, file format that keeps the mode (None: passed in memory), expected RGB per block,
#  tolerance). Expected values are worked out by hand from each mode's definition.
PIL_MODES = [
    ("I;16 png", lambda: _blocks("I;16", [0, 128 * 257, 65535]), "png", [BLACK, (128,) * 3, WHITE], 0),
    ("I;16 png, colour key", lambda: _blocks("I;16", [0, 300, 200 * 257], transparency=300), "png",
     [BLACK, WHITE, (200,) * 3], 0),
    ("I;16B tiff", lambda: _blocks("I;16B", [0, 4000, 65535]), "tiff", [BLACK, (16,) * 3, WHITE], 0),
    ("I tiff, 16-bit values", lambda: _blocks("I", [0, 1000, 65535]), "tiff", [BLACK, (4,) * 3, WHITE], 0),
    ("I tiff, 8-bit values", lambda: _blocks("I", [0, 100, 255]), "tiff", [BLACK, (100,) * 3, WHITE], 0),
    ("I tiff, signed values", lambda: _blocks("I", [-100, 0, 100]), "tiff", [BLACK, (127,) * 3, WHITE], 1),
    ("F tiff, intensities", lambda: _blocks("F", [0.0, 0.25, 1.0]), "tiff", [BLACK, (64,) * 3, WHITE], 0),
    ("F tiff, 8-bit values", lambda: _blocks("F", [0.0, 100.0, 255.0]), "tiff", [BLACK, (100,) * 3, WHITE], 0),
    ("LA png", lambda: _blocks("LA", [(0, 0), (0, 255), (100, 128)]), "png",
     [WHITE, BLACK, (_on_white(100, 128),) * 3], 0),
    ("La (premultiplied)", lambda: _blocks("La", [(0, 0), (0, 255), (50, 128)]), None,
     [WHITE, BLACK, (_on_white(50 * 255 / 128, 128),) * 3], 1),
    ("P png, transparent index", lambda: _palette("P", transparency=1), "png", [(255, 0, 0), WHITE, (0, 0, 255)], 0),
    ("P gif, transparent index", lambda: _palette("P", transparency=1), "gif", [(255, 0, 0), WHITE, (0, 0, 255)], 0),
    ("P png, opaque", lambda: _palette("P"), "png", [(255, 0, 0), (0, 255, 0), (0, 0, 255)], 0),
    ("PA tiff", lambda: _palette("PA"), "tiff", [(255, 0, 0), (0, 255, 0), WHITE], 0),
    ("1 png", lambda: _blocks("1", [0, 1, 0]), "png", [BLACK, WHITE, BLACK], 0),
    ("L png, colour key", lambda: _blocks("L", [10, 20, 30], transparency=20), "png",
     [(10,) * 3, WHITE, (30,) * 3], 0),
    ("RGB png, colour key", lambda: _blocks("RGB", [(1, 2, 3), (9, 9, 9), (4, 5, 6)], transparency=(9, 9, 9)), "png",
     [(1, 2, 3), WHITE, (4, 5, 6)], 0),
    ("CMYK tiff", lambda: _blocks("CMYK", [(0, 0, 0, 0), (255, 0, 0, 0), (0, 0, 0, 255)]), "tiff",
     [WHITE, (0, 255, 255), BLACK], 0),
    ("CMYK jpeg", lambda: _blocks("CMYK", [(0, 0, 0, 0), (255, 0, 0, 0), (0, 0, 0, 255)]), "jpg",
     [WHITE, (0, 255, 255), BLACK], 8),
    ("LAB tiff", lambda: _blocks("LAB", [(0, 128, 128), (128, 128, 128), (255, 128, 128)]), "tiff",
     [BLACK, (119,) * 3, WHITE], 1),  # L* 50 is sRGB 119
    ("YCbCr", lambda: _blocks("YCbCr", [(0, 128, 128), (76, 85, 255), (255, 128, 128)]), None,
     [BLACK, (254, 0, 0), WHITE], 2),  # Y 76, Cr 255: red (JFIF)
    ("HSV", lambda: _blocks("HSV", [(0, 255, 255), (85, 255, 255), (0, 0, 128)]), None,
     [(255, 0, 0), (0, 255, 0), (128,) * 3], 1),
    ("RGBX", lambda: _blocks("RGBX", [(1, 2, 3, 0), (4, 5, 6, 0), (7, 8, 9, 255)]), None,
     [(1, 2, 3), (4, 5, 6), (7, 8, 9)], 0),
    ("RGBa (premultiplied)", lambda: _blocks("RGBa", [(0, 0, 0, 0), (0, 0, 0, 255), (50, 50, 50, 128)]), None,
     [WHITE, BLACK, (_on_white(50 * 255 / 128, 128),) * 3], 1),
]


@pytest.mark.parametrize("case, make, fmt, expected, tolerance", PIL_MODES, ids=[c[0] for c in PIL_MODES])
def test_every_pillow_mode_converts_to_its_true_rgb(tmp_path, case, make, fmt, expected, tolerance):
    img = make()
    mode = img.mode
    if fmt is None:
        source = img
    else:
        source = tmp_path / f"image.{fmt}"
        img.save(source, **({"transparency": img.info["transparency"]} if "transparency" in img.info else {}))
        with Image.open(source) as reopened:  # the file really holds that mode
            assert reopened.mode == mode
    out = load_image(source)
    assert out.mode == "RGB" and out.size == (24, 8)
    pixels = np.asarray(out).astype(int)
    for k, colour in enumerate(expected):
        assert np.abs(pixels[4, 8 * k + 4] - np.array(colour)).max() <= tolerance, (case, k, pixels[4, 8 * k + 4])


def test_images_of_nan_pixels_are_refused(tmp_path):
    path = tmp_path / "nan.tiff"
    _blocks("F", [0.0, float("nan"), 1.0]).save(path)
    with pytest.raises(MediaError, match=r"nan\.tiff.*NaN or infinite"):
        load_image(path)


def test_image_errors(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" * 10)
    with pytest.raises(MediaError, match=r"broken\.jpg.*could not be decoded.*PNG, JPEG") as info:
        load_image(bad)
    assert info.value.__cause__ is not None

    with pytest.raises(MediaError, match=r"nope\.png.*does not exist"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(MediaError, match="not a regular file"):
        load_image(tmp_path)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(MediaError, match=r"empty\.png.*empty \(0 bytes\)"):
        load_image(tmp_path / "empty.png")

    Image.new("RGB", (100, 100)).save(tmp_path / "big.png")
    with pytest.raises(MediaError, match=r"big\.png.*10000 pixels.*over the limit of 9999 pixels.*--max-image-pixels"):
        load_image(tmp_path / "big.png", MediaLimits(max_image_pixels=9999))
    with pytest.raises(MediaError, match=r"big\.png.*bytes, over the limit of 10 bytes.*--max-file-mb"):
        load_image(tmp_path / "big.png", MediaLimits(max_file_bytes=10))
    with pytest.raises(MediaError, match="--max-image-pixels"):
        load_image(Image.new("RGB", (100, 100)), MediaLimits(max_image_pixels=10))
    assert load_image(tmp_path / "big.png", MediaLimits(None, None, None, None)).size == (100, 100)


def test_limit_messages_speak_in_the_users_terms(tmp_path, video_av):
    """What was wrong, what is accepted and the setting to change, as a CLI or app user sees it."""
    Image.new("RGB", (100, 100)).save(tmp_path / "big.png")
    sf.write(tmp_path / "long.wav", np.zeros(32000, np.float32), 16000)
    big_file = MediaLimits(max_file_bytes=3 * 2**20)
    (tmp_path / "huge.wav").write_bytes(b"\0" * (4 * 2**20))
    failures = [
        (lambda: load_image(tmp_path / "big.png", MediaLimits(max_image_pixels=9999)), "--max-image-pixels"),
        (lambda: load_audio(tmp_path / "huge.wav", limits=big_file),
         "is 4.0 MB, over the limit of 3.0 MB (the maximum file size setting, --max-file-mb)"),
        (lambda: load_audio(tmp_path / "long.wav", limits=MediaLimits(max_audio_seconds=1.0)), "--max-audio-seconds"),
        (lambda: load_video(video_av, limits=MediaLimits(max_video_seconds=1.0)), "--max-video-seconds"),
        (lambda: load_video(_write_audio_only_mp4(tmp_path / "talk.mp4")), "goes in as audio, not video"),
    ]
    for fail, expected in failures:
        with pytest.raises(MediaError) as info:
            fail()
        message = str(info.value)
        assert expected in message
        for internal in ("MediaLimits", "load_audio", "max_file_bytes", "_seconds)", "PIL."):
            assert internal not in message, message


def test_media_limits_validated():
    with pytest.raises(ConfigError):
        MediaLimits(max_file_bytes=0)
    with pytest.raises(ConfigError):
        MediaLimits(max_audio_seconds=float("nan"))


# --------------------------------------------------------------------- audio


def test_load_audio_wav_identity_rate(tmp_path):
    wave = _tone(440, 1.0, 16000)
    sf.write(tmp_path / "t.wav", wave, 16000, subtype="FLOAT")
    clip = load_audio(tmp_path / "t.wav")
    assert clip.waveform.dtype == np.float32 and clip.waveform.shape == (16000,)
    assert clip.sampling_rate == 16000 and clip.duration == pytest.approx(1.0)
    np.testing.assert_allclose(clip.waveform, wave, atol=1e-6)


def test_load_audio_resamples_and_keeps_frequency(tmp_path):
    sf.write(tmp_path / "k.wav", _tone(1000, 2.0, 44100), 44100)
    clip = load_audio(tmp_path / "k.wav", sampling_rate=16000)
    assert clip.sampling_rate == 16000
    assert clip.duration == pytest.approx(2.0, abs=1e-3)
    assert _peak_hz(clip) == pytest.approx(1000, abs=2)
    assert np.abs(clip.waveform).max() == pytest.approx(0.5, abs=0.02)
    assert np.abs(clip.waveform).max() <= 1.0


def test_load_audio_stereo_int16_is_mean_scaled(tmp_path):
    n = 8000
    stereo = np.stack([np.full(n, 16384, np.int16), np.full(n, -8192, np.int16)], axis=1)
    sf.write(tmp_path / "s.wav", stereo, 8000, subtype="PCM_16")
    clip = load_audio(tmp_path / "s.wav", sampling_rate=8000)
    assert clip.waveform.shape == (n,)
    # mean of 0.5 and -0.25 (a true mean, not FFmpeg's 1/sqrt(2) downmix)
    np.testing.assert_allclose(clip.waveform, 0.125, atol=1e-4)


def test_load_audio_numpy_inputs():
    n = 4410
    int16 = (np.full(n, 16384, np.int16), 44100)
    clip = load_audio(int16, sampling_rate=44100)
    np.testing.assert_allclose(clip.waveform, 0.5, atol=1e-6)
    int32 = (np.full(n, 2**30, np.int32), 44100)
    np.testing.assert_allclose(load_audio(int32, sampling_rate=44100).waveform, 0.5, atol=1e-6)

    tone = _tone(1000, 1.0, 44100)
    for arr in (tone, np.stack([tone, tone]), np.stack([tone, tone], axis=1)):  # (N,), (C,N), (N,C)
        clip = load_audio((arr, 44100), sampling_rate=16000)
        assert clip.waveform.shape[0] == pytest.approx(16000, abs=2)
        assert _peak_hz(clip) == pytest.approx(1000, abs=2)

    same = load_audio(AudioClip(tone, 44100), sampling_rate=16000)
    assert same.sampling_rate == 16000 and same.duration == pytest.approx(1.0, abs=1e-3)
    loud = load_audio((np.full(100, 3.0, np.float64), 100), sampling_rate=100)
    assert loud.waveform.dtype == np.float32 and loud.waveform.max() == 1.0


def test_load_audio_compressed_formats(tmp_path):
    formats = [("mp3", "libmp3lame", 44100), ("ogg", "libopus", 48000), ("flac", "flac", 44100)]
    tried = 0
    for ext, codec, rate in formats:
        if not _has_encoder(codec):
            continue
        path = tmp_path / f"tone.{ext}"
        with av.open(str(path), "w") as out:
            stream = out.add_stream(codec, rate=rate)
            stream.layout = "mono"
            encode_audio(out, stream, _tone(1000, 1.5, rate), rate)
        clip = load_audio(path)
        assert clip.duration == pytest.approx(1.5, abs=0.05), ext
        assert _peak_hz(clip) == pytest.approx(1000, abs=3), ext
        assert probe_duration(path) == pytest.approx(1.5, abs=0.05), ext
        tried += 1
    assert tried >= 1


def test_load_audio_track_of_mp4(video_av):
    clip = load_audio(video_av)
    assert clip.duration == pytest.approx(3.2, abs=1 / 12.5)
    assert _peak_hz(clip) == pytest.approx(1000, abs=2)


def test_audio_errors(tmp_path, video_silent):
    sf.write(tmp_path / "zero.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(MediaError, match=r"zero\.wav.*zero samples"):
        load_audio(tmp_path / "zero.wav")

    (tmp_path / "junk.wav").write_bytes(b"RIFF\x00\x00junk" + bytes(range(256)) * 4)
    with pytest.raises(MediaError, match=r"junk\.wav.*(could not be|zero samples).*WAV, FLAC") as info:
        load_audio(tmp_path / "junk.wav")
    assert not isinstance(info.value.__cause__, MediaError)

    with pytest.raises(MediaError, match=r"silent_10fps\.mp4.*no audio stream"):
        load_audio(video_silent)
    with pytest.raises(MediaError, match=r"gone\.wav.*does not exist"):
        load_audio(tmp_path / "gone.wav")

    sf.write(tmp_path / "long.wav", _tone(440, 2.0, 8000), 8000)
    with pytest.raises(MediaError, match=r"long\.wav.*2\.00 s long, over the limit of 1 s.*maximum audio length.*--max-audio-seconds"):
        load_audio(tmp_path / "long.wav", limits=MediaLimits(max_audio_seconds=1.0))
    with pytest.raises(MediaError, match="--max-audio-seconds"):
        load_audio((np.zeros(800, np.float32), 8000), limits=MediaLimits(max_audio_seconds=0.05))
    with pytest.raises(MediaError, match="zero samples"):
        load_audio((np.zeros(0, np.float32), 8000))

    for bad_rate in (-16000, 0, 16000.5, "16k", True):
        with pytest.raises(MediaError, match="positive integer"):
            load_audio(tmp_path / "long.wav", sampling_rate=bad_rate)
    with pytest.raises(MediaError, match="positive integer"):
        load_audio((np.zeros(10, np.float32), -5))
    assert load_audio(tmp_path / "long.wav", sampling_rate=8000.0).sampling_rate == 8000


# --------------------------------------------------------------------- video


def _assert_true_timing(clip: VideoClip, rate: float) -> None:
    """Sample k must show the source frame on screen at time k / clip.fps."""
    for k, frame in enumerate(clip.frames):
        expected = min(N_FRAMES - 1, math.floor(k / clip.fps * rate + 1e-6))
        assert _index_of(frame) == expected, (k, k / clip.fps)


def test_load_video_with_audio_true_timing(video_av):
    clip = load_video(video_av, fps=2.0)
    assert isinstance(clip, VideoClip)
    assert clip.frames.dtype == np.uint8 and clip.frames.shape == (7, H, W, 3)  # t = 0, 0.5, ... 3.0
    assert clip.fps == 2.0
    assert clip.source_fps == pytest.approx(12.5)
    assert clip.duration == pytest.approx(3.2, abs=1e-6)
    _assert_true_timing(clip, 12.5)
    assert [_index_of(f) for f in clip.frames] == [0, 6, 12, 18, 25, 31, 37]
    assert clip.audio is not None and clip.audio.sampling_rate == 16000
    assert clip.audio.waveform.dtype == np.float32 and clip.audio.waveform.ndim == 1
    assert clip.audio.duration == pytest.approx(clip.duration, abs=1 / 12.5)
    assert _peak_hz(clip.audio) == pytest.approx(1000, abs=2)
    np.testing.assert_allclose(clip.timestamps, np.arange(7) / 2.0)


def test_load_video_fps_above_source_and_no_audio(video_av, video_silent):
    clip = load_video(video_av, fps=25.0, with_audio=False)
    assert clip.audio is None and clip.frames.shape[0] == 80
    _assert_true_timing(clip, 12.5)

    silent = load_video(video_silent, fps=3.0, sampling_rate=8000)
    assert silent.audio is None
    assert silent.source_fps == pytest.approx(10.0) and silent.duration == pytest.approx(2.5)
    assert silent.frames.shape == (8, H, W, 3)  # t = 0 .. 2.333
    for k, frame in enumerate(silent.frames):
        assert _index_of(frame) == math.floor(k / 3.0 * 10 + 1e-6)


def test_load_video_max_frames_lowers_fps(video_av):
    clip = load_video(video_av, fps=10.0, max_frames=4, with_audio=False)
    assert clip.frames.shape[0] == 4
    assert clip.fps == pytest.approx(4 / 3.2)
    assert [_index_of(f) for f in clip.frames] == [0, 10, 20, 30]  # t = 0, 0.8, 1.6, 2.4
    one = load_video(video_av, fps=0.01, with_audio=False)  # far below one frame per video
    assert one.frames.shape[0] == 1 and _index_of(one.frames[0]) == 0


def test_load_video_variable_frame_rate(tmp_path):
    """Irregular timestamps: the sampler must use pts, never an assumed rate."""
    times_ms = [0, 100, 400, 450, 1000, 1700, 1800, 2500]
    path = tmp_path / "vfr.mkv"
    with av.open(str(path), "w") as out:
        vs = out.add_stream("mpeg4", rate=25)
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        vs.codec_context.time_base = Fraction(1, 1000)
        for i, ms in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(np.full((H, W, 3), _colour(i), np.uint8), format="rgb24")
            frame.pts, frame.time_base = ms, Fraction(1, 1000)
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
    clip = load_video(path, fps=10.0)
    assert clip.duration >= 2.5
    assert clip.frames.shape[0] >= 26
    for k, frame in enumerate(clip.frames):
        t_ms = k * 100
        expected = max(i for i, ms in enumerate(times_ms) if ms <= t_ms)
        assert _index_of(frame) == expected, t_ms


def test_truncated_faststart_mp4_keeps_decodable_part(tmp_path, caplog):
    """moov first, tail cut off: decodable frames are returned, the rest repeat the last one."""
    full = _write_video(tmp_path / "fs.mp4", n=125, audio=False, options={"movflags": "faststart"})
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.5)])
    with caplog.at_level("WARNING", logger="omnitrace_core.media"):
        clip = load_video(cut, fps=1.0)
    assert clip.frames.shape[0] == 10  # metadata still says 10 s
    assert _index_of(clip.frames[0]) == 0
    assert "truncated" in caplog.text


def test_probe_duration(video_av, tmp_path):
    assert probe_duration(video_av) == pytest.approx(3.2, abs=1e-3)
    sf.write(tmp_path / "p.wav", np.zeros(12345, np.float32), 16000)
    assert probe_duration(tmp_path / "p.wav") == pytest.approx(12345 / 16000, abs=1e-4)
    with pytest.raises(MediaError, match="does not exist"):
        probe_duration(tmp_path / "missing.mp4")


def test_variable_frame_rate_mp4_has_one_duration_for_probe_and_tracing(tmp_path):
    """B-frames over irregular frame times: the MP4 header sums packet durations in decode order
    and says 2.3 s, while the frames run until 3.9 s. The upfront check must see what tracing sees."""
    from omnitrace_core.speech import validate_segments

    path = tmp_path / "vfr.mp4"
    times = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 1.5, 2.0, 2.1, 3.9]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(VIDEO_CODEC, rate=10)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        stream.codec_context.max_b_frames = 2
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(np.full((H, W, 3), _colour(i), np.uint8), format="rgb24")
            frame.pts, frame.time_base = int(t * 1000), Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with av.open(str(path)) as container:  # the file really under-reports in its header
        video = container.streams.video[0]
        assert float(video.duration * video.time_base) < 2.5

    clip = load_video(path, fps=10)
    assert clip.duration > 3.9 and _index_of(clip.frames[39]) == len(times) - 1  # the frame shown at 3.9 s
    assert probe_duration(path) == pytest.approx(clip.duration, abs=1e-6)
    # a transcript line spoken at 3.0-3.95 s: tracing accepts it, so the upfront check does too
    segments = validate_segments([{"start": 3.0, "end": 3.95, "text": "the last words"}], probe_duration(path))
    assert segments[0].end == pytest.approx(3.95)


def test_video_errors(tmp_path, video_av):
    with pytest.raises(MediaError, match=r"only_audio\.mp4.*no video stream.*audio"):
        load_video(_write_audio_only_mp4(tmp_path / "only_audio.mp4"))

    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)))
    with pytest.raises(MediaError, match=r"garbage\.mp4.*could not be opened.*MP4") as info:
        load_video(garbage)
    assert info.value.__cause__ is not None

    data = video_av.read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match=r"truncated\.mp4"):
        load_video(truncated)

    # A container whose video packets are all garbage: no decodable frames.
    nodec = tmp_path / "nodecode.mkv"
    with av.open(str(nodec), "w") as out:
        vs = out.add_stream("mpeg4", rate=10)
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        rng = np.random.default_rng(1)
        for i in range(5):
            packet = av.Packet(bytes(rng.integers(0, 256, 200, dtype=np.uint8)))
            packet.stream, packet.pts, packet.dts = vs, i, i
            packet.time_base, packet.duration = Fraction(1, 10), 1
            out.mux(packet)
    with pytest.raises(MediaError, match=r"nodecode\.mkv.*no decodable frames"):
        load_video(nodec)

    with pytest.raises(MediaError, match=r"3\.20 s long, over the limit of 1 s.*maximum video length.*--max-video-seconds"):
        load_video(video_av, limits=MediaLimits(max_video_seconds=1.0))
    with pytest.raises(MediaError, match="--max-file-mb"):
        load_video(video_av, limits=MediaLimits(max_file_bytes=100))
    with pytest.raises(MediaError, match=r"missing\.mp4.*does not exist"):
        load_video(tmp_path / "missing.mp4")
    with pytest.raises(MediaError, match="positive integer"):
        load_video(video_av, sampling_rate=-1)
    with pytest.raises(ConfigError, match="fps"):
        load_video(video_av, fps=0)
    with pytest.raises(ConfigError, match="max_frames"):
        load_video(video_av, max_frames=0)


# ------------------------------------------------------------ real examples


@needs_examples
def test_real_example_image():
    path = sorted(EXAMPLES.glob("*.jpg"))[0]
    img = load_image(path)
    assert img.mode == "RGB" and img.width > 0 and img.height > 0


@needs_examples
def test_real_example_wav():
    path = sorted(EXAMPLES.glob("*.wav"))[0]
    clip = load_audio(path)
    assert clip.waveform.dtype == np.float32 and clip.waveform.ndim == 1
    assert np.abs(clip.waveform).max() <= 1.0
    assert clip.duration == pytest.approx(probe_duration(path), abs=0.01)


@needs_examples
def test_real_example_mp4():
    path = sorted(EXAMPLES.glob("*.mp4"))[0]
    clip = load_video(path, fps=1.0)
    assert clip.frames.ndim == 4 and clip.frames.shape[-1] == 3 and clip.frames.dtype == np.uint8
    assert clip.frames.shape[0] == math.ceil(clip.duration * 1.0 - 1e-6)
    assert clip.duration == pytest.approx(probe_duration(path), abs=0.1)
    assert clip.source_fps > 0
    if clip.audio is not None:
        assert clip.audio.duration == pytest.approx(clip.duration, abs=0.2)
