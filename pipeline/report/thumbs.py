"""Images inlined into the report: bounded thumbnails as ``data:`` URIs.

Every picture of the data (crawled files, result overlays, predicted files) goes
through :func:`thumbnail_uri`, which never makes one larger than :data:`MAX_SIDE` on
its longest side. Crawled files are untrusted: they are decoded by the cleaner's
decoder, with its decompression-bomb guard, and a file it refuses gets no thumbnail.
Figures (matplotlib, or the PNGs the trainer wrote) go through :func:`figure_uri`.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

MAX_SIDE = 256  # the bound for every inlined picture of the data
FIGURE_MAX_WIDTH = 1400  # charts: readable, still small
MAX_FILE_BYTES = 25_000_000  # larger files are not decoded for a thumbnail
# Thumbnails decode at most this many pixels (the cleaner's own bound is far larger).
MAX_PIXELS = 40_000_000


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def thumbnail(img: Image.Image, side: int) -> Image.Image:
    """A copy no larger than ``side`` (≤ :data:`MAX_SIDE`) on its longest side."""
    if not 0 < side <= MAX_SIDE:
        raise ValueError(f"thumbnail side must be in (0, {MAX_SIDE}], got {side}")
    out = img.convert("RGB")
    out.thumbnail((side, side), Image.BILINEAR)
    return out


def image_uri(img: Image.Image, side: int, quality: int = 82) -> str:
    """A bounded JPEG thumbnail of ``img`` as a data URI."""
    buf = io.BytesIO()
    thumbnail(img, side).save(buf, format="JPEG", quality=quality, optimize=True)
    return data_uri(buf.getvalue(), "image/jpeg")


def load_image(path: str | os.PathLike) -> Image.Image | None:
    """A file decoded safely (the cleaner's decoder), or None when it is not a usable image."""
    from keyclass.components.cleaner import decode

    try:
        if os.path.getsize(path) > MAX_FILE_BYTES:
            return None
        with open(path, "rb") as f:
            return decode.decode_to_rgb(f.read(), max_pixels=MAX_PIXELS)
    except (OSError, decode.DecodeError):
        return None


def thumbnail_uri(path: str | os.PathLike | None, side: int) -> str | None:
    """The bounded thumbnail of an image file, or None (no file, not an image)."""
    if not path:
        return None
    img = load_image(path)
    return image_uri(img, side) if img is not None else None


def thumbnail_uris(paths: Iterable[str | None], side: int, workers: int = 4) -> dict[str, str | None]:
    """Thumbnails of many files at once (decoding releases the GIL); path -> URI."""
    unique = sorted({p for p in paths if p})
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip(unique, pool.map(lambda p: thumbnail_uri(p, side), unique), strict=True))


def png_uri(data: bytes) -> str:
    return data_uri(data, "image/png")


def figure_file_uri(path: str | os.PathLike) -> str | None:
    """A PNG figure written by another step (e.g. the trainer's reliability.png),
    scaled down to :data:`FIGURE_MAX_WIDTH` when wider."""
    try:
        with Image.open(path) as img:
            img.load()
            if img.width > FIGURE_MAX_WIDTH:
                img = img.resize((FIGURE_MAX_WIDTH, round(img.height * FIGURE_MAX_WIDTH / img.width)), Image.LANCZOS)
            buf = io.BytesIO()
            img.save(buf, format="PNG", optimize=True)
    except (OSError, ValueError):
        return None
    return png_uri(buf.getvalue())
