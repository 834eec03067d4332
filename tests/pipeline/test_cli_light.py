"""The command line answers without the heavy stacks: a bad argument, ``keyclass
models``, ``keyclass config`` and ``--version`` never import TensorFlow, TFX or Beam.
Each case runs in a fresh Python process, where ``sys.modules`` tells what was imported.
(How fast: benchmarks/bench_cli.py.)"""

import json
import os
import subprocess
import sys
from importlib.metadata import version

import pytest
import yaml

from keyclass.serving import model_layout

HEAVY = ("tensorflow", "tfx", "apache_beam", "keras", "ml_metadata", "tensorflow_data_validation", "kfp")

PROBE = """
import json, sys
from keyclass.pipeline.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:
    code = e.code
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY))
print("PROBE " + json.dumps({"code": code, "heavy": heavy}))
""".replace("HEAVY", repr(HEAVY))


def probe(*argv: str, env: dict | None = None, cwd=None) -> tuple[int, list[str], str, str]:
    """Run the CLI in a new process: (exit code, heavy packages imported, stdout, stderr)."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=120,
    )
    lines = proc.stdout.splitlines()
    result = json.loads(next(line for line in lines if line.startswith("PROBE "))[6:])
    out = "\n".join(line for line in lines if not line.startswith("PROBE "))
    return result["code"], result["heavy"], out, proc.stderr


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


@pytest.fixture
def package(tmp_path):
    path = tmp_path / "pipeline.json"
    path.write_text(json.dumps({"pipelineSpec": {"root": {}}}))
    return str(path)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "-c", "cat"], "at least two classes"),
        (["train", "-c", "cat,dog", "--backbone", "vgg16"], "unknown 'vgg16'"),
        (["dataset", "-c", "cat,dog", "--source", "folder:/no/such/dir", "--out", "OUT"], "not a readable folder"),
        (["train", "-c", "cat,dog", "--source", "urls:/no/such/file.txt"], "not a readable file"),
        (["predict", "-c", "cat,dog", "-p", "PHOTOS"], "no model trained on exactly"),
        (["run", "-c", "cat,dog", "-p", "/no/such/folder"], "does not exist"),
        (["compile-kubeflow", "-c", "cat,dog", "--output", "OUT"], "cloud_pipeline_root"),
        (["submit-kubeflow", "--host", "h", "--package", "PACKAGE", "--cron", "0 3 * * 1"], "six fields"),
        (["demo", "--per-class", "0"], "max_images_per_class"),
        (["train", "-c", "cat,dog", "--set", "train.max_epochs=many"], "expected int"),
    ],
)
def test_a_bad_argument_is_refused_before_any_heavy_import(tmp_path, home, package, argv, message):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"x")
    subst = {"OUT": str(tmp_path / "out"), "PHOTOS": str(tmp_path / "photos"), "PACKAGE": package}
    code, heavy, _, err = probe(*[subst.get(a, a) for a in argv], env={"KEYCLASS_HOME": str(home)}, cwd=tmp_path)
    assert code == 2, err
    assert message in err
    assert heavy == [], f"imported {heavy} before refusing"
    assert not (home / "pipelines").exists()


def test_models_reads_the_metadata_without_tensorflow(home):
    version_dir = home / "models" / "cat-dog-1234abcd" / "1700000000"
    version_dir.mkdir(parents=True)
    (version_dir / model_layout.SAVED_MODEL_PB).write_bytes(b"not read")
    model_layout.write_metadata(
        str(version_dir),
        {"classes": ["cat", "dog"], "val_loss": 0.1234, "val_accuracy": 0.97, "backbone": "efficientnet_lite0"},
    )
    code, heavy, out, err = probe("models", "--home", str(home))
    assert code == 0, err
    assert "cat,dog" in out and "1700000000" in out and "0.1234" in out and "efficientnet_lite0" in out
    assert heavy == []
    code, heavy, out, _ = probe("models", "--json", "--home", str(home))
    assert json.loads(out)[0]["classes"] == ["cat", "dog"] and heavy == []


def test_version(capsys):
    from keyclass.pipeline.cli import main

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"keyclass {version('keyclass')}"
    code, heavy, out, _ = probe("--version")
    assert (code, heavy, out.strip()) == (0, [], f"keyclass {version('keyclass')}")


def test_config_says_where_each_setting_came_from(tmp_path):
    cfg_file = tmp_path / "keyclass.yaml"
    cfg_file.write_text(
        yaml.safe_dump(
            {
                "crawl": {"max_images_per_class": 300, "snapshot": "2026-W48", "search_url": {"bing": "http://m/s"}},
                "train": {"batch_size": 8},
                "image_size": 96,
            }
        )
    )
    argv = ["config", "--json", "--config", str(cfg_file), "-c", "Dog,cat", "--max-images", "50"]
    argv += ["--set", "train.batch_size=4", "--set", "gate.max_val_loss=0.4"]
    code, heavy, out, err = probe(*argv, env={"KEYCLASS_HOME": str(tmp_path / "envhome")})
    assert code == 0, err
    assert heavy == []
    rows = {r["setting"]: (r["value"], r["from"]) for r in json.loads(out)}
    assert rows["crawl.classes"] == (["cat", "dog"], "flag -c/--classes")
    assert rows["crawl.max_images_per_class"] == (50, "flag --max-images")  # the flag beats the file
    assert rows["crawl.snapshot"] == ("2026-W48", f"config file {cfg_file}")
    assert rows["image_size"] == (96, f"config file {cfg_file}")
    assert rows["crawl.search_url"] == ({"bing": "http://m/s"}, f"config file {cfg_file}")
    assert rows["train.batch_size"] == (4, "--set train.batch_size")  # --set beats the file
    assert rows["gate.max_val_loss"] == (0.4, "--set gate.max_val_loss")
    assert rows["runner.home"] == (str(tmp_path / "envhome"), "environment KEYCLASS_HOME")
    assert rows["train.backbone"] == ("resnet50", "default")
    code, _, out, _ = probe("config", "--home", str(tmp_path / "h"), env={"KEYCLASS_HOME": ""})
    table = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert table["runner.home"].endswith("flag --home") and table["crawl.sources"].endswith("default")


def test_config_refuses_a_bad_setting(tmp_path):
    code, heavy, _, err = probe("config", "--set", "clean.eval_fraction=1.5")
    assert code == 2 and "eval_fraction" in err and heavy == []
