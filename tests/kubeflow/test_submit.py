"""keyclass submit-kubeflow drives the kfp client: one run now and a recurring run on a
cron, with the crawl snapshot as the runtime parameter, from a really compiled package."""

from types import SimpleNamespace
from unittest import mock

import pytest
from kfp.client import client as kfp_client

from keyclass.pipeline import kubeflow_submit as submit
from keyclass.pipeline.cli import main
from keyclass.pipeline.config import load_config
from keyclass.pipeline.kubeflow_runner import compile_pipeline


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kfp")
    cfg = load_config(
        overrides={
            "crawl.classes": "cat,dog",
            "crawl.snapshot": "2026-W48",
            "runner.home": str(tmp / "home"),
            "runner.cloud_pipeline_root": "gs://acme-bucket/keyclass",
        }
    )
    path = tmp / "pipeline.json"
    compile_pipeline(cfg, str(path))
    return str(path)


def _client(seen: list):
    """A kfp.Client double that reads each package the way kfp's own client does."""

    def read(path, **_):
        # kfp 2.5 accepts .yaml/.zip/.tar.gz packages holding a PipelineSpec.
        seen.append(kfp_client._extract_pipeline_yaml(path).pipeline_spec)
        return SimpleNamespace(run_id="run-1")

    def read_recurring(**kwargs):
        seen.append(kfp_client._extract_pipeline_yaml(kwargs["pipeline_package_path"]).pipeline_spec)
        return SimpleNamespace(recurring_run_id="rec-1")

    client = mock.Mock()
    client.create_experiment.return_value = SimpleNamespace(experiment_id="exp-1")
    client.create_run_from_pipeline_package.side_effect = read
    client.create_recurring_run.side_effect = read_recurring
    return client


def test_run_now_and_recurring_run_with_the_compiled_snapshot(package):
    seen = []
    client = _client(seen)
    with mock.patch("kfp.Client", return_value=client) as make_client:
        ids = submit.submit("https://kfp", package, "keyclass", True, "0 0 3 * * 1", "weekly")
    make_client.assert_called_once_with(host="https://kfp")
    assert ids == ["run-1", "rec-1"]
    assert client.create_run_from_pipeline_package.call_args.kwargs["arguments"] == {"snapshot": "2026-W48"}
    kwargs = client.create_recurring_run.call_args.kwargs
    assert kwargs["cron_expression"] == "0 0 3 * * 1" and kwargs["params"] == {"snapshot": "2026-W48"}
    assert kwargs["experiment_id"] == "exp-1" and kwargs["max_concurrency"] == 1
    assert len(seen) == 2 and all("snapshot" in spec.root.input_definitions.parameters for spec in seen)
    assert {t for t in seen[0].root.dag.tasks} >= {"ImageCrawler", "ImageCleaner", "Trainer", "Pusher"}


def test_a_new_snapshot_reaches_the_runs_without_recompiling(package):
    client = _client([])
    with mock.patch("kfp.Client", return_value=client):
        submit.submit("https://kfp", package, "keyclass", True, "0 0 3 * * 1", "weekly", snapshot="2026-W49")
    assert client.create_run_from_pipeline_package.call_args.kwargs["arguments"] == {"snapshot": "2026-W49"}
    assert client.create_recurring_run.call_args.kwargs["params"] == {"snapshot": "2026-W49"}


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "--run-now, --cron or both"),
        (["--cron", "0 3 * * 1"], "six fields"),
    ],
)
def test_a_submission_that_cannot_work_is_refused(capsys, package, extra, message):
    assert main(["submit-kubeflow", "--host", "h", "--package", package, *extra]) == 2
    assert message in capsys.readouterr().err


def test_a_package_that_is_not_a_compiled_pipeline_is_refused(capsys, tmp_path):
    (tmp_path / "x.json").write_text('{"a": 1}')
    assert main(["submit-kubeflow", "--host", "h", "--package", str(tmp_path / "x.json"), "--run-now"]) == 2
    assert "not a compiled pipeline" in capsys.readouterr().err
    assert main(["submit-kubeflow", "--host", "h", "--package", str(tmp_path / "nope.json"), "--run-now"]) == 2
    assert "cannot read it" in capsys.readouterr().err
