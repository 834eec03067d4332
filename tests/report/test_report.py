"""The report from a whole run's outputs (written by hand in the components' shapes):
every section present, the missing-data messages, self-containment, bounded
thumbnails, and the shared data contracts (curation, calibration, faithfulness)."""

from __future__ import annotations

import html as html_lib
import json
import shutil

import pytest

from keyclass.pipeline.report import figures, gather, thumbs
from keyclass.pipeline.report.write import write_report
from tests.report import fixtures
from tests.report.page import Page, decode_image, external_references

HEADERS = list(gather.SECTIONS.values())


def _write(tmp_path, **kwargs):
    """Write the report; returns the result and its HTML with entities resolved."""
    out = tmp_path / "out" / "report.html"
    result = write_report(out, **kwargs)
    return result, html_lib.unescape(out.read_text())


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("full")
    kwargs = fixtures.full_run(tmp)
    result, html = _write(tmp, **kwargs)
    return kwargs, result, html, Page(html)


def test_a_full_run_has_every_section_and_nothing_missing(full):
    _, result, html, page = full
    assert page.h2 == HEADERS
    assert page.missing == []  # nothing says "not available"
    assert result.bytes == result.path.stat().st_size > 0
    assert result.run_id == fixtures.RUN_ID


def test_lineage_names_the_run_the_model_and_the_settings(full):
    kwargs, _, html, _ = full
    assert fixtures.RUN_ID in html and fixtures.PIPELINE in html
    for node in ("ImageCrawler", "Trainer", "Pusher"):
        assert node in html
    assert kwargs["run"].nodes["ImageCleaner"].outputs["report"][0].uri in html  # MLMD artifact URIs
    assert "1767225600" in html and "efficientnet_lite0" in html and "imagenet" in html
    assert "crawl.max_images_per_class" in html  # the override
    assert gather.keyclass_version() in html


def test_the_funnel_shows_every_reason_with_its_samples(full):
    _, _, html, page = full
    for reason in ("too small", "html not image", "HTTP 404", "near duplicate", "label issue"):
        assert reason in html, reason
    assert "label_ok" in html  # curation's funnel stage, in its place
    assert "given circle → suggested square" in html and "label quality 0.04" in html
    # An off-topic picture: the classifier agrees with its class, the rule flagged it.
    assert "off topic: given square" in html and "class distance 41.8 (off-topic beyond 39.3)" in html
    assert "1 of 4 candidate pairs confirmed (cosine ≥ 0.88" in html and "by rule: mislabelled 1, off topic 1" in html
    assert "pHash distance 3" in html and "cosine 0.981" in html
    # The near duplicate pair: both pictures, side by side, in one tile.
    pairs = [im for im in page.images if "pair" in im["ancestors"]]
    assert [im["alt"] for im in pairs] == ["duplicate", "kept"]
    assert "Curation" in html and "embedding" in html
    assert "every line accounted for" in html
    assert "page format changed" in html  # the crawler's engine error


def test_data_training_gate_prediction_calibration_gallery(full):
    _, _, html, page = full
    assert "PASSED" in html and "none" in html  # gate and no anomalies
    assert "Kept: phase 2 (fine-tuning)" in html and "0.36 beat phase 1's 0.41" in html
    assert "BLESSED" in html and "version <b>1767225600</b>" in html
    assert "baseline + 0" in html and "✔ passes" in html
    # Candidate 0.36 with diff -0.04: the latest blessed model had 0.4.
    assert ">0.4<" in html
    for label in ("total images", "threshold accuracy", "circle precision", "square recall"):
        assert label in html
    # Calibration from the model (keyclass.json) and the trainer's figures.
    assert "1.7" in html and "8.10% → <b>1.20%</b>" in html and "none certifiable" in html
    # Prediction-time ECE as a percentage, like the terminal's, and AURC as a number.
    assert '<div class="v">3.00%</div><div class="k">ECE (lower is better)' in html
    assert "threshold <b>0.985</b>, coverage 61.0%" in html
    assert "certified on</td><td>the raw confidence of all 40 held-out images" in html  # two classes
    flat = " ".join(html.split())
    assert "precision at least <b>71.0%</b> with 90.0% confidence, from 63 held-out images" in flat
    for name in ("reliability.png", "risk_coverage.png", "certified precision lower bound", "selective accuracy"):
        assert name in html
    # The gallery: correct, wrong (the confident mistake) and abstained, with scores.
    assert "most confident correct" in html and "most confident wrong" in html and "abstained" in html
    assert "truly circle" in html  # circle/5.jpg predicted square
    assert "raw 0.9" in html  # calibration's raw_confidence beside the confidence
    assert html.count('class="fa" title=') == 8  # every kept prediction shows its faithfulness
    assert html.count("not scored: only kept predictions are") == 4  # the abstained ones say so
    assert "Faithfulness over 8 kept predictions" in html
    gallery_imgs = [im for im in page.images if "gcard" in im["ancestors"]]
    assert len(gallery_imgs) >= 10


def test_no_external_reference_and_no_script(full):
    kwargs, result, _, _ = full
    html = result.path.read_text()
    assert external_references(html) == []
    page = Page(html)
    csp = [a for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]["content"]


def test_the_checker_catches_external_references():
    """The check above can fail: each of these is caught."""
    for bad in (
        '<img src="http://x.example/a.png">',
        '<a href="https://x.example/">x</a>',
        "<script>1</script>",
        '<link rel="stylesheet" href="s.css">',
        '<div style="background: url(//x.example/b.png)"></div>',
        "<style>@import 'x.css';</style>",
        '<img src="data:image/png;base64,AAAA" onerror="fetch(1)">',
        '<img srcset="a.png 2x">',
    ):
        assert external_references(f"<html><body>{bad}</body></html>"), bad
    assert external_references('<a href="#x">in page</a><img src="data:image/jpeg;base64,AA">') == []


def test_thumbnails_are_bounded(full):
    _, _, _, page = full
    assert page.images
    for im in page.images:
        img = decode_image(im["src"])
        if "figure" in im["ancestors"]:
            assert img.width <= thumbs.FIGURE_MAX_WIDTH, (im["alt"], img.size)
        else:
            assert max(img.size) <= thumbs.MAX_SIDE, (im["alt"], img.size)


def test_thumbnail_refuses_a_side_above_the_bound_and_bounds_big_images(tmp_path):
    from PIL import Image

    big = Image.new("RGB", (3000, 1000), (1, 2, 3))
    assert max(thumbs.thumbnail(big, 256).size) == 256
    with pytest.raises(ValueError):
        thumbs.thumbnail(big, 257)
    path = tmp_path / "big.jpg"
    big.save(path)
    assert max(decode_image(thumbs.thumbnail_uri(path, 200)).size) == 200
    (tmp_path / "page.jpg").write_bytes(b"<html>not an image</html>")
    assert thumbs.thumbnail_uri(tmp_path / "page.jpg", 96) is None


def test_a_run_without_curation_says_so_loudly(tmp_path):
    kwargs = fixtures.full_run(tmp_path, calibration=False, faithfulness=False)
    report_json = next(p for p in tmp_path.rglob("report.json") if "curation" in p.read_text())
    rep = json.loads(report_json.read_text())
    rep["curation"] = {"mode": "phash_only", "reason": "backbone tiny has random weights", "near_duplicate": {}}
    report_json.write_text(json.dumps(rep))
    _, html = _write(tmp_path, **kwargs)
    assert '<div class="warn"><b>NO CURATION</b>: backbone tiny has random weights.' in html
    _, embedded = _write(tmp_path / "embedded", **fixtures.full_run(tmp_path / "e", calibration=False))
    assert "NO CURATION" not in embedded


def test_missing_parts_say_so(tmp_path):
    kwargs = fixtures.full_run(tmp_path, curation=False, calibration=False, faithfulness=False)
    # A training run without predictions: the prediction parts say why they are empty.
    no_pred = {**kwargs, "results_dir": ""}
    _, html = _write(tmp_path / "a", **no_pred)
    page = Page(html)
    assert page.h2 == HEADERS
    text = " ".join(page.missing)
    assert "no prediction in this report" in text
    assert "no predictions to explain" in text
    assert "No curation block" in html
    # No calibration anywhere (no block, no trainer figures, no labelled predictions).
    assert "no calibration data" in text

    # A run that stopped before training: no history, no Evaluator.
    run = kwargs["run"]
    for node in ("Trainer", "Evaluator", "Pusher"):
        run.nodes.pop(node)
    _, html = _write(tmp_path / "b", **{**no_pred, "run": run, "model": None})
    text = " ".join(Page(html).missing)
    assert "this run did not train" in text and "did not evaluate a model" in text


def test_a_training_run_with_a_calibrated_model_and_no_predictions(tmp_path):
    """Calibration from the model and the trainer alone: no charts of predictions."""
    kwargs = fixtures.full_run(tmp_path)
    _, html = _write(tmp_path, **{**kwargs, "results_dir": "", "command": "train"})
    page = Page(html)
    assert page.h2 == HEADERS and "reliability.png (held-out calibration split" in html
    assert "Reliability on these predictions" not in html
    assert "the reliability diagram and risk–coverage curve of this run need known true labels" in html


def test_predictions_without_calibration_or_faithfulness_say_so(tmp_path):
    kwargs = fixtures.full_run(tmp_path, calibration=False, faithfulness=False)
    _, html = _write(tmp_path, **kwargs)
    text = " ".join(Page(html).missing)
    assert "the model carries no calibration" in text
    assert "no faithfulness scores: run keyclass predict --faithfulness" in text
    # The predictions still give a reliability diagram and a risk-coverage curve.
    assert "Reliability on these predictions" in html and "Risk–coverage on these predictions" in html


def test_a_server_prediction_without_lineage(tmp_path):
    kwargs = fixtures.full_run(tmp_path)
    inv = {**kwargs["invocation"], "server": "grpc://127.0.0.1:8500"}
    model = gather.ModelInfo(
        "circle-square-0000", "3", "grpc://127.0.0.1:8500", "TF Serving", {"classes": fixtures.CLASSES}
    )
    _, html = _write(tmp_path, **{**kwargs, "run": None, "model": model, "invocation": inv})
    page = Page(html)
    assert page.h2 == HEADERS
    text = " ".join(page.missing)
    assert "no pipeline lineage" in text
    assert "TF Serving endpoint grpc://127.0.0.1:8500" in html
    assert "total images" in html and "Grad-CAM gallery" in html
    assert external_references((tmp_path / "out" / "report.html").read_text()) == []


def test_a_rejected_dataset_shows_the_anomaly_and_the_gate_reasons(tmp_path):
    kwargs = fixtures.full_run(tmp_path, anomaly=True)
    _, html = _write(tmp_path, **kwargs)
    assert "REJECTED" in html
    assert "Unexpected string values" in html and "png (~50%)" in html
    assert "anomalies in eval: image/format" in html


def test_a_run_the_gate_stopped_shows_the_gates_reasons(tmp_path):
    """TFX removes a failed step's outputs; the reasons come from the run's error."""
    kwargs = fixtures.full_run(tmp_path)
    run = kwargs["run"]
    gate = run.nodes["ValidationGate"]
    gate.state, gate.outputs = "FAILED", {}
    for node in ("Trainer", "Evaluator", "Pusher"):
        run.nodes.pop(node)
    error = "DatasetRejected: the dataset failed validation:\n  - class 'circle' has 5 clean images, fewer than min_images_per_class=20"
    inv = {**kwargs["invocation"], "error": error}
    _, html = _write(tmp_path, **{**kwargs, "results_dir": "", "model": None, "invocation": inv})
    assert "REJECTED" in html and "failed at ValidationGate" in html
    assert "<li class=\"no\">class 'circle' has 5 clean images, fewer than min_images_per_class=20</li>" in html
    assert "stopped with an error" in html


def test_run_json_is_recorded_beside_a_commands_report(tmp_path):
    kwargs = fixtures.full_run(tmp_path)
    out = tmp_path / "rep" / "report.html"
    write_report(out, **kwargs, record=True)
    rec = json.loads((tmp_path / "rep" / "run.json").read_text())
    assert rec["run_id"] == fixtures.RUN_ID and rec["overrides"] == {"crawl.max_images_per_class": 8}


def test_a_missing_raw_file_becomes_a_placeholder_tile(tmp_path):
    kwargs = fixtures.full_run(tmp_path)
    shutil.rmtree(kwargs["run"].artifact("ImageCrawler", "raw_images").uri + "/images")
    _, html = _write(tmp_path, **kwargs)
    page = Page(html)
    assert not [im for im in page.images if "tile" in im["ancestors"] and "gcard" not in im["ancestors"]]
    assert 'class="ph"' in html and page.h2 == HEADERS


def test_the_threshold_point_on_the_risk_coverage_curve():
    points = [(0.99, True), (0.95, False), (0.9, True), (0.5, False)]
    assert figures.at_threshold(points, 0.92) == (0.5, 0.5)
    assert figures.at_threshold(points, 0.9) == (0.75, pytest.approx(1 / 3))
    assert figures.at_threshold(points, 0.999) == (0.0, None)


def test_config_differences_lists_only_changed_settings():
    assert gather.config_differences({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": 1, "c": 0}, "d": 3}) == {"a.c": 2}


def test_the_templates_are_package_data():
    """An installed wheel carries the templates: pyproject's package-data globs match
    every file under templates/ (a wheel built here held all three)."""
    import fnmatch

    import tomli as tomllib

    from keyclass.pipeline.report import render

    project = tomllib.loads((render.TEMPLATES.parents[2] / "pyproject.toml").read_text())
    globs = project["tool"]["setuptools"]["package-data"]["keyclass.pipeline.report"]
    files = sorted(p.relative_to(render.TEMPLATES.parent).as_posix() for p in render.TEMPLATES.iterdir())
    assert files and all(any(fnmatch.fnmatch(f, g) for g in globs) for f in files), (files, globs)
