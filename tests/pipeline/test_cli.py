"""The command line refuses bad arguments before any work, naming what to fix."""

import pytest

from keyclass.pipeline.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("KEYCLASS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["dataset", "-c", "cat", "--out", "OUT"], "at least two classes"),
        (["dataset", "-c", "cat, ,dog", "--out", "OUT"], "empty class name"),
        (["dataset", "-c", "cat,dog", "--source", "altavista", "--out", "OUT"], "unknown source 'altavista'"),
        (["dataset", "-c", "cat,dog", "--source", "folder:/no/such/dir", "--out", "OUT"], "not a readable folder"),
        (["dataset", "-c", "cat,dog", "--source", "urls:/no/such/file.txt", "--out", "OUT"], "not a readable file"),
        (["train", "-c", "cat,dog", "--backbone", "vgg16"], "unknown 'vgg16'"),
        (["train", "-c", "cat,dog", "--search-url", "ftp://mirror"], "must be http"),
        (["predict", "-c", "cat,dog", "-p", "/no/such/folder"], "does not exist"),
        (["predict", "-c", "cat,dog", "-p", ".", "-t", "1.5"], "threshold"),
        (["predict", "-c", "cat,dog", "-p", ".", "-t", "0"], "threshold"),
        (["run", "-c", "cat", "-p", "."], "at least two classes"),
        (["predict", "-c", "cat,dog", "-p", ".", "-t", "0.9", "--target-precision", "0.99"], "give one"),
        (
            ["run", "-c", "cat,dog", "-p", ".", "--set", "predict.threshold=0.9", "--target-precision", "0.99"],
            "give one",
        ),
        (
            ["predict", "-c", "cat,dog", "-p", ".", "--target-precision", "1"],
            "predict.target_precision: must be below 1",
        ),
        (
            ["predict", "-c", "cat,dog", "-p", ".", "--target-precision", "0.99", "--confidence", "1"],
            "predict.confidence_level",
        ),
        (["train", "-c", "cat,dog", "--set", "train.max_epochs"], "KEY=VALUE"),
    ],
)
def test_bad_arguments_stop_before_work(capsys, home, tmp_path, argv, message):
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in argv]
    code, _, err = run(capsys, *argv)
    assert code == 2, err
    assert message in err
    assert not (home / "pipelines").exists()  # nothing started


def test_folder_source_without_class_subfolders_is_refused(capsys, home, tmp_path):
    (tmp_path / "photos" / "birds").mkdir(parents=True)
    code, _, err = run(
        capsys, "dataset", "-c", "cat,dog", "--source", f"folder:{tmp_path / 'photos'}", "--out", str(tmp_path / "o")
    )
    assert code == 2 and "none of ['cat', 'dog'] is a subfolder" in err


def test_predict_without_a_model_names_the_classes(capsys, home, tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "a.jpg").write_bytes(b"x")
    code, _, err = run(capsys, "predict", "-c", "Dog,cat", "-p", str(tmp_path / "p"), "--results", str(tmp_path / "r"))
    assert code == 2 and "no model trained on exactly ['cat', 'dog']" in err
    assert not (tmp_path / "r").exists()


def test_predict_refuses_an_empty_folder_and_an_existing_results_folder(capsys, home, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "predict", "-c", "cat,dog", "-p", str(tmp_path / "empty"))
    assert code == 2 and "holds no files" in err
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "a.jpg").write_bytes(b"x")
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "summary.json").write_text("{}")
    code, _, err = run(capsys, "run", "-c", "cat,dog", "-p", str(tmp_path / "p"), "--results", str(tmp_path / "r"))
    assert code == 2 and "--overwrite" in err


def test_models_on_an_empty_home(capsys, home):
    code, out, _ = run(capsys, "models")
    assert code == 0 and "no models yet" in out
