"""Deterministic, learnable demo images: one shape on a noisy, textured background.

``render("circle", 7)`` is always the same JPEG: the shape's colour, size, position and
the background are drawn from a random generator seeded by (keyword, index). The
classes differ only in the shape, so a classifier has to learn the shape, not a colour.
Used by the offline demo (through :mod:`pipeline.demo_engine`) and by tests.
"""

from __future__ import annotations

import hashlib
import io
import math
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

DEMO_CLASSES = ("circle", "square", "triangle")
DEFAULT_SIZE = 256


def _rng(keyword: str, index: int) -> np.random.Generator:
    seed = int.from_bytes(hashlib.sha256(f"{keyword}\0{index}".encode()).digest()[:8], "big")
    return np.random.default_rng(seed)


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    """A colour gradient with blotchy texture and pixel noise."""
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:size, 0:size] / size
    t = (np.cos(angle) * xx + np.sin(angle) * yy + 1.5) / 3.0
    img = c0 * (1 - t[..., None]) + c1 * t[..., None]
    blotches = rng.normal(0, 40, (size // 16, size // 16, 3))
    img += np.kron(blotches, np.ones((16, 16, 1)))[:size, :size]
    img += rng.normal(0, 18, (size, size, 3))
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    return out.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.0, 1.2))))


def _shape_points(kind: str, cx: float, cy: float, r: float, rot: float) -> list[tuple[float, float]]:
    corners = {"square": 4, "triangle": 3}[kind]
    return [
        (cx + r * math.cos(rot + 2 * math.pi * k / corners), cy + r * math.sin(rot + 2 * math.pi * k / corners))
        for k in range(corners)
    ]


def render_image(keyword: str, index: int, size: int = DEFAULT_SIZE) -> Image.Image:
    """The ``index``-th demo image of ``keyword`` (one of DEMO_CLASSES) as a PIL image."""
    if keyword not in DEMO_CLASSES:
        raise KeyError(f"no demo images for {keyword!r}; demo classes: {', '.join(DEMO_CLASSES)}")
    rng = _rng(keyword, index)
    img = _background(rng, size)
    draw = ImageDraw.Draw(img)
    r = float(rng.uniform(0.15, 0.35)) * size
    cx, cy = (float(rng.uniform(r, size - r)) for _ in range(2))
    colour = tuple(int(v) for v in rng.integers(0, 256, 3))
    outline = tuple(int(v) for v in rng.integers(0, 256, 3))
    if keyword == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour, outline=outline, width=max(1, size // 100))
    else:
        rot = float(rng.uniform(0, 2 * math.pi))
        draw.polygon(_shape_points(keyword, cx, cy, r, rot), fill=colour, outline=outline)
    return img


def render(keyword: str, index: int, size: int = DEFAULT_SIZE, quality: int = 90) -> bytes:
    """The ``index``-th demo image of ``keyword`` as JPEG bytes (deterministic)."""
    buf = io.BytesIO()
    render_image(keyword, index, size).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def write_folder(root: str | os.PathLike, classes: tuple[str, ...] | list[str], per_class: int, start: int = 0) -> str:
    """Write ``root/<class>/<index>.jpg`` for a ``folder:`` source; returns ``root``."""
    for keyword in classes:
        folder = os.path.join(root, keyword)
        os.makedirs(folder, exist_ok=True)
        for i in range(start, start + per_class):
            with open(os.path.join(folder, f"{i:04d}.jpg"), "wb") as f:
                f.write(render(keyword, i))
    return str(root)
