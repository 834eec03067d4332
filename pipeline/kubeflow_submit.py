"""Submit a compiled keyclass pipeline to Kubeflow Pipelines: one run now, and/or a
recurring run on a cron schedule (``keyclass submit-kubeflow``).

    keyclass submit-kubeflow --host https://KFP_HOST --package pipeline.json \\
        --experiment keyclass --run-now --cron "0 0 3 * * 1"

Kubeflow's cron has six fields (seconds first). Credentials come from the environment
(kfp's usual ``KF_PIPELINES_*`` variables or the cluster's service account), never from
the pipeline's parameters, which are recorded in ML Metadata.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from keyclass.components.errors import ConfigError

# The pipeline's runtime parameter for the crawl snapshot (see kubeflow_runner).
SNAPSHOT_PARAMETER = "snapshot"


def read_package(package: str) -> dict:
    """The compiled pipeline job (``keyclass compile-kubeflow``'s JSON), checked."""
    path = Path(package)
    try:
        job = json.loads(path.read_text())
    except OSError as e:
        raise ConfigError(f"--package {path}: cannot read it ({e.strerror})") from None
    except ValueError:
        raise ConfigError(f"--package {path}: not JSON; compile it with keyclass compile-kubeflow") from None
    if not isinstance(job, dict) or "pipelineSpec" not in job:
        raise ConfigError(f"--package {path}: not a compiled pipeline (no pipelineSpec)")
    return job


def check_submission(package: str, run_now: bool, cron: str | None) -> None:
    """Refuse a submission that cannot work before the Kubeflow client loads."""
    if not run_now and not cron:
        raise ConfigError("submit-kubeflow: give --run-now, --cron or both")
    if cron is not None and len(cron.split()) != 6:
        raise ConfigError(f'--cron {cron!r}: Kubeflow\'s cron has six fields, seconds first, e.g. "0 0 3 * * 1"')
    read_package(package)


def run_arguments(job: dict, snapshot: str | None) -> dict[str, str]:
    """The runtime parameters for a run: ``snapshot`` when given, else the compiled
    default (the job's runtimeConfig), for a pipeline that declares the parameter."""
    declared = job["pipelineSpec"].get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    if SNAPSHOT_PARAMETER not in declared:
        return {}
    if snapshot is None:
        compiled = job.get("runtimeConfig", {}).get("parameters", {}).get(SNAPSHOT_PARAMETER, {})
        snapshot = compiled.get("stringValue", "")
    return {SNAPSHOT_PARAMETER: snapshot}


def write_pipeline_spec(job: dict, directory: str) -> str:
    """The job's PipelineSpec as the YAML file the kfp client reads (it takes .yaml,
    .zip or .tar.gz packages holding a PipelineSpec, not TFX's PipelineJob JSON)."""
    import yaml

    path = os.path.join(directory, "pipeline.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(job["pipelineSpec"], f, sort_keys=False)
    return path


def submit(
    host: str,
    package: str,
    experiment: str,
    run_now: bool,
    cron: str | None,
    job_name: str,
    snapshot: str | None = None,
) -> list[str]:
    """Returns the ids of what it created. ``snapshot`` sets the crawl snapshot runtime
    parameter for these runs; without it they use the compiled default."""
    import kfp

    job = read_package(package)
    arguments = run_arguments(job, snapshot)
    client = kfp.Client(host=host)
    exp = client.create_experiment(name=experiment)
    created = []
    with tempfile.TemporaryDirectory(prefix="keyclass-kfp-") as tmp:
        spec_path = write_pipeline_spec(job, tmp)
        if run_now:
            run = client.create_run_from_pipeline_package(
                spec_path, arguments=arguments, run_name=f"{job_name}-once", experiment_name=experiment
            )
            created.append(run.run_id)
        if cron:
            recurring = client.create_recurring_run(
                experiment_id=exp.experiment_id,
                job_name=job_name,
                cron_expression=cron,
                pipeline_package_path=spec_path,
                max_concurrency=1,
                no_catchup=True,
                params=arguments or None,
            )
            created.append(recurring.recurring_run_id)
    return created
