"""CAM faithfulness: the AUC arithmetic on hand-made cases with known answers, a model
whose heatmap is the true object mask beating the random map, and the scores reaching
predictions.jsonl and summary.json through the real exported model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from keyclass.pipeline.predict import faithfulness as fa


def test_auc_is_the_trapezoid_over_equal_steps():
    assert fa.auc([1, 1]) == 1.0
    assert fa.auc([1, 0.5, 0]) == 0.5
    assert fa.auc([1, 0, 0, 0, 0]) == pytest.approx(0.125)
    assert fa.auc([0, 1, 1, 1, 1]) == pytest.approx(0.875)
    with pytest.raises(ValueError):
        fa.auc([1])


def _block_case():
    """8x8 image, the object is the top-left 4x4 block (a quarter of the pixels)."""
    mask = np.zeros((8, 8), bool)
    mask[:4, :4] = True
    image = np.zeros((8, 8, 3), np.uint8)
    image[mask] = 255

    def model(batch: np.ndarray) -> np.ndarray:  # P(class 0) = share of the object left
        p = batch[:, :4, :4, 0].mean(axis=(1, 2)) / 255.0
        return np.stack([p, 1 - p], axis=1)

    return image, mask, model


def test_known_answer_the_object_mask_deletes_and_inserts_in_one_step():
    image, mask, model = _block_case()
    substrate = np.zeros_like(image)
    s = fa.score_image(image, mask.astype(np.float32), 0, model, seed=1, steps=4, substrate=substrate)
    # Deletion: 1, 0, 0, 0, 0 -> 0.125; insertion: 0, 1, 1, 1, 1 -> 0.875.
    assert s["deletion_auc"] == pytest.approx(0.125)
    assert s["insertion_auc"] == pytest.approx(0.875)
    # The other class's probability is 1 - p: its curves mirror.
    other = fa.score_image(image, mask.astype(np.float32), 1, model, seed=1, steps=4, substrate=substrate)
    assert other["deletion_auc"] == pytest.approx(0.875)
    assert other["insertion_auc"] == pytest.approx(0.125)


def test_known_answer_a_random_order_removes_the_object_evenly():
    image, mask, model = _block_case()
    # One pixel per step: a uniformly random order removes the object linearly on
    # average, so both random AUCs sit near 0.5 (over many seeds, exactly 0.5).
    runs = [
        fa.score_image(image, mask.astype(np.float32), 0, model, seed=s, steps=64, substrate=np.zeros_like(image))
        for s in range(40)
    ]
    assert np.mean([r["random_deletion_auc"] for r in runs]) == pytest.approx(0.5, abs=0.03)
    assert np.mean([r["random_insertion_auc"] for r in runs]) == pytest.approx(0.5, abs=0.03)
    # The same seed gives the same scores.
    again = fa.score_image(image, mask.astype(np.float32), 0, model, seed=3, steps=64, substrate=np.zeros_like(image))
    assert again == runs[3]


def test_curve_images_reveal_and_delete_in_order():
    image = np.full((2, 2, 3), 200, np.uint8)
    base = np.zeros_like(image)
    order = np.array([3, 0, 1, 2])
    dele = fa.curve_images(image, base, order, 4, insert=False)
    assert dele.shape == (5, 2, 2, 3)
    assert (dele[0] == 200).all() and (dele[-1] == 0).all()
    assert dele[1].reshape(4, 3)[3].tolist() == [0, 0, 0] and dele[1].reshape(4, 3)[0].tolist() == [200] * 3
    ins = fa.curve_images(image, base, order, 2, insert=True)
    assert ins[1].reshape(4, 3)[:, 0].tolist() == [200, 0, 0, 200]


def _red_disc_scene(rng: np.random.Generator, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A red disc at a random spot on grey noise, and the disc's mask."""
    bg = rng.integers(90, 150, size=(size, size, 3), dtype=np.uint8)
    img = Image.fromarray(bg)
    mask = Image.new("L", (size, size), 0)
    r = size // 6
    cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
    ImageDraw.Draw(img).ellipse([cx - r, cy - r, cx + r, cy + r], fill=(230, 30, 30))
    ImageDraw.Draw(mask).ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    return np.asarray(img), np.asarray(mask) > 0


def _red_detector(batch: np.ndarray) -> np.ndarray:
    """A 'disc' classifier that looks only at strongly red pixels."""
    b = batch.astype(np.int32)
    red = (b[..., 0] > 180) & (b[..., 1] < 90) & (b[..., 2] < 90)
    p = 1 - np.exp(-red.sum(axis=(1, 2)) / 40.0)
    return np.stack([p, 1 - p], axis=1)


def test_a_heatmap_that_is_the_true_object_mask_beats_the_random_map():
    rng = np.random.default_rng(0)
    scores = []
    for i in range(12):
        img, mask = _red_disc_scene(rng)
        assert _red_detector(img[None])[0, 0] > 0.99
        # The default substrate (a strong blur) and the true mask as the heatmap.
        scores.append(fa.score_image(img, mask.astype(np.float32), 0, _red_detector, seed=i, steps=16))
    for s in scores:
        assert s["deletion_auc"] < s["random_deletion_auc"]
        assert s["insertion_auc"] > s["random_insertion_auc"]
    summary = fa.summarize([{"faithfulness": s} for s in scores], 16)
    assert summary["images"] == 12 and summary["deletion_wins"] == 1.0 and summary["insertion_wins"] == 1.0
    assert summary["deletion_auc"] < summary["random_deletion_auc"]


def test_an_inverted_heatmap_loses_to_the_random_map():
    """The metric can fail a heatmap: pointing away from the object is worse than chance."""
    rng = np.random.default_rng(1)
    img, mask = _red_disc_scene(rng)
    s = fa.score_image(img, (~mask).astype(np.float32), 0, _red_detector, seed=0, steps=16)
    assert s["deletion_auc"] > s["random_deletion_auc"]
    assert s["insertion_auc"] < s["random_insertion_auc"]


def test_predict_with_faithfulness_scores_kept_predictions(exported_model, tmp_path):
    """Through the real exported model (tiny backbone) and ``predict_folder``."""
    from keyclass.pipeline.predict.run import predict_folder
    from keyclass.serving.local import LocalPredictor

    predictor = LocalPredictor(exported_model.path)
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(2)
    for i in range(3):
        Image.fromarray(_red_disc_scene(rng, 48)[0]).save(photos / f"{i}.png")
    (photos / "notes.txt").write_text("not an image")
    calls = []
    real = predictor.predict

    def counting(images, signature="grad_cam", class_index=None):
        calls.append((signature, len(images)))
        return real(images, signature=signature, class_index=class_index)

    predictor.predict = counting
    summary = predict_folder(
        predictor,
        list(predictor.classes),
        photos,
        tmp_path / "results",
        threshold=0.01,
        batch_size=8,
        segmentation_fraction=0.5,
        image_size=32,
        progress=False,
        faithfulness_steps=4,
    )
    rows = [json.loads(line) for line in (tmp_path / "results" / "predictions.jsonl").read_text().splitlines()]
    scored = [r for r in rows if r.get("faithfulness")]
    assert len(scored) == 3 and all(r["kept"] for r in scored)
    for r in scored:
        assert set(r["faithfulness"]) == set(fa.KEYS)
        assert all(0.0 <= v <= 1.0 for v in r["faithfulness"].values())
    # 4 * (steps - 1) + 2 = 14 forward passes per kept image, through serving_default.
    assert sum(n for sig, n in calls if sig == "serving_default") == 3 * 14
    on_disk = json.loads((tmp_path / "results" / "summary.json").read_text())
    assert on_disk["faithfulness"]["images"] == 3 == summary["faithfulness"]["images"]
    assert on_disk["faithfulness"]["deletion_auc"] == pytest.approx(
        np.mean([r["faithfulness"]["deletion_auc"] for r in scored])
    )
