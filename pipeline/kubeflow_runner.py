"""Compiles the keyclass pipeline for Kubeflow Pipelines (or Vertex AI Pipelines) with
TFX's ``KubeflowV2DagRunner``. The pipeline is the one ``create_pipeline`` builds for the
local runner; only the environment settings differ: cloud paths for the pipeline root
and the pushed models, the container image, and the Beam runner's arguments."""

from __future__ import annotations

import os

from tfx import v1 as tfx

from keyclass.pipeline.config import ConfigError, KeyclassConfig
from keyclass.pipeline.pipeline import create_pipeline


def cloud_paths(cfg: KeyclassConfig) -> tuple[str, str]:
    """(pipeline root, serving model dir) for the cluster; both must be set."""
    root = cfg.runner.cloud_pipeline_root.rstrip("/")
    serving = cfg.runner.cloud_serving_dir.rstrip("/")
    if not root:
        raise ConfigError("runner.cloud_pipeline_root: set it (e.g. --pipeline-root gs://bucket/keyclass)")
    if not serving:
        serving = f"{root}/serving"
    return f"{root}/{cfg.resolved_pipeline_name}", f"{serving}/{cfg.model_name}"


def build_kubeflow_pipeline(cfg: KeyclassConfig) -> tfx.dsl.Pipeline:
    """The same factory as the local runner, with cluster paths and no local metadata
    store (Kubeflow brings its own ML Metadata)."""
    root, serving = cloud_paths(cfg)
    return create_pipeline(
        pipeline_name=cfg.resolved_pipeline_name,
        pipeline_root=root,
        serving_model_dir=serving,
        config=cfg,
        beam_pipeline_args=cfg.beam_pipeline_args(),
        metadata_connection_config=None,
    )


def compile_pipeline(cfg: KeyclassConfig, output: str) -> dict:
    """Write the pipeline spec JSON to ``output`` and return it as a dict."""
    out_dir, filename = os.path.split(os.path.abspath(output))
    os.makedirs(out_dir, exist_ok=True)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=cfg.runner.image),
        output_dir=out_dir,
        output_filename=filename,
    )
    return runner.run(build_kubeflow_pipeline(cfg), write_out=True)
