"""Decode untrusted image bytes into an upright RGB Pillow image, or say why not.

Used by the cleaner (training data) and by ``keyclass predict`` (so a served image is
normalised exactly as training images were):

- only raster formats are tried (JPEG, PNG, GIF, WebP, BMP, TIFF); HTML, SVG and empty
  files get their own reasons instead of a generic "not an image";
- the whole file is decoded (``load()``), so a truncated download fails here, not later;
- a declared size above ``max_pixels`` is refused before any pixel is decoded, and
  Pillow's own decompression-bomb error counts as one too;
- **every** exception raised while decoding one file becomes a :class:`DecodeError`
  with a reason: a damaged file makes Pillow's plugins raise ``IndexError``,
  ``struct.error``, ``TypeError``... (found by fuzzing, ``tests/cleaner/test_fuzz_corpus.py``),
  and none of them may stop a run;
- EXIF orientation is applied; animations keep their first frame;
- every colour mode becomes 8-bit RGB: transparency is composited on white, CMYK and
  palettes are converted, 16-bit and 32-bit greyscale are scaled to 0..255 (not clipped).

Model input policy (:func:`resize_for_model`): a direct bilinear resize to
``size × size`` (no crop, no padding), the same as the exported model's in-graph decode,
so a squashed panorama looks the same in training and in serving.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

RASTER_FORMATS = ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"]
DEFAULT_MAX_PIXELS = 64_000_000
WHITE = (255, 255, 255)

# Decode failure reasons (ledger ``reason`` values for outcome "dropped").
EMPTY = "empty_file"
HTML = "html_not_image"
SVG = "svg_not_raster"
NOT_AN_IMAGE = "not_an_image"
TRUNCATED = "truncated"
CORRUPT = "corrupt"
BOMB = "decompression_bomb"
UNSUPPORTED_MODE = "unsupported_mode"
DECODE_REASONS = (EMPTY, HTML, SVG, NOT_AN_IMAGE, TRUNCATED, CORRUPT, BOMB, UNSUPPORTED_MODE)


class DecodeError(ValueError):
    """The bytes are not a usable raster image; ``reason`` is one of DECODE_REASONS."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclasses.dataclass(frozen=True)
class Decoded:
    """An upright RGB image and what the original file was."""

    image: Image.Image
    format: str  # Pillow's format name: JPEG, PNG, ...
    mode: str  # the original colour mode
    frames: int  # > 1 for animations (only the first frame is used)

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height


def _sniff(data: bytes) -> None:
    """Refuse empty, HTML and SVG bodies with a precise reason."""
    if not data:
        raise DecodeError(EMPTY, "0 bytes")
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<"):
        if b"<svg" in head:
            raise DecodeError(SVG, "SVG is a vector format")
        if b"<html" in head or b"<!doctype html" in head or b"<head" in head or b"<body" in head:
            raise DecodeError(HTML, "an HTML page, not an image")
        if head.startswith(b"<?xml"):
            raise DecodeError(NOT_AN_IMAGE, "XML, not an image")


def decode(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Decoded:
    """Decode ``data`` fully into an upright RGB image; raise DecodeError with a reason.

    Never raises anything else for bad bytes: whatever a damaged file makes Pillow raise
    becomes this file's drop reason."""
    _sniff(data)
    try:
        return _decode(data, max_pixels)
    except DecodeError:
        raise
    except MemoryError as e:
        raise DecodeError(BOMB, f"MemoryError: {e}") from None
    except Exception as e:  # noqa: BLE001 - any error decoding one file is that file's drop reason
        raise DecodeError(_reason(e), f"{type(e).__name__}: {e}") from None


def _reason(e: Exception) -> str:
    if isinstance(e, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return BOMB
    if isinstance(e, EOFError) or "truncat" in str(e).lower():
        return TRUNCATED
    return CORRUPT


def _kind_of(data: bytes) -> str:
    """What unrecognised bytes look like, in words, never their content: the detail
    travels into ledgers, predictions.jsonl and shared reports (a file may be a link to
    anything the user can read)."""
    head = data[:512]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        text = head[: e.start].decode("utf-8") if len(head) - e.start < 4 else None  # a cut multi-byte character
    is_text = text is not None and all(c.isprintable() or c in "\t\r\n" for c in text)
    return f"{len(data)} bytes of {'text' if is_text else 'binary data'}"


def _decode(data: bytes, max_pixels: int) -> Decoded:
    try:
        im = Image.open(io.BytesIO(data), formats=RASTER_FORMATS)
    except UnidentifiedImageError:
        raise DecodeError(NOT_AN_IMAGE, f"no raster format recognised ({_kind_of(data)})") from None
    fmt, mode = im.format or "", im.mode
    w, h = im.size
    if w <= 0 or h <= 0:
        raise DecodeError(CORRUPT, f"declared size {w}x{h}")
    if w * h > max_pixels:
        raise DecodeError(BOMB, f"{w}x{h} = {w * h} pixels exceeds the cap of {max_pixels}")
    # n_frames walks the whole file: a truncated animation fails here (IndexError, EOFError...).
    frames = int(getattr(im, "n_frames", 1) or 1)
    if frames > 1:
        im.seek(0)
    im.load()
    im = _upright(im)
    return Decoded(image=to_rgb(im), format=fmt, mode=mode, frames=frames)


def _upright(im: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; a malformed EXIF block leaves the image as stored."""
    try:
        out = ImageOps.exif_transpose(im)
    except Exception as e:  # noqa: BLE001 - damaged EXIF must not cost an otherwise good image
        warnings.warn(f"ignoring unreadable EXIF orientation: {e}", stacklevel=2)
        return im
    return out if out is not None else im


def _scale_to_uint8(arr: np.ndarray) -> np.ndarray:
    """Integer or float greyscale to 0..255 by its type's range, never by clipping."""
    arr = arr.astype(np.float64)
    lo, hi = float(arr.min()), float(arr.max())
    if lo >= 0 and hi <= 255:
        return arr.round().astype(np.uint8)
    if lo >= 0 and hi <= 65535:
        return (arr / 257.0).round().astype(np.uint8)
    span = hi - lo or 1.0
    return ((arr - lo) * (255.0 / span)).round().astype(np.uint8)


def to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB; transparency is composited on white."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode.startswith("I;16") or mode in ("I", "F"):
        try:
            arr = np.asarray(im)
        except (TypeError, ValueError):
            arr = np.asarray(im.convert("I"))
        return Image.fromarray(_scale_to_uint8(arr), "L").convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info)
    if mode in ("L", "1") and "transparency" in im.info:
        has_alpha = True
    if has_alpha:
        try:
            rgba = im.convert("RGBA")
        except ValueError as e:
            raise DecodeError(UNSUPPORTED_MODE, f"{mode}: {e}") from None
        background = Image.new("RGBA", rgba.size, WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    try:
        return im.convert("RGB")
    except ValueError as e:
        raise DecodeError(UNSUPPORTED_MODE, f"{mode}: {e}") from None


def decode_to_rgb(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Just the upright RGB image (``keyclass predict`` uses this)."""
    return decode(data, max_pixels).image


def resize_for_model(im: Image.Image, size: int) -> Image.Image:
    """Direct bilinear resize to ``size × size``: no crop, no pad, like the serving graph."""
    if im.size == (size, size):
        return im
    return im.resize((size, size), Image.BILINEAR)


def encode_jpeg(im: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def pixel_hash(im: Image.Image) -> str:
    """Hash of the decoded pixels and size: equal for the same picture in any encoding
    that decodes to the same pixels (PNG vs BMP, re-saved metadata, ...)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{im.mode}:{im.width}x{im.height}:".encode())
    h.update(im.tobytes())
    return h.hexdigest()
