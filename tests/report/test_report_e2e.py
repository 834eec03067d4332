"""The report of real runs through the command line: ``keyclass run`` on the loopback
search engine (LocalDagRunner, SQLite ML Metadata, Beam DirectRunner; tiny backbone at
64 px), with ``--faithfulness``; ``keyclass report`` of a named run; a run whose
dataset the validation gate rejects; and the real report in headless Chromium."""

from __future__ import annotations

import html as html_lib
import json
import re
from pathlib import Path

import pytest
import yaml

from keyclass.pipeline import metadata, store
from keyclass.pipeline.cli import main
from keyclass.pipeline.config import load_config
from keyclass.pipeline.report import gather
from tests.fixtures.engine import FaultEngine
from tests.pipeline.test_e2e import CLASSES, PER_CLASS, add_bad_inputs, scene_jpeg, settings, write_scene_folder
from tests.report.browser import chromium, open_page
from tests.report.page import Page, decode_image, external_references

pytestmark = pytest.mark.e2e
HEADERS = list(gather.SECTIONS.values())


@pytest.fixture(scope="module")
def engine():
    with FaultEngine(classes=CLASSES, images_per_class=PER_CLASS, provider=scene_jpeg) as e:
        add_bad_inputs(e)
        e.add_bytes("square", scene_jpeg("square", 3))  # an exact duplicate
        yield e


def _config(path: Path, home: Path, engine: FaultEngine, **extra) -> Path:
    """The e2e settings as a config file (the CLI reads it like a user's)."""
    flat = settings(home, engine, **extra)
    flat.pop("crawl.classes")  # given with -c, as a user would
    tree: dict = {}
    for key, value in flat.items():
        node = tree
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    path.write_text(yaml.safe_dump(tree))
    return path


@pytest.fixture(scope="module")
def ran(engine, tmp_path_factory, capsys_module):
    tmp = tmp_path_factory.mktemp("report-e2e")
    home = tmp / "home"
    config = _config(tmp / "keyclass.yaml", home, engine)
    photos = tmp / "photos"
    write_scene_folder(photos, 6, start=50_000)
    (photos / "notes.txt").write_text("not an image")
    results = tmp / "results"
    rc = main(
        [
            "run",
            "-c",
            "circle,square",
            "-p",
            str(photos),
            "-t",
            "0.9",
            "--results",
            str(results),
            "--config",
            str(config),
        ]
        + ["--faithfulness", "--set", "predict.faithfulness_steps=4", "--set", "train.max_epochs=3", "--no-progress"]
    )
    out = capsys_module.readouterr().out
    assert rc == 0, out
    return tmp, home, config, results, out


@pytest.fixture(scope="module")
def capsys_module(request):
    """Module-scoped stdout capture (pytest's capsys is function-scoped)."""
    import io
    import sys

    class Capture:
        def readouterr(self):
            value = buf.getvalue()
            buf.seek(0)
            buf.truncate()
            return type("R", (), {"out": value})

    buf = io.StringIO()
    real = sys.stdout
    sys.stdout = Tee(real, buf)
    yield Capture()
    sys.stdout = real


class Tee:
    def __init__(self, *streams):
        self.streams = streams

    def write(self, s):
        for st in self.streams:
            st.write(s)
        return len(s)

    def flush(self):
        for st in self.streams:
            st.flush()


def _printed_report(out: str) -> Path:
    found = re.findall(r"^report: (\S+)", out, re.M)
    assert found, out
    return Path(found[-1])


def test_run_writes_a_report_with_every_section_from_real_outputs(ran):
    tmp, home, config, results, out = ran
    path = _printed_report(out)
    assert path == results / "report.html"
    raw = path.read_text()
    html = html_lib.unescape(raw)
    page = Page(raw)
    assert page.h2 == HEADERS
    missing = " ".join(page.missing)
    for absent in (
        "no pipeline run",
        "did not train",
        "no prediction in",
        "no predictions to explain",
        "no faithfulness",
        "carries no calibration",
    ):
        assert absent not in missing, absent
    # Calibration, from the real outputs: the model's block, the trainer's figures, the
    # selective figures of summary.json, and raw beside calibrated confidences.
    cfg0 = load_config(str(config), {"crawl.classes": "circle,square"})
    model = store.find_model(cfg0.models_dir, cfg0.classes)
    block = model.metadata["calibration"]
    assert f"{block['temperature']:.4g}" in html and "ECE before → after" in html
    for name in ("reliability.png", "risk_coverage.png"):
        assert f"{name} (held-out calibration split, at training)" in html
    summary = json.loads((results / "summary.json").read_text())
    assert summary["coverage"] is not None and "coverage" in html and "selective accuracy" in html
    assert "Reliability on these predictions" in html and "raw " in html
    # Lineage: the run that pushed the model, from ML Metadata.
    cfg = load_config(str(config), {"crawl.classes": "circle,square"})
    conn = metadata.sqlite_connection(cfg.metadata_path)
    run = metadata.pipeline_run(conn, cfg.resolved_pipeline_name)
    assert run.run_id in html and run.pipeline_name in html
    for node in ("ImageCleaner", "StatisticsGen", "Trainer", "Evaluator", "Pusher"):
        for arts in run.nodes[node].outputs.values():
            assert arts[0].uri in html
    pushed = run.artifact("Pusher", "pushed_model").properties["pushed_version"]
    assert f"version <b>{pushed}</b>" in html and "tiny" in html
    # Real funnel reasons with samples, the real gate, the real training history.
    for reason in (
        "too small",
        "truncated",
        "html not image",
        "HTTP 404",
        "169.254.169.254",
        "cross class",
    ):
        assert reason in html, reason
    # The same scene served twice (the engine may re-encode it): a duplicate, shown as
    # a pair beside the picture kept.
    assert "near duplicate" in html or "exact duplicate" in html
    assert [im["alt"] for im in page.images if "pair" in im["ancestors"]][:2] == ["duplicate", "kept"]
    assert "PASSED" in html and "Kept: phase" in html and "BLESSED" in html
    # Faithfulness on every kept prediction, through the real exported model.
    preds = [json.loads(line) for line in (results / "predictions.jsonl").read_text().splitlines()]
    kept = [p for p in preds if p["kept"]]
    assert kept and all(
        set(p["faithfulness"]) == set(("deletion_auc", "insertion_auc", "random_deletion_auc", "random_insertion_auc"))
        for p in kept
    )
    assert f"Faithfulness over {len(kept)} kept predictions" in html
    assert external_references(raw) == []
    for im in page.images:
        img = decode_image(im["src"])
        assert max(img.size) <= 256 or "figure" in im["ancestors"]
    # run.json beside the report: the command, the overrides and the model.
    rec = json.loads((results / "run.json").read_text())
    assert rec["command"] == "run" and rec["run_id"] == run.run_id
    assert rec["overrides"]["predict.faithfulness"] is True


def test_keyclass_report_of_a_named_run(ran, capsys):
    tmp, home, config, results, _ = ran
    cfg = load_config(str(config), {"crawl.classes": "circle,square"})
    run_id = metadata.pipeline_run_ids(metadata.sqlite_connection(cfg.metadata_path), cfg.resolved_pipeline_name)[-1]
    out = tmp / "named.html"
    rc = main(
        [
            "report",
            "-c",
            "square,circle",
            "--config",
            str(config),
            "--run-id",
            run_id,
            "--results",
            str(results),
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    assert f"report: {out}" in capsys.readouterr().out
    page = Page(out.read_text())
    assert page.h2 == HEADERS and run_id in out.read_text()
    # The settings of the run that wrote run.json, not of this command.
    assert "predict.faithfulness" in out.read_text()
    # Its own report it replaces; a file of the user's it never touches (exit 2, first).
    assert main(["report", "-c", "circle,square", "--config", str(config), "--out", str(out)]) == 0
    mine = tmp / "notes.html"
    mine.write_text("<html>my notes</html>")
    capsys.readouterr()
    assert main(["report", "-c", "circle,square", "--config", str(config), "--out", str(mine)]) == 2
    assert "not a keyclass report" in capsys.readouterr().err and mine.read_text() == "<html>my notes</html>"
    rc = main(["report", "-c", "circle,square", "--config", str(config), "--run-id", "no-such-run"])
    err = capsys.readouterr().err
    assert rc == 2 and "no-such-run" in err and run_id in err


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed: run .ci/setup as root")
def test_the_real_report_in_headless_chromium(ran, tmp_path):
    _, _, _, results, _ = ran
    opened = open_page(results / "report.html", tmp_path / "chromium", height=3000)
    assert opened.pixel_std() > 20
    assert opened.page_requests == []
    assert Page(opened.dom).h2 == HEADERS


def test_a_rejected_dataset_still_gets_its_report(ran, engine, capsys):
    tmp, home, _, _, _ = ran
    config = _config(
        tmp / "strict.yaml", home, engine, **{"crawl.min_images_per_class": 59, "crawl.max_images_per_class": 59}
    )
    rc = main(["train", "-c", "circle,square", "--config", str(config)])
    captured = capsys.readouterr()
    assert rc == 1 and "failed validation" in captured.err
    found = re.findall(r"the run's report: (\S+)", captured.err)
    assert found, captured.err
    raw = Path(found[0]).read_text()
    html = html_lib.unescape(raw)
    page = Page(raw)
    assert page.h2 == HEADERS
    assert "REJECTED" in html and "failed at ValidationGate" in html
    assert "fewer than min_images_per_class=59" in html  # the gate's own reasons
    assert "this run did not train" in " ".join(page.missing)


def test_train_prints_its_report_and_a_cached_run_says_so(ran, capsys):
    """A second ``train`` with the same settings reuses every step from the cache."""
    tmp, home, config, _, _ = ran
    rc = main(["train", "-c", "circle,square", "--config", str(config), "--set", "train.max_epochs=3"])
    captured = capsys.readouterr()
    assert rc == 0, captured
    assert "report:" in captured.out, captured.err[-3000:]
    path = _printed_report(captured.out)
    assert path.is_file() and path.parent.parent.parent == home / "reports"
    html = html_lib.unescape(path.read_text())
    assert re.search(r"complete \(\d+ of \d+ steps reused from the cache\)", html)
    assert (path.parent / "run.json").is_file()
