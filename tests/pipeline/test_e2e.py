"""End to end on the LocalDagRunner with SQLite ML Metadata and the Beam DirectRunner,
against the loopback demo search engine: dataset, train/gate/push, a deliberately worse
model that must not be pushed, and `run` reusing the pushed model to predict a folder.

One keyclass home is shared by the module so later runs reuse cached steps, as a user's
runs do. Small sizes keep it to a few minutes on 2 cores: 64 px images and the `tiny`
backbone (the real code path, a shallow network), on scenes it can learn in seconds
(a red circle or a blue square at a random spot).
"""

import json
from collections import Counter
from pathlib import Path

import pytest
import tensorflow as tf
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from keyclass.pipeline import commands, demo_images, metadata, store
from keyclass.pipeline.config import load_config
from tests.fixtures import images, scenes
from tests.fixtures.engine import FaultEngine as DemoSearchEngine

pytestmark = pytest.mark.e2e

CLASSES = scenes.CLASSES  # circle, square
PER_CLASS = 60


def scene_jpeg(keyword: str, index: int) -> bytes:
    import numpy as np

    rng = np.random.default_rng([CLASSES.index(keyword), index])
    return scenes.jpeg(scenes.scene(CLASSES.index(keyword), 96, rng)[0])


def write_scene_folder(root: Path, per_class: int, start: int) -> None:
    for c in CLASSES:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(start, start + per_class):
            (root / c / f"{i}.jpg").write_bytes(scene_jpeg(c, i))


@pytest.fixture(scope="module")
def engine():
    with DemoSearchEngine(classes=CLASSES, images_per_class=PER_CLASS, provider=scene_jpeg) as e:
        # Bad inputs the ledger must account for, ahead of the generated images.
        e.add_bytes("circle", images.truncated(images.rgb_jpeg(1)))
        e.add_bytes("circle", images.html_page(), content_type="image/jpeg")
        e.add_bytes("circle", images.rgb_jpeg(2, 40, 30))  # too small
        e.add_status("square", 404)
        e.add_redirect("square", "http://169.254.169.254/latest/meta-data/x.jpg")
        shared = demo_images.render("triangle", 5)
        e.add_bytes("circle", shared)  # the same picture under both keywords: ambiguous
        e.add_bytes("square", shared)
        yield e


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("keyclass-home")


def make_cfg(home: Path, engine: DemoSearchEngine, **extra):
    return load_config(
        overrides={
            "crawl.classes": ",".join(CLASSES),
            "crawl.sources": ["bing"],
            "crawl.search_url": {"bing": engine.search_url},
            "crawl.allow_loopback": True,
            "crawl.max_images_per_class": PER_CLASS,
            "crawl.min_images_per_class": 20,
            "crawl.connect_timeout_s": 2,
            "crawl.read_timeout_s": 2,
            "crawl.total_timeout_s": 5,
            "crawl.retries": 0,
            "image_size": 64,
            "clean.min_width": 64,
            "clean.min_height": 64,
            "train.backbone": "tiny",
            "train.weights": "none",
            "train.augment": False,
            "train.batch_size": 16,
            "train.max_epochs": 3,
            "train.learning_rate": 3e-3,
            "train.fine_tune_epochs": 8,
            "train.fine_tune_learning_rate": 3e-3,
            "gate.max_val_loss": 0.69,
            "runner.home": str(home),
            "runner.direct_num_workers": 2,
            **extra,
        }
    )


def executions(cfg, node: str, state=None) -> int:
    """How many executions of ``node`` ML Metadata recorded (optionally in one state)."""
    s = metadata_store.MetadataStore(metadata.sqlite_connection(cfg.metadata_path))
    ctx = s.get_context_by_type_and_name("node", f"{cfg.resolved_pipeline_name}.{node}")
    execs = s.get_executions_by_context(ctx.id) if ctx else []
    return sum(1 for e in execs if state is None or e.last_known_state == state)


@pytest.fixture(scope="module")
def dataset(engine, home, tmp_path_factory):
    out = tmp_path_factory.mktemp("dataset") / "out"
    report = commands.dataset(make_cfg(home, engine), str(out))
    return report, out


@pytest.fixture(scope="module")
def trained(dataset, engine, home):
    cfg = make_cfg(home, engine)
    return cfg, commands.train(cfg)


@pytest.fixture(scope="module")
def worse(trained, engine, home):
    cfg = make_cfg(home, engine, **{"train.shuffle_labels": True, "gate.max_val_loss": 5.0})
    before = store.list_models(cfg.models_dir)
    return cfg, before, commands.train(cfg)


def test_dataset_writes_tfrecords_ledger_and_a_funnel_that_adds_up(dataset):
    report, out = dataset
    assert sorted(p.name for p in out.iterdir()) == [
        "Split-calibration",
        "Split-eval",
        "Split-train",
        "ledger.jsonl",
        "manifest.jsonl",
        "report.json",
    ]
    ledger = [json.loads(line) for line in (out / "ledger.jsonl").read_text().splitlines()]
    manifest = (out / "manifest.jsonl").read_text().splitlines()
    assert len(ledger) == len(manifest)  # every URL the crawler saw is accounted for
    outcomes = Counter(r["outcome"] for r in ledger)
    assert set(outcomes) <= {"kept", "dropped", "duplicate", "ambiguous", "failed"}
    assert outcomes["ambiguous"] == 2  # the shared picture left both classes
    reasons = " ".join(r["reason"] or "" for r in ledger if r["outcome"] in ("failed", "dropped"))
    for word in ("404", "169.254.169.254", "small"):
        assert word in reasons, (word, reasons)
    kept = [r for r in ledger if r["outcome"] == "kept"]
    records = {
        split: sum(1 for f in (out / f"Split-{split}").iterdir() for _ in tf.data.TFRecordDataset(str(f), "GZIP"))
        for split in ("train", "eval", "calibration")
    }
    assert sum(records.values()) == len(kept)
    assert Counter(r["split"] for r in kept) == Counter(records)
    # Balanced to the smallest class.
    per_class = Counter(r["keyword"] for r in kept)
    assert per_class["circle"] == per_class["square"] > 0


def test_train_blesses_and_pushes_a_model_that_loads(trained):
    cfg, outcome = trained
    assert outcome.blessed is True and outcome.pushed is True
    # The Evaluator really loaded and scored the exported model.
    m = outcome.eval_metrics
    assert 0 <= m["sparse_categorical_crossentropy"] < cfg.gate.max_val_loss
    assert 0.5 < m["sparse_categorical_accuracy"] <= 1.0
    assert m["example_count"] > 0
    pushed = Path(outcome.pushed_path)
    assert pushed.parent == cfg.models_dir / cfg.model_name and pushed.name == outcome.pushed_version
    loaded = tf.saved_model.load(str(pushed))
    assert {"serving_default", "grad_cam", "grad_cam_class", "serving_tf_example"} <= set(loaded.signatures)
    # Calibrated on the held-out split, and the certificates are in the pushed metadata.
    block = store.list_models(cfg.models_dir)[0].metadata["calibration"]
    assert block["images"] > 0 and block["ece_after"] <= block["ece_before"]
    assert float(loaded.temperature.numpy()) == pytest.approx(block["temperature"])
    assert set(block["certified_thresholds"]) == {"0.95", "0.99", "0.995"}
    for uri in (outcome.examples_uri, outcome.report_uri, outcome.model_uri):
        assert Path(uri).is_dir()
    assert not [p for p in pushed.parent.iterdir() if p.name.startswith(".tmp")]


def test_a_worse_model_is_not_blessed_and_the_served_version_stays(worse):
    cfg, before, outcome = worse
    # Three runs so far (dataset, train, worse): the crawl and the cleaning ran once and
    # were reused from the cache, since classes, sources and snapshot did not change.
    complete = metadata_store_pb2.Execution.COMPLETE
    assert executions(cfg, "ImageCrawler", complete) == 1
    assert executions(cfg, "ImageCleaner", complete) == 1
    assert executions(cfg, "Trainer", complete) == 2
    assert outcome.blessed is False
    assert outcome.pushed is False
    after = store.list_models(cfg.models_dir)
    assert [(m.model_name, m.version) for m in after] == [(m.model_name, m.version) for m in before]


def test_run_reuses_the_model_and_predicts_a_folder(worse, engine, home, tmp_path):
    cfg = make_cfg(home, engine, **{"predict.threshold": 0.6, "predict.results": str(tmp_path / "results")})
    cfg.crawl.classes = ["square", "circle"]  # order and case do not matter
    photos = tmp_path / "photos"
    write_scene_folder(photos, 6, start=50_000)
    (photos / "broken.jpg").write_bytes(images.truncated(images.rgb_jpeg(3)))
    (photos / "notes.txt").write_text("not an image")
    trainer_runs = executions(cfg, "Trainer")
    summary, trained_now = commands.run(cfg, str(photos), progress=False)
    assert trained_now is False and executions(cfg, "Trainer") == trainer_runs

    results = tmp_path / "results"
    preds = [json.loads(line) for line in (results / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 14 and summary["files"] == 14
    bad = {p["file"]: p["error"] for p in preds if p["error"]}
    assert set(bad) == {"broken.jpg", "notes.txt"}
    assert summary["unreadable"] == 2
    table = summary["table"]
    assert table["threshold_images"] + table["threshold_missed"] == table["total_images"] == 12
    kept = [p for p in preds if p["kept"]]
    assert table["threshold_images"] == len(kept)
    assert all(p["confidence"] >= 0.6 for p in kept)
    assert all(p["confidence"] < 0.6 for p in preds if not p["kept"] and not p["error"])
    assert table["correctly_classified"] == sum(p["class"] == p["truth"] for p in kept)
    for p in kept:
        for img in p["images"]:
            assert Path(img).is_file() and Path(img).parent.name == p["class"]
        assert abs(sum(p["probabilities"].values()) - 1) < 1e-4
    on_disk = json.loads((results / "summary.json").read_text())
    assert on_disk["table"] == table


def test_models_lists_the_pushed_model(trained):
    cfg, outcome = trained
    rows = commands.models(cfg)
    assert len(rows) == 1
    row = rows[0]
    assert row["classes"] == CLASSES and str(row["version"]) == outcome.pushed_version
    assert row["backbone"] == "tiny" and 0 <= row["val_loss"] < 1 and 0 <= row["val_accuracy"] <= 1
    assert set(row["images_per_class"]) == set(CLASSES) and row["trained_at"]
    text = commands.format_models(rows)
    assert "circle,square" in text and outcome.pushed_version in text
