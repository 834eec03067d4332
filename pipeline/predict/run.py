"""Predict a folder: one ``grad_cam`` pass per batch gives class, confidence and heatmap.

Files are decoded with the cleaner's decoder (EXIF orientation, every colour mode,
first frame of animations, decompression-bomb guard) and resized exactly as training
images were, so the model sees what it was trained on. Decoding the next batch and
writing the previous batch's result images run on a thread pool while the model works.
Unreadable and non-image files are recorded with their reason and never stop the run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import numpy as np
from PIL import Image

from keyclass.components import progress as terminal_progress
from keyclass.components.errors import ConfigError
from keyclass.pipeline.predict import summary as summary_lib
from keyclass.pipeline.predict import truth, visualize
from keyclass.pipeline.predict.results_dir import prepare_results_dir

__all__ = ["Loaded", "PredictError", "check_inputs", "default_loader", "predict_folder", "prepare_results_dir"]


class PredictError(ConfigError):
    """A bad argument to predict, found before any work starts."""


@dataclasses.dataclass
class Loaded:
    path: Path
    image: Image.Image | None  # RGB, upright, original size (capped for display)
    model_input: bytes  # JPEG at the model's input size, as the cleaner writes them
    error: str | None = None


def check_inputs(root: Path, results: Path | None = None) -> list[Path]:
    """The files to predict; refuses a missing, non-folder or empty prediction path."""
    if not root.exists():
        raise PredictError(f"prediction folder {root} does not exist")
    if not root.is_dir():
        raise PredictError(f"prediction folder {root} is not a folder")
    files = truth.scan(root, exclude=results)
    if not files:
        raise PredictError(f"prediction folder {root} holds no files")
    return files


def default_loader(image_size: int, jpeg_quality: int = 95) -> Callable[[Path], Loaded]:
    """Decode, resize and encode a file exactly as the cleaner prepares training images."""
    from keyclass.components.cleaner import decode

    def load(path: Path) -> Loaded:
        try:
            data = path.read_bytes()
        except OSError as e:
            return Loaded(path, None, b"", f"unreadable: {e.strerror}")
        try:
            img = decode.decode_to_rgb(data)
        except decode.DecodeError as e:
            return Loaded(path, None, b"", str(e))
        model_input = decode.encode_jpeg(decode.resize_for_model(img, image_size), jpeg_quality)
        return Loaded(path, visualize.display_image(img), model_input)

    return load


def _batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def result_stem(rel: Path) -> str:
    """The file-name stem of an input's result images: its relative path, extension
    included, percent-encoded (``sub/cat.jpg`` -> ``sub%2Fcat.jpg``), so two inputs never
    share a name (``cat.jpg`` vs ``cat.png``) and ``urllib.parse.unquote`` gives the path
    back. A path too long for a file name keeps its start and a digest of the whole."""
    stem = quote(rel.as_posix(), safe=" !#$&'()+,;=@[]^`{}~-._")  # ASCII only
    if len(stem) > 180:
        head = stem[:120]
        cut = head.rfind("%")
        if cut > len(head) - 3:  # do not split an escape
            head = head[:cut]
        stem = f"{head}~{hashlib.sha256(rel.as_posix().encode()).hexdigest()[:16]}"
    return stem


def write_result_images(
    out_dir: Path, rel: Path, img: Image.Image, heatmap: np.ndarray, fraction: float
) -> tuple[list[str], list[int] | None]:
    """original, Grad-CAM overlay and segmentation under ``out_dir``; returns the paths
    and the segmented region's box in original-image pixels."""
    out_dir.mkdir(parents=True, exist_ok=True)
    heat = visualize.upsample(heatmap, img.size)
    stem = result_stem(rel)
    paths = [out_dir / f"{stem}_original.jpg", out_dir / f"{stem}_gradcam.jpg", out_dir / f"{stem}_segmentation.jpg"]
    img.save(paths[0], "JPEG", quality=92)
    visualize.overlay(img, heat).save(paths[1], "JPEG", quality=92)
    seg, box = visualize.segment(img, heat, fraction)
    seg.save(paths[2], "JPEG", quality=92)
    return [str(p) for p in paths], box


def predict_folder(
    predictor,
    classes: list[str],
    root: str | Path,
    results: str | Path,
    *,
    threshold: float,
    batch_size: int,
    segmentation_fraction: float,
    image_size: int,
    overwrite: bool = False,
    loader: Callable[[Path], Loaded] | None = None,
    workers: int = 4,
    progress: bool = True,
    certification: dict | None = None,
) -> dict:
    """Predict every file under ``root``; write results; return the summary dict.

    ``predictor.predict(list_of_bytes, signature="grad_cam")`` must return an object with
    ``probabilities``, ``class_name``, ``confidence`` and ``heatmap`` (and, from calibrated
    models, ``raw_confidence``). A prediction below ``threshold`` is abstained: recorded
    with its top class, but not assigned to it (no result images, not counted as kept).
    ``certification`` (from :mod:`predict.certify`) goes into the summary.
    """
    root, results = Path(root), Path(results)
    files = check_inputs(root, results)
    prepare_results_dir(results, overwrite, prediction_root=root)
    load = loader or default_loader(image_size)
    records: list[dict] = []
    bar = terminal_progress.Bar(len(files), "predict", draw=progress)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending_writes: list[Future] = []
        batches = list(_batches(files, batch_size))
        next_loads = [pool.submit(load, p) for p in batches[0]] if batches else []
        for bi in range(len(batches)):
            loaded = [f.result() for f in next_loads]
            if bi + 1 < len(batches):
                next_loads = [pool.submit(load, p) for p in batches[bi + 1]]
            good = [item for item in loaded if item.error is None]
            out = predictor.predict([item.model_input for item in good], signature="grad_cam") if good else None
            gi = 0
            for item in loaded:
                rel = item.path.relative_to(root)
                rec: dict = {"file": str(rel), "truth": truth.true_label(item.path, root, classes)}
                if item.error is not None:
                    rec.update(
                        error=item.error,
                        kept=False,
                        abstained=None,
                        raw_confidence=None,
                        **{"class": None, "confidence": None},
                    )
                    records.append(rec)
                    continue
                probs = np.asarray(out.probabilities[gi], dtype=np.float64)
                name = out.class_name[gi]
                name = name.decode() if isinstance(name, bytes) else str(name)
                conf = float(out.confidence[gi])
                raw = getattr(out, "raw_confidence", None)
                kept = conf >= threshold
                rec.update(
                    {
                        "class": name,
                        "confidence": conf,
                        "raw_confidence": float(raw[gi]) if raw is not None else None,
                        "probabilities": {c: float(p) for c, p in zip(classes, probs, strict=True)},
                        "kept": kept,
                        "abstained": not kept,
                        "error": None,
                    }
                )
                if kept:
                    heat = np.asarray(out.heatmap[gi])
                    fut = pool.submit(write_result_images, results / name, rel, item.image, heat, segmentation_fraction)
                    pending_writes.append(fut)
                    rec["_write"] = fut
                records.append(rec)
                gi += 1
            bar.update(len(loaded))
        for rec in records:
            fut = rec.pop("_write", None)
            if fut is not None:
                paths, box = fut.result()
                rec["images"] = paths
                rec["bbox"] = box
    kept = sum(1 for r in records if r["kept"])
    unreadable = sum(1 for r in records if r["error"])
    bar.close(
        f"predict: {len(records)} files, {kept} at or above {threshold:g}"
        + (f", {unreadable} unreadable" if unreadable else "")
        if progress
        else None
    )
    with open(results / "predictions.jsonl", "w") as f:
        for rec in records:
            f.write(json.dumps(rec, sort_keys=True) + "\n")
    summary = summary_lib.summarize(records, classes, threshold, certification)
    summary["unreadable_files"] = [{"file": r["file"], "error": r["error"]} for r in records if r["error"]]
    (results / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    return summary
