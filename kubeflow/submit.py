"""Submit a compiled keyclass pipeline to Kubeflow Pipelines: one run now, and/or a
recurring run on a cron schedule.

    python -m kubeflow.submit --host https://KFP_HOST --package pipeline.json \\
        --experiment keyclass --run-now --cron "0 0 3 * * 1"

Kubeflow's cron has six fields (seconds first). Credentials come from the environment
(kfp's usual ``KF_PIPELINES_*`` variables or the cluster's service account), never from
the pipeline's parameters, which are recorded in ML Metadata.
"""

from __future__ import annotations

import argparse
import sys


def submit(host: str, package: str, experiment: str, run_now: bool, cron: str | None, job_name: str) -> list[str]:
    """Returns the ids of what it created."""
    import kfp

    client = kfp.Client(host=host)
    exp = client.create_experiment(name=experiment)
    created = []
    if run_now:
        run = client.create_run_from_pipeline_package(
            package, arguments={}, run_name=f"{job_name}-once", experiment_name=experiment
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
        )
        created.append(job.recurring_run_id)
    return created


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", required=True, help="Kubeflow Pipelines API endpoint")
    p.add_argument("--package", required=True, help="compiled pipeline JSON (keyclass compile-kubeflow)")
    p.add_argument("--experiment", default="keyclass")
    p.add_argument("--job-name", default="keyclass-weekly")
    p.add_argument("--run-now", action="store_true", help="start one run now")
    p.add_argument("--cron", help='recurring schedule, six fields, e.g. "0 0 3 * * 1" (Mondays 03:00)')
    args = p.parse_args(argv)
    if not args.run_now and not args.cron:
        p.error("give --run-now, --cron or both")
    for rid in submit(args.host, args.package, args.experiment, args.run_now, args.cron, args.job_name):
        print(rid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
