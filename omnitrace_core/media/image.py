"""Images: any file Pillow reads (or an open PIL image) -> a fully decoded RGB image, its true colours."""

from __future__ import annotations

import logging

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import MediaError
from .container import why
from .limits import ACCEPTED_IMAGE_FORMATS, MediaLimits, PathLike, check_file, display_name

logger = logging.getLogger(__name__)


def load_image(source: PathLike | Image.Image, limits: MediaLimits = MediaLimits()) -> Image.Image:
    """Load an image as a fully decoded RGB :class:`PIL.Image.Image`.

    EXIF orientation is applied; transparent images are composited onto white;
    for multi-frame images (GIF, TIFF) the first frame is used.

    Args:
        source: Path to an image file, or an already opened PIL image.
        limits: Size guards (``max_file_bytes``, ``max_image_pixels``).

    Returns:
        An RGB image, size ``(W, H)``, with its pixel data loaded (not lazy; the
        file is closed).

    Raises:
        MediaError: Missing/empty/oversized file, undecodable bytes, or more
            pixels than ``limits.max_image_pixels``.
    """
    if isinstance(source, Image.Image):
        name = display_name(getattr(source, "filename", "") or "<PIL image>")
        _check_pixels(source, limits, name)
        try:
            source.load()
            return _to_rgb(source, name)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise MediaError(
                f"image '{name}' could not be decoded ({exc}); accepted formats: {ACCEPTED_IMAGE_FORMATS}"
            ) from exc

    path = check_file(source, limits, "image")
    name = path.name
    try:
        with Image.open(path) as img:
            _check_pixels(img, limits, name)
            img.load()
            out = _to_rgb(img, name)
    except MediaError:
        raise
    except Image.DecompressionBombError as exc:
        raise MediaError(
            f"image '{name}' has more pixels than can be decoded safely ({why(exc, path)}); "
            f"pass a smaller image"
        ) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise MediaError(
            f"image '{name}' could not be decoded (not an image, or corrupt/truncated: {why(exc, path)}); "
            f"accepted formats: {ACCEPTED_IMAGE_FORMATS}"
        ) from exc
    logger.debug("loaded image %s: %dx%d", name, out.width, out.height)
    return out


def _check_pixels(img: Image.Image, limits: MediaLimits, name: str) -> None:
    """Reject images with more than ``limits.max_image_pixels`` pixels (checked before decoding)."""
    width, height = img.size
    if width <= 0 or height <= 0:
        raise MediaError(f"image '{name}' has no pixels ({width}x{height}); pass a non-empty image")
    if limits.max_image_pixels is not None and width * height > limits.max_image_pixels:
        raise MediaError(
            f"image '{name}' is {width}x{height} = {width * height} pixels, over the limit of "
            f"{limits.max_image_pixels} pixels (the maximum image size setting, --max-image-pixels); "
            f"pass a smaller image or raise that setting"
        )


#: Pillow's modes that hold one channel of more than 8 bits, which ``convert("RGB")`` clips at 255
#: instead of scaling (a 16-bit grayscale PNG would come out almost white).
_DEEP_GRAY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def _to_rgb(img: Image.Image, name: str) -> Image.Image:
    """Return an RGB copy of a loaded image of any Pillow mode.

    EXIF orientation is applied; transparency (an alpha band, a palette's transparent
    entries, a transparent colour key) is composited onto white. Grayscale deeper than
    8 bits is scaled to 8 bits by :func:`_deep_gray_to_l`; every other mode (1, L, P,
    CMYK, YCbCr, LAB, HSV, premultiplied alpha ...) goes through Pillow's own conversion.
    """
    try:
        img = ImageOps.exif_transpose(img) or img
    except Exception as exc:  # noqa: BLE001 - malformed EXIF must not make a good image unreadable
        logger.debug("ignoring unreadable EXIF orientation: %s", exc)
    if img.mode in _DEEP_GRAY_MODES:
        values = np.asarray(img)
        gray = _deep_gray_to_l(values, img.mode, name)
        key = img.info.get("transparency")
        if not isinstance(key, (int, float)):
            return gray.convert("RGB")
        alpha = Image.fromarray(np.where(values == key, 0, 255).astype(np.uint8), "L")
        img = Image.merge("LA", (gray, alpha))
    if img.mode == "La":  # premultiplied; Pillow converts it to RGBA only through LA
        img = img.convert("LA")
    if img.has_transparency_data:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")  # a detached copy even when already RGB


def _deep_gray_to_l(values: np.ndarray, mode: str, name: str) -> Image.Image:
    """Scale one channel deeper than 8 bits to an 8-bit ``L`` image.

    16-bit modes (``I;16*``) map 0..65535 onto 0..255. ``I`` (32-bit integers) and ``F``
    (32-bit floats) carry no nominal range, so it is read from the values: integers within
    0..255 are 8-bit data and within 0..65535 16-bit data; floats within [0, 1] are
    intensities and within [0, 255] 8-bit data; anything else is stretched from its minimum
    to its maximum.
    """
    values = values.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise MediaError(f"image '{name}' holds NaN or infinite pixel values; pass an image of finite values")
    low, high = float(values.min()), float(values.max())
    if mode.startswith("I;16") or (mode == "I" and low >= 0 and 255 < high <= 65535):
        scaled = values / 257.0
    elif mode == "F" and low >= 0 and high <= 1:
        scaled = values * 255.0
    elif low >= 0 and high <= 255:
        scaled = values
    else:
        logger.info("image %s: values span %g..%g (mode %s); stretching them to 0..255", name, low, high, mode)
        if high > low:
            scaled = (values - low) * (255.0 / (high - low))
        else:  # one value, below 0 or above the 8/16-bit range: black or white
            scaled = np.full_like(values, 0.0 if high < 0 else 255.0)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")

