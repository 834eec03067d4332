"""Does a heatmap point at what drives the prediction? Deletion and insertion AUC.

The causal metrics of RISE (Petsiuk, Das and Saenko, BMVC 2018), computed on the
exported model through its own signature, so they measure the model users run:

- **deletion**: pixels are removed (replaced by a blurred copy of the image) in the
  heatmap's order, most salient first, in ``steps`` equal steps; the probability of the
  explained class is recorded at each step and integrated over the removed fraction.
  A faithful map makes the probability fall early: **lower is better**.
- **insertion**: the same, the other way round: start from the blurred image and put
  the original pixels back, most salient first. **Higher is better**.

Each image is scored a second time with a **seeded uniform-random map** at the
heatmap's own resolution, upsampled the same way, so the comparison isolates the order
the heatmap gives from the block structure any upsampled coarse map has. The seed is
derived from the file's name, so a rerun gives the same scores.

The perturbed images go to the model as BMP (lossless; the exported decoder reads
it), ``batch_size`` at a time. One image costs ``4 * (steps - 1) + 2`` forward passes:
the unperturbed and the fully blurred image are shared by the four curves.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageFilter

from keyclass.pipeline.predict import visualize

# The substrate: a Gaussian blur with sigma = this fraction of the image's side (28 px
# at 224). Strong enough to remove an object's shape, unlike a few-pixel blur, while
# keeping the image's colours, so the perturbed images stay close to natural ones.
BLUR_SIGMA_FRACTION = 1 / 8
# Per-image scores, as predictions.jsonl and summary.json carry them.
KEYS = ("deletion_auc", "insertion_auc", "random_deletion_auc", "random_insertion_auc")

ProbabilityFn = Callable[[np.ndarray], np.ndarray]  # (N,H,W,3) uint8 -> (N,K) probabilities


def auc(curve: Sequence[float]) -> float:
    """Area under a curve sampled at equal steps over [0, 1] (the trapezoid rule)."""
    y = np.asarray(curve, dtype=np.float64)
    if y.size < 2:
        raise ValueError("a curve needs at least two points")
    return float((y.sum() - (y[0] + y[-1]) / 2) / (y.size - 1))


def pixel_order(saliency: np.ndarray) -> np.ndarray:
    """Flat pixel indices, most salient first; ties keep reading order."""
    return np.argsort(-np.asarray(saliency, dtype=np.float64).ravel(), kind="stable")


def random_map(shape: tuple[int, int], seed: int) -> np.ndarray:
    """A uniform-random map in [0, 1) of ``shape`` (the heatmap's own resolution)."""
    return np.random.default_rng(seed).random(shape, dtype=np.float64).astype(np.float32)


def seed_for(name: str, base: int = 0) -> int:
    """A stable seed for one image, from its name."""
    return int.from_bytes(hashlib.sha256(f"{base}\0{name}".encode()).digest()[:8], "big")


def blur_substrate(image: np.ndarray, sigma_fraction: float = BLUR_SIGMA_FRACTION) -> np.ndarray:
    """The image with its content blurred away: what deleted pixels are replaced by."""
    sigma = sigma_fraction * max(image.shape[:2])
    blurred = Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius=sigma))
    return np.asarray(blurred, dtype=np.uint8)


def upsampled(heatmap: np.ndarray, height: int, width: int) -> np.ndarray:
    """A coarse (h,w) map at image resolution, bilinear, as the result overlays draw it."""
    return visualize.upsample(np.asarray(heatmap, dtype=np.float32), (width, height))


def curve_images(image: np.ndarray, substrate: np.ndarray, order: np.ndarray, steps: int, insert: bool) -> np.ndarray:
    """(steps+1, H, W, 3): step k has the first ``k/steps`` of ``order`` deleted (taken
    from ``substrate``) or, with ``insert``, revealed (taken from ``image``)."""
    h, w = image.shape[:2]
    n = h * w
    src, dst = (image, substrate) if insert else (substrate, image)
    flat_src = src.reshape(n, -1)
    out = np.empty((steps + 1, n, image.shape[2]), dtype=np.uint8)
    current = dst.reshape(n, -1).copy()
    done = 0
    for k in range(steps + 1):
        upto = round(k * n / steps)
        idx = order[done:upto]
        current[idx] = flat_src[idx]
        done = upto
        out[k] = current
    return out.reshape(steps + 1, h, w, image.shape[2])


def score_image(
    image: np.ndarray,
    heatmap: np.ndarray,
    target: int,
    probabilities: ProbabilityFn,
    *,
    seed: int,
    steps: int,
    substrate: np.ndarray | None = None,
    batch_size: int = 64,
) -> dict[str, float]:
    """The four AUCs (:data:`KEYS`) of one image: its heatmap's and a random map's.

    ``image`` is what the model sees, (H,W,3) uint8; ``heatmap`` any (h,w) map (upsampled
    to the image); ``target`` the explained class; ``probabilities`` the model.
    """
    if steps < 2:
        raise ValueError(f"steps must be at least 2, got {steps}")
    image = np.ascontiguousarray(image, dtype=np.uint8)
    h, w = image.shape[:2]
    base = blur_substrate(image) if substrate is None else np.asarray(substrate, dtype=np.uint8)
    heatmap = np.asarray(heatmap, dtype=np.float32)
    maps = {"": heatmap, "random_": random_map(heatmap.shape, seed)}
    # Unique images: the original, the substrate, then the inner steps of each curve.
    stack = [image[None], base[None]]
    for m in maps.values():
        order = pixel_order(upsampled(m, h, w) if m.shape != (h, w) else m)
        for insert in (False, True):
            stack.append(curve_images(image, base, order, steps, insert)[1:-1])
    batch = np.concatenate(stack)
    probs = np.concatenate([probabilities(batch[i : i + batch_size]) for i in range(0, len(batch), batch_size)])
    p = probs[:, target].astype(np.float64)
    p_image, p_base, inner = p[0], p[1], p[2:].reshape(len(maps) * 2, steps - 1)
    out: dict[str, float] = {}
    for mi, prefix in enumerate(maps):
        deletion = np.concatenate([[p_image], inner[2 * mi], [p_base]])
        insertion = np.concatenate([[p_base], inner[2 * mi + 1], [p_image]])
        out[f"{prefix}deletion_auc"] = auc(deletion)
        out[f"{prefix}insertion_auc"] = auc(insertion)
    return {k: out[k] for k in KEYS}


def encode_bmp(image: np.ndarray) -> bytes:
    """Lossless, the cheapest format to encode that the exported decoder reads."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="BMP")
    return buf.getvalue()


def predictor_probabilities(predictor, signature: str | None = None) -> ProbabilityFn:
    """The probabilities of any keyclass predictor (in-process or TF Serving) for pixels."""
    from keyclass.serving.model_layout import SERVING_DEFAULT

    def probabilities(images: np.ndarray) -> np.ndarray:
        result = predictor.predict([encode_bmp(img) for img in images], signature=signature or SERVING_DEFAULT)
        return np.asarray(result.probabilities, dtype=np.float64)

    return probabilities


def decode_pixels(data: bytes) -> np.ndarray:
    """The pixels of the model-input JPEG ``predict`` prepares (already at model size)."""
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)


def summarize(records: Sequence[dict], steps: int) -> dict:
    """Run means of the scored records against the random baseline, and how often the
    heatmap beat its random map on each metric."""
    scored = [r["faithfulness"] for r in records if r.get("faithfulness")]
    out: dict = {
        "images": len(scored),
        "steps": steps,
        "substrate": f"gaussian blur, sigma {BLUR_SIGMA_FRACTION:g} of the image side",
        "random_map": "uniform, heatmap resolution, seeded by file name",
    }
    if not scored:
        return out
    for k in KEYS:
        out[k] = float(np.mean([s[k] for s in scored]))
    out["deletion_wins"] = sum(s["deletion_auc"] < s["random_deletion_auc"] for s in scored) / len(scored)
    out["insertion_wins"] = sum(s["insertion_auc"] > s["random_insertion_auc"] for s in scored) / len(scored)
    return out
