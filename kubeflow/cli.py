"""``keyclass compile-kubeflow``: the subcommand's arguments and its action."""

from __future__ import annotations

import argparse

from pipeline.config import KeyclassConfig

# Flag -> config key, for the settings only this command has.
FLAGS = {
    "image": "runner.image",
    "pipeline_root": "runner.cloud_pipeline_root",
    "serving_dir": "runner.cloud_serving_dir",
    "beam_runner": "runner.beam_runner",
    "gcp_project": "runner.gcp_project",
    "gcp_region": "runner.gcp_region",
    "temp_location": "runner.dataflow_temp_location",
    "flink_master": "runner.flink_master",
}


def add_compile_parser(sub, add_classes, add_dataset, add_train, add_common) -> None:
    p = sub.add_parser("compile-kubeflow", help="compile the pipeline to a Kubeflow Pipelines spec (JSON)")
    add_classes(p)
    add_dataset(p)
    add_train(p)
    g = p.add_argument_group("kubeflow")
    g.add_argument("--output", required=True, help="pipeline spec JSON to write")
    g.add_argument("--image", help="container image holding keyclass (see kubeflow/Dockerfile)")
    g.add_argument("--pipeline-root", help="gs://... or s3://... pipeline root")
    g.add_argument("--serving-dir", help="where pushed models go (default PIPELINE_ROOT/serving)")
    g.add_argument("--gcp-project", help="Dataflow project")
    g.add_argument("--gcp-region", help="Dataflow region")
    g.add_argument("--temp-location", help="Dataflow temp location gs://...")
    g.add_argument("--flink-master", help="Flink master host:port")
    add_common(p)


def overrides(args: argparse.Namespace) -> dict:
    return {key: getattr(args, flag, None) for flag, key in FLAGS.items()}


def compile_command(cfg: KeyclassConfig, args: argparse.Namespace) -> int:
    from kubeflow.runner import compile_pipeline

    spec = compile_pipeline(cfg, args.output)
    tasks = spec["pipelineSpec"]["root"]["dag"]["tasks"]
    print(f"compiled {len(tasks)} steps for {cfg.runner.image} ({cfg.runner.beam_runner} Beam) to {args.output}")
    return 0
