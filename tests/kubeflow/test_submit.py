"""keyclass submit-kubeflow drives the kfp client: one run now and a recurring run on a cron."""

from types import SimpleNamespace
from unittest import mock

from keyclass.pipeline import kubeflow_submit as submit


def test_run_now_and_recurring_run():
    client = mock.Mock()
    client.create_experiment.return_value = SimpleNamespace(experiment_id="exp-1")
    client.create_run_from_pipeline_package.return_value = SimpleNamespace(run_id="run-1")
    client.create_recurring_run.return_value = SimpleNamespace(recurring_run_id="rec-1")
    with mock.patch("kfp.Client", return_value=client) as make_client:
        ids = submit.submit("https://kfp", "p.json", "keyclass", True, "0 0 3 * * 1", "weekly")
    make_client.assert_called_once_with(host="https://kfp")
    assert ids == ["run-1", "rec-1"]
    kwargs = client.create_recurring_run.call_args.kwargs
    assert kwargs["cron_expression"] == "0 0 3 * * 1" and kwargs["pipeline_package_path"] == "p.json"
    assert kwargs["experiment_id"] == "exp-1" and kwargs["max_concurrency"] == 1


def test_nothing_to_do_is_refused(capsys):
    from keyclass.pipeline.cli import main

    assert main(["submit-kubeflow", "--host", "h", "--package", "p.json"]) == 2
    assert "--run-now, --cron or both" in capsys.readouterr().err
