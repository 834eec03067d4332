"""--results can never delete the user's files: dangerous folders are refused with exit 2
before any work, only folders keyclass created are ever replaced, and result images
are named uniquely after their input paths."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock
from urllib.parse import unquote

import pytest

from keyclass.pipeline import commands
from keyclass.pipeline.cli import main
from keyclass.pipeline.predict import run as predict_run
from keyclass.pipeline.predict.results_dir import MARKER, ResultsDirError, prepare_results_dir
from tests.fixtures import images as fx
from tests.fixtures.predictor import ScriptedPredictor


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("KEYCLASS_HOME", str(tmp_path / "kc-home"))
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "notes.txt").write_text("mine")
    return tmp_path / "kc-home"


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "photos"
    (root / "cat").mkdir(parents=True)
    (root / "cat" / "1.jpg").write_bytes(fx.rgb_jpeg(1, 64, 48))
    (root / "dog.2.png").write_bytes(fx.rgb_png(2, 64, 48))
    return root


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _no_work():
    """Model loading, training and the demo's run all fail the test if reached."""
    boom = mock.Mock(side_effect=AssertionError("work started"))
    return (
        mock.patch.object(commands, "make_predictor", boom),
        mock.patch.object(commands, "train", boom),
        mock.patch.object(commands, "run", wraps=commands.run),
    )


@pytest.mark.parametrize(
    "which, message",
    [
        ("photos", "is the prediction folder"),
        ("parent", "contains the prediction folder"),
        ("inside", "is inside the prediction folder"),
        ("kc-home", "the keyclass home"),
        ("in-kc-home", "is inside the keyclass home"),
        ("user", "your home folder"),
        ("/", "filesystem root"),
    ],
)
@pytest.mark.parametrize("command", ["predict", "run"])
def test_dangerous_results_folders_are_refused_before_any_work(capsys, home, photos, tmp_path, command, which, message):
    (home / "models").mkdir(parents=True)
    (home / "models" / "keep.txt").write_text("model")
    target = {
        "photos": photos,
        "parent": tmp_path,
        "inside": photos / "cat",
        "kc-home": home,
        "in-kc-home": home / "models",
        "user": tmp_path / "user",
        "/": Path("/"),
    }[which]
    before = _files(tmp_path)
    predictor, train, _ = _no_work()
    with predictor, train:
        code = main([command, "-c", "cat,dog", "-p", str(photos), "--results", str(target), "--overwrite"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err
    assert _files(tmp_path) == before  # nothing deleted, nothing written


def test_overwrite_replaces_only_a_folder_keyclass_created(tmp_path, photos):
    own = tmp_path / "mine"
    own.mkdir()
    (own / "thesis.pdf").write_bytes(b"years of work")
    with pytest.raises(ResultsDirError, match="keyclass did not create it"):
        prepare_results_dir(own, overwrite=True, prediction_root=photos)
    assert (own / "thesis.pdf").read_bytes() == b"years of work"

    made = tmp_path / "results"
    prepare_results_dir(made, overwrite=False, prediction_root=photos)
    assert (made / MARKER).is_file()
    (made / "old.jpg").write_bytes(b"old result")
    with pytest.raises(ResultsDirError, match="--overwrite"):
        prepare_results_dir(made, overwrite=False, prediction_root=photos)
    prepare_results_dir(made, overwrite=True, prediction_root=photos)
    assert sorted(os.listdir(made)) == [MARKER]


def _predict(photos: Path, results: Path, **kw) -> dict:
    return predict_run.predict_folder(
        ScriptedPredictor(["cat", "dog"]),
        ["cat", "dog"],
        photos,
        results,
        threshold=0.5,
        segmentation_fraction=0.5,
        image_size=32,
        progress=False,
        **kw,
    )


def test_predict_folder_never_deletes_its_input(tmp_path, photos):
    before = _files(photos)
    for results in (photos, tmp_path, photos / "cat"):
        with pytest.raises(ResultsDirError):
            _predict(photos, results, batch_size=4, overwrite=True)
    assert _files(photos) == before


def test_the_demo_refuses_a_results_folder_it_did_not_create(capsys, home, tmp_path):
    mine = tmp_path / "user" / "pictures" / "out"
    mine.mkdir(parents=True)
    (mine / "holiday.jpg").write_bytes(b"jpeg")
    with mock.patch.object(commands, "run", side_effect=AssertionError("work started")):
        code = main(["demo", "--results", str(mine)])
    assert code == 2, capsys.readouterr().err
    assert (mine / "holiday.jpg").read_bytes() == b"jpeg"
    assert not (mine.parent / "test-images").exists()


def test_result_names_are_unique_and_lead_back_to_the_input(tmp_path):
    photos = tmp_path / "photos"
    (photos / "a__b").mkdir(parents=True)
    (photos / "a").mkdir()
    (photos / "a" / "b__c.jpg").write_bytes(fx.rgb_jpeg(3, 64, 48))
    (photos / "a__b" / "c.jpg").write_bytes(fx.rgb_jpeg(4, 64, 48))
    (photos / "cat.jpg").write_bytes(fx.rgb_jpeg(5, 64, 48))
    (photos / "cat.png").write_bytes(fx.rgb_png(6, 64, 48))
    (photos / ("long" * 60 + ".jpg")).write_bytes(fx.rgb_jpeg(7, 64, 48))
    results = tmp_path / "results"
    _predict(photos, results, batch_size=2)
    images = sorted(p.name for p in (results / "cat").iterdir())
    assert len(images) == 3 * 5  # three images for each of the five inputs: none overwritten
    stems = {n.rsplit("_", 1)[0] for n in images}
    assert {unquote(s) for s in stems if "~" not in s} == {"a/b__c.jpg", "a__b/c.jpg", "cat.jpg", "cat.png"}
    assert all(len(n.encode()) < 255 for n in images)
