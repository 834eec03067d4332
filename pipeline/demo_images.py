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
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

DEMO_CLASSES = ("circle", "square", "triangle")
# Shapes no demo class names: the off-topic results the demo engine mixes in.
OFF_TOPIC_KINDS = ("star", "cross")
DEFAULT_SIZE = 256

# What the demo engine serves at a keyword's result ``index`` (:func:`crawled`): like a
# real search, some results are re-posted copies of earlier ones, some show none of the
# classes. One of every PLANT_EVERY results is each; a near copy copies the result
# COPY_OF results before it (an unplanted one).
PLANT_EVERY = 12
OFF_TOPIC_AT, NEAR_COPY_AT, COPY_OF = 6, 11, 7
CLEAN, OFF_TOPIC, NEAR_COPY = "clean", "off_topic", "near_copy"
MIN_COPY_SIDE = 232  # above clean.min_width / min_height (224)


def _seed(keyword: str, index: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{keyword}\0{index}".encode()).digest()[:8], "big")


def _rng(keyword: str, index: int) -> np.random.Generator:
    return np.random.default_rng(_seed(keyword, index))


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
    """The polygon of ``kind``: a regular polygon (square, triangle), a five-pointed star
    or a plus-shaped cross, radius ``r`` around (cx, cy), rotated by ``rot``."""
    if kind == "star":
        radii = [r if k % 2 == 0 else 0.4 * r for k in range(10)]
    elif kind == "cross":  # the 12 corners of a plus sign whose arms are 0.35 r wide
        a = 0.35
        pts = [
            (a, 1),
            (a, a),
            (1, a),
            (1, -a),
            (a, -a),
            (a, -1),
            (-a, -1),
            (-a, -a),
            (-1, -a),
            (-1, a),
            (-a, a),
            (-a, 1),
        ]
        return [
            (cx + r * (x * math.cos(rot) - y * math.sin(rot)), cy + r * (x * math.sin(rot) + y * math.cos(rot)))
            for x, y in pts
        ]
    else:
        radii = [r] * {"square": 4, "triangle": 3}[kind]
    n = len(radii)
    return [
        (cx + radii[k] * math.cos(rot + 2 * math.pi * k / n), cy + radii[k] * math.sin(rot + 2 * math.pi * k / n))
        for k in range(n)
    ]


def render_image(keyword: str, index: int, size: int = DEFAULT_SIZE) -> Image.Image:
    """The ``index``-th demo image of ``keyword`` (one of DEMO_CLASSES, or of
    OFF_TOPIC_KINDS) as a PIL image."""
    if keyword not in DEMO_CLASSES + OFF_TOPIC_KINDS:
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


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def render(keyword: str, index: int, size: int = DEFAULT_SIZE, quality: int = 90) -> bytes:
    """The ``index``-th demo image of ``keyword`` as JPEG bytes (deterministic)."""
    return _jpeg(render_image(keyword, index, size), quality)


def near_copy(img: Image.Image, seed: int, min_side: int = 1) -> Image.Image:
    """A re-posted copy: crop <= 5 % of each side's length in all, rescale (x0.75-1.5, never
    below ``min_side`` pixels), brightness ±10 %."""
    rng = _rng("copy", seed)
    w, h = img.size
    crop_w, crop_h = float(rng.uniform(0, 0.05)) * w, float(rng.uniform(0, 0.05)) * h
    left, top = float(rng.uniform(0, 1)) * crop_w, float(rng.uniform(0, 1)) * crop_h
    out = img.crop((round(left), round(top), round(w - (crop_w - left)), round(h - (crop_h - top))))
    factor = max(float(rng.uniform(0.75, 1.5)), min_side / min(out.size))
    out = out.resize((max(1, round(out.width * factor)), max(1, round(out.height * factor))), Image.BILINEAR)
    return ImageEnhance.Brightness(out).enhance(float(rng.uniform(0.9, 1.1)))


def near_copy_jpeg(img: Image.Image, seed: int, min_side: int = 1) -> bytes:
    """:func:`near_copy`, re-encoded as JPEG at quality 60-80."""
    return _jpeg(near_copy(img, seed, min_side), int(_rng("quality", seed).integers(60, 81)))


def planted(index: int) -> str:
    """What the demo engine's result ``index`` of any keyword is: CLEAN, OFF_TOPIC or NEAR_COPY."""
    return {OFF_TOPIC_AT: OFF_TOPIC, NEAR_COPY_AT: NEAR_COPY}.get(index % PLANT_EVERY, CLEAN)


def crawled(keyword: str, index: int) -> bytes:
    """The demo engine's result ``index`` for ``keyword``: its shape (:func:`render`), or
    where :func:`planted` says so, a shape no class names (a star or a cross) or a near
    copy of the result COPY_OF places earlier."""
    kind = planted(index)
    if kind == OFF_TOPIC:
        other = OFF_TOPIC_KINDS[(index // PLANT_EVERY) % len(OFF_TOPIC_KINDS)]
        return render(other, _seed(keyword, index))
    if kind == NEAR_COPY:
        # Never below the cleaner's default minimum side: the copy must reach curation.
        return near_copy_jpeg(render_image(keyword, index - COPY_OF), _seed(keyword, index), MIN_COPY_SIDE)
    return render(keyword, index)


def write_folder(root: str | os.PathLike, classes: tuple[str, ...] | list[str], per_class: int, start: int = 0) -> str:
    """Write ``root/<class>/<index>.jpg`` for a ``folder:`` source; returns ``root``."""
    for keyword in classes:
        folder = os.path.join(root, keyword)
        os.makedirs(folder, exist_ok=True)
        for i in range(start, start + per_class):
            with open(os.path.join(folder, f"{i:04d}.jpg"), "wb") as f:
                f.write(render(keyword, i))
    return str(root)
