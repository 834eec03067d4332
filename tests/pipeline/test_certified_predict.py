"""`predict --target-precision`: the threshold comes from the model's held-out scores,
an impossible target is refused (exit 2) with what it would take, and any `-t` reports
the certified lower bound on precision. A tiny exported model in a keyclass home."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from keyclass.components import calibration as cal
from keyclass.components.classes import ClassList
from keyclass.pipeline.cli import main

CLASSES = ["cat", "dog"]


def _scores(n_sure: int, n_unsure: int, unsure_wrong: int) -> dict:
    """n_sure right at 0.999, then n_unsure at 0.8 of which unsure_wrong are wrong."""
    conf = np.r_[np.full(n_sure, 0.999), np.full(n_unsure, 0.8)]
    ok = np.r_[np.ones(n_sure + n_unsure - unsure_wrong, bool), np.zeros(unsure_wrong, bool)]
    return cal.score_record(conf, ok)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A home holding one pushed model whose 70 held-out images certify 95 % but not 99 %."""
    from keyclass.components.trainer.export import export_model
    from keyclass.components.trainer.model import build_classifier

    home = tmp_path_factory.mktemp("home")
    held, pilot = _scores(60, 10, 2), _scores(60, 10, 2)
    conf, ok = np.asarray(held["confidence"], float), np.asarray(held["correct"], bool)
    pc, pk = np.asarray(pilot["confidence"], float), np.asarray(pilot["correct"], bool)
    certs = [cal.certify(conf, ok, t, 0.9, pilot_confidence=pc, pilot_correct=pk) for t in cal.STANDARD_TARGETS]
    block = cal.metadata_block(
        temperature=1.3,
        ece_before=0.05,
        ece_after=0.02,
        images=len(conf),
        certificates=certs,
        scores={"calibration": held, cal.PILOT: pilot},
    )
    clf = build_classifier("tiny", 32, CLASSES, weights="none", seed=2)
    path = os.path.join(home, "models", ClassList(CLASSES).model_name, "1700000000")
    export_model(clf, path, metadata={"calibration": block}, temperature=1.3)
    return home


@pytest.fixture
def photos(tmp_path):
    rng = np.random.default_rng(0)
    for cls in CLASSES:
        (tmp_path / "photos" / cls).mkdir(parents=True)
        for i in range(3):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(buf, "PNG")
            (tmp_path / "photos" / cls / f"{i}.png").write_bytes(buf.getvalue())
    return tmp_path / "photos"


def _predict(capsys, home, photos, results, *argv):
    argv = ["predict", "-c", "cat,dog", "-p", str(photos), "--results", str(results), *argv]
    code = main([*argv, "--home", str(home), "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def test_an_impossible_target_is_refused_with_what_it_would_take(capsys, home, photos, tmp_path):
    results = tmp_path / "results"
    code, _, err = _predict(capsys, home, photos, results, "--target-precision", "0.99")
    assert code == 2, err
    assert "cannot certify precision >= 99.00% at 90% confidence from the 70 held-out" in err
    assert "the best it can certify: precision >= 95.00%" in err and "coverage 85.7%" in err
    # 0 errors above 0.8 at coverage 6/7: 230 kept need 269 images, 199 more, 100 per class.
    assert "about 100 more held-out images per class" in err
    assert not results.exists()  # refused before any work


def test_a_certifiable_target_sets_the_threshold_and_the_summary_says_so(capsys, home, photos, tmp_path):
    results = tmp_path / "results"
    code, out, err = _predict(capsys, home, photos, results, "--target-precision", "0.95")
    assert code == 0, err
    summary = json.loads((results / "summary.json").read_text())
    assert summary["threshold"] == 0.81  # the grid point just above the 0.8 level with its errors
    assert summary["certified_precision_lower_bound"] == 0.95
    assert summary["certification"]["source"] == "target_precision"
    assert summary["certification"]["held_out_coverage"] == pytest.approx(60 / 70)
    assert {"coverage", "selective_accuracy", "ece", "aurc"} <= set(summary)
    assert "the lowest certified for precision >= 95.00% at 90% confidence" in out
    preds = [json.loads(line) for line in (results / "predictions.jsonl").read_text().splitlines()]
    for p in preds:
        assert p["abstained"] == (p["confidence"] < 0.81) == (not p["kept"])
        assert 0 < p["raw_confidence"] <= 1


def test_any_threshold_reports_its_certified_lower_bound(capsys, home, photos, tmp_path):
    results = tmp_path / "results"
    code, out, err = _predict(capsys, home, photos, results, "-t", "0.5")
    assert code == 0, err
    summary = json.loads((results / "summary.json").read_text())
    conf = np.r_[np.full(60, 0.999), np.full(10, 0.8)]
    ok = np.r_[np.ones(68, bool), np.zeros(2, bool)]
    want = cal.precision_lower_bound(conf, ok, 0.5, 0.9)
    assert summary["certified_precision_lower_bound"] == pytest.approx(want) and 0.9 < want < 68 / 70
    assert summary["certification"]["source"] == "threshold"
    assert summary["coverage"] == summary["kept"] / summary["predicted"]
    assert f"certified precision at 0.5: >= {want:.2%} at 90% confidence" in out


def test_run_that_trained_says_the_model_is_stored_when_the_target_is_refused(
    capsys, home, photos, tmp_path, monkeypatch
):
    """`run` trains, then cannot certify the target: exit 2, the refusal, the model kept
    for a rerun with a lower target, and the run's report written (the training is not
    lost from view)."""
    import shutil
    from types import SimpleNamespace

    from keyclass.pipeline import commands, run_report

    fresh = tmp_path / "fresh-home"
    fresh.mkdir()
    trained, reported = [], []

    def train(cfg, report=True, command="train"):
        shutil.copytree(os.path.join(home, "models"), os.path.join(fresh, "models"))
        trained.append(command)
        return SimpleNamespace(pushed=True)

    monkeypatch.setattr(commands, "train", train)
    monkeypatch.setattr(
        run_report, "after_failure", lambda cfg, command, error, runs_before=None: reported.append(str(error))
    )
    results = tmp_path / "results"
    argv = ["run", "-c", "cat,dog", "-p", str(photos), "--results", str(results), "--target-precision", "0.99"]
    code = main([*argv, "--home", str(fresh), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert trained == ["run"]
    assert "cannot certify precision >= 99.00%" in err
    assert "the model is trained and stored: `keyclass run` again with a lower --target-precision" in err
    assert len(reported) == 1 and "cannot certify" in reported[0]
    assert not results.exists()
    # The rerun reuses the stored model (no training) and certifies a lower target.
    code = main([*argv[:-1], "0.95", "--home", str(fresh), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert trained == ["run"]
    assert json.loads((results / "summary.json").read_text())["certification"]["target_precision"] == 0.95
