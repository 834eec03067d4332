"""Result images: the heatmap superimposed on the original, and the segmentation (the
original cut to where the upsampled heatmap passes a fraction of its maximum)."""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

# Largest side of the written result images; originals above it are scaled down.
MAX_SIDE = 1024


@functools.cache
def _jet_lut() -> np.ndarray:
    """Matplotlib's jet colormap as 256 RGB rows (matplotlib loads on the first overlay)."""
    import matplotlib

    return (matplotlib.colormaps["jet"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)


def display_image(img: Image.Image, max_side: int = MAX_SIDE) -> Image.Image:
    """RGB image no larger than ``max_side`` on its longest side."""
    if max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BILINEAR)
    return img


def upsample(heatmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h,w) map in 0..1 -> (H,W) float32 bilinear, for ``size`` = (W,H)."""
    img = Image.fromarray(np.clip(heatmap, 0, 1).astype(np.float32), mode="F")
    return np.asarray(img.resize(size, Image.BILINEAR), dtype=np.float32)


def overlay(img: Image.Image, heat: np.ndarray, alpha: float = 0.4) -> Image.Image:
    """The jet-coloured heatmap blended over the image (``heat`` already at image size)."""
    colours = _jet_lut()[np.clip((heat * 255).astype(np.int32), 0, 255)]
    base = np.asarray(img, dtype=np.float32)
    out = base * (1 - alpha) + colours.astype(np.float32) * alpha
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def segment(img: Image.Image, heat: np.ndarray, fraction: float) -> tuple[Image.Image, list[int] | None]:
    """Pixels where ``heat >= fraction * max`` kept, the rest black; plus the region's
    bounding box ``[x0, y0, x1, y1]`` in the given image's pixels (None if empty)."""
    peak = float(heat.max()) if heat.size else 0.0
    mask = heat >= fraction * peak if peak > 0 else np.zeros(heat.shape, bool)
    out = np.asarray(img).copy()
    out[~mask] = 0
    if not mask.any():
        return Image.fromarray(out), None
    ys, xs = np.nonzero(mask)
    return Image.fromarray(out), [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
