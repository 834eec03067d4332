"""`keyclass predict --server`: the predict command through gRPC and REST gives the same
results as in-process prediction of the same pushed model."""

import json

import pytest

from keyclass.pipeline import commands
from keyclass.pipeline.config import load_config
from keyclass.serving.types import PredictorError


@pytest.fixture(scope="module")
def photos(tmp_path_factory, images):
    root = tmp_path_factory.mktemp("photos")
    for cls in ("cat", "dog"):
        (root / cls).mkdir()
    for i, data in enumerate(images):
        (root / ("cat" if i % 2 else "dog") / f"{i}.img").write_bytes(data)
    (root / "readme.txt").write_text("not an image")
    return root


def _predict(tmp_path, photos, **predict):
    cfg = load_config(
        overrides={
            "crawl.classes": "fish,dog,cat",
            "image_size": 32,
            "predict.threshold": 0.01,
            "predict.results": str(tmp_path / predict.pop("name")),
            **{f"predict.{k}": v for k, v in predict.items()},
        }
    )
    commands.predict(cfg, str(photos), progress=False)
    rows = [
        json.loads(line) for line in (tmp_path / cfg.predict.results / "predictions.jsonl").read_text().splitlines()
    ]
    return {r["file"]: r for r in rows}


def test_grpc_and_rest_predict_like_in_process(standin, served_models, photos, tmp_path, monkeypatch):
    # In process: the newest local version of the same model, found by class set.
    monkeypatch.setattr(commands.store, "find_model", lambda *a, **k: _stored(served_models))
    local = _predict(tmp_path, photos, name="local")
    grpc = _predict(
        tmp_path, photos, name="grpc", server=f"grpc://{standin.grpc_target}", model_name=served_models.model_name
    )
    rest = _predict(
        tmp_path, photos, name="rest", server=standin.rest_url, model_name=served_models.model_name, label="canary"
    )
    assert set(local) == set(grpc) == set(rest) and local["readme.txt"]["error"]
    for f, row in local.items():
        if row["error"]:
            continue
        for other in (grpc[f], rest[f]):
            assert other["class"] == row["class"]
            for c, p in row["probabilities"].items():
                assert abs(other["probabilities"][c] - p) < 1e-5


def test_a_server_model_with_other_classes_is_refused(standin, served_models, photos, tmp_path):
    cfg = load_config(
        overrides={
            "crawl.classes": "cat,dog",
            "predict.server": f"grpc://{standin.grpc_target}",
            "predict.model_name": served_models.model_name,
            "predict.results": str(tmp_path / "r"),
        }
    )
    with pytest.raises(PredictorError, match="3 classes") as err:
        commands.predict(cfg, str(photos), progress=False)
    assert "['cat', 'dog']" in str(err.value)
    assert not (tmp_path / "r").exists()  # refused before any work


def _stored(served):
    import os

    from keyclass.pipeline.store import StoredModel

    version = served.versions[-1]
    path = os.path.join(served.models_dir, served.model_name, str(version))
    return StoredModel(served.model_name, version, path, {"classes": ["cat", "dog", "fish"]})


def test_target_precision_over_the_server_reads_the_homes_pushed_copy(standin, served_models, photos, tmp_path):
    """TF Serving does not serve keyclass.json; when this home holds the pushed copy of
    the version the server answers with, its held-out scores certify the target."""
    import os
    import shutil

    import numpy as np

    from keyclass.components import calibration as cal
    from keyclass.pipeline.config import ConfigError
    from keyclass.serving import model_layout

    served = f"grpc://{standin.grpc_target}"
    home = tmp_path / "home"

    def predict(name):
        cfg = load_config(
            overrides={
                "runner.home": str(home),
                "crawl.classes": "fish,dog,cat",
                "image_size": 32,
                "predict.target_precision": 0.95,
                "predict.server": served,
                "predict.model_name": served_models.model_name,
                "predict.results": str(tmp_path / name),
            }
        )
        return commands.predict(cfg, str(photos), progress=False)

    with pytest.raises(ConfigError, match="holds no pushed copy of the served version"):
        predict("without")

    newest = served_models.versions[-1]  # what the server answers with, unpinned
    copy = home / "models" / served_models.model_name / str(newest)
    shutil.copytree(os.path.join(served_models.models_dir, served_models.model_name, str(newest)), copy)
    meta_path = model_layout.metadata_path(str(copy))
    meta = json.loads(open(meta_path).read())
    conf = np.r_[np.full(60, 0.999), np.full(10, 0.8)]
    ok = np.r_[np.ones(68, bool), np.zeros(2, bool)]
    cert = cal.certify(conf, ok, 0.95, 0.9, pilot_confidence=conf, pilot_correct=ok)
    meta["calibration"] = cal.metadata_block(
        temperature=1.7,
        ece_before=0.05,
        ece_after=0.02,
        images=70,
        certificates=[cert],
        scores={"calibration": cal.score_record(conf, ok), cal.PILOT: cal.score_record(conf, ok)},
    )
    with open(meta_path, "w") as f:
        json.dump(meta, f)
    summary = predict("with")
    assert summary["threshold"] == pytest.approx(cert.threshold) and cert.threshold == 0.81
    assert summary["certification"]["source"] == "target_precision"
    assert summary["certification"]["held_out_images"] == 70
