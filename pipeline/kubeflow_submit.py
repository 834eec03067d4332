"""Submit a compiled keyclass pipeline to Kubeflow Pipelines: one run now, and/or a
recurring run on a cron schedule (``keyclass submit-kubeflow``).

    keyclass submit-kubeflow --host https://KFP_HOST --package pipeline.json \\
        --experiment keyclass --run-now --cron "0 0 3 * * 1"

Kubeflow's cron has six fields (seconds first). Credentials come from the environment
(kfp's usual ``KF_PIPELINES_*`` variables or the cluster's service account), never from
the pipeline's parameters, which are recorded in ML Metadata.
"""

from __future__ import annotations

# The pipeline's runtime parameter for the crawl snapshot (see kubeflow_runner).
SNAPSHOT_PARAMETER = "snapshot"


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

    client = kfp.Client(host=host)
    exp = client.create_experiment(name=experiment)
    arguments = {SNAPSHOT_PARAMETER: snapshot} if snapshot else {}
    created = []
    if run_now:
        run = client.create_run_from_pipeline_package(
            package, arguments=arguments, run_name=f"{job_name}-once", experiment_name=experiment
        )
        created.append(run.run_id)
    if cron:
        job = client.create_recurring_run(
            experiment_id=exp.experiment_id,
            job_name=job_name,
            cron_expression=cron,
            pipeline_package_path=package,
            max_concurrency=1,
            no_catchup=True,
            params=arguments or None,
        )
        created.append(job.recurring_run_id)
    return created
