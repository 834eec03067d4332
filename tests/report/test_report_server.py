"""``keyclass predict --server`` writes a report too: no pipeline lineage (said plainly,
even when the home holds a metadata store), the served model's name, and the
predictions, with Grad-CAM computed through the server for the abstained ones."""

from __future__ import annotations

import html as html_lib
import json

from keyclass.pipeline import commands, metadata
from keyclass.pipeline.config import load_config
from keyclass.pipeline.report import gather
from tests.report.page import Page, external_references


def test_a_server_prediction_gets_a_report_without_lineage(standin, served_models, images, tmp_path):
    home = tmp_path / "home"
    from ml_metadata import metadata_store

    metadata_store.MetadataStore(metadata.sqlite_connection(home / "metadata.sqlite"))  # a store, with no run
    photos = tmp_path / "photos"
    for cls in ("cat", "dog"):
        (photos / cls).mkdir(parents=True)
    for i, data in enumerate(images):
        (photos / ("cat" if i % 2 else "dog") / f"{i}.img").write_bytes(data)
    cfg = load_config(
        overrides={
            "crawl.classes": "fish,dog,cat",
            "image_size": 32,
            "predict.threshold": 0.5,
            "predict.results": str(tmp_path / "results"),
            "predict.server": f"grpc://{standin.grpc_target}",
            "predict.model_name": served_models.model_name,
            "runner.home": str(home),
        }
    )
    summary = commands.predict(cfg, str(photos), progress=False)
    assert summary["report"] == str(tmp_path / "results" / "report.html")
    raw = (tmp_path / "results" / "report.html").read_text()
    html = html_lib.unescape(raw)
    page = Page(raw)
    assert page.h2 == list(gather.SECTIONS.values())
    assert "no pipeline lineage" in " ".join(page.missing)
    assert f"grpc://{standin.grpc_target}" in html and served_models.model_name in html
    assert "none (no pipeline lineage)" in html
    assert "total images" in html  # the prediction section from the server's answers
    # The tiny random model abstains on some images: their heatmaps came from the server.
    rows = [json.loads(line) for line in (tmp_path / "results" / "predictions.jsonl").read_text().splitlines()]
    abstained = [r for r in rows if not r["kept"]]
    assert abstained
    cap = gather.GALLERY_PER_CELL
    expected = sum(
        min(cap, sum(r["class"] == c and r["kept"] == kept for r in rows))
        for c in ("cat", "dog", "fish")
        for kept in (True, False)
    )
    gallery = [im for im in page.images if "gcard" in im["ancestors"]]
    assert len(gallery) == expected
    assert all(im["alt"].startswith("Grad-CAM of") for im in gallery)
    assert external_references(raw) == []
    rec = json.loads((tmp_path / "results" / "run.json").read_text())
    assert rec["server"] == cfg.predict.server and rec["run_id"] == ""
