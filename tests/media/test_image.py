"""Images: every Pillow mode to its true RGB, errors in the user's terms."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from omnitrace_core.errors import MediaError
from omnitrace_core.media import MediaLimits, load_image
from tests.media.helpers import colour


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
