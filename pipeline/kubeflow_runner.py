"""Compiles the keyclass pipeline for Kubeflow Pipelines (or Vertex AI Pipelines) with
TFX's ``KubeflowV2DagRunner``. The pipeline is the one ``create_pipeline`` builds for the
local runner; only the environment settings differ: cloud paths for the pipeline root
and the pushed models, the container image, and the Beam runner's arguments.

The crawl snapshot is a runtime parameter of the compiled pipeline (named
``snapshot``, default the configured ``crawl.snapshot``), so a recurring run refreshes
its crawl by passing a new value (``keyclass submit-kubeflow --snapshot``) without
recompiling. TFX is imported inside the functions: the command line checks the cloud
paths first, in a fraction of a second.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from keyclass.pipeline.config import ConfigError, KeyclassConfig
from keyclass.pipeline.kubeflow_submit import SNAPSHOT_PARAMETER

if TYPE_CHECKING:
    from tfx import v1 as tfx


def cloud_paths(cfg: KeyclassConfig) -> tuple[str, str]:
    """(pipeline root, serving model dir) for the cluster; both must be set."""
    root = cfg.runner.cloud_pipeline_root.rstrip("/")
    serving = cfg.runner.cloud_serving_dir.rstrip("/")
    if not root:
        raise ConfigError("runner.cloud_pipeline_root: set it (e.g. --pipeline-root gs://bucket/keyclass)")
    if not serving:
        serving = f"{root}/serving"
    return f"{root}/{cfg.resolved_pipeline_name}", f"{serving}/{cfg.model_name}"


def snapshot_parameter(cfg: KeyclassConfig):
    """The crawl snapshot as a KFP runtime parameter, defaulting to the configured one."""
    from tfx import v1 as tfx

    return tfx.dsl.experimental.RuntimeParameter(name=SNAPSHOT_PARAMETER, ptype=str, default=cfg.crawl.snapshot)


def build_kubeflow_pipeline(cfg: KeyclassConfig) -> tfx.dsl.Pipeline:
    """The same factory as the local runner, with cluster paths, the snapshot as a
    runtime parameter and no local metadata store (Kubeflow brings its own)."""
    from keyclass.pipeline.pipeline import create_pipeline

    root, serving = cloud_paths(cfg)
    return create_pipeline(
        pipeline_name=cfg.resolved_pipeline_name,
        pipeline_root=root,
        serving_model_dir=serving,
        config=cfg,
        beam_pipeline_args=cfg.beam_pipeline_args(),
        metadata_connection_config=None,
        crawl_snapshot=snapshot_parameter(cfg),
    )


def compile_pipeline(cfg: KeyclassConfig, output: str) -> dict:
    """Write the pipeline spec JSON to ``output`` and return it as a dict."""
    from tfx import v1 as tfx

    out_dir, filename = os.path.split(os.path.abspath(output))
    os.makedirs(out_dir, exist_ok=True)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=cfg.runner.image),
        output_dir=out_dir,
        output_filename=filename,
    )
    # TFX writes a runtime parameter's default nowhere in the spec: it goes to the job's
    # runtimeConfig, where submit_kubeflow reads it back.
    return runner.run(
        build_kubeflow_pipeline(cfg), parameter_values={SNAPSHOT_PARAMETER: cfg.crawl.snapshot}, write_out=True
    )
