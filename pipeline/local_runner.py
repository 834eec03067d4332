"""Runs the pipeline locally: LocalDagRunner, SQLite ML Metadata, Beam DirectRunner.

``run_local(config)`` builds the pipeline from the one configuration and runs it, then
reads what the nodes produced back from ML Metadata.
"""

from __future__ import annotations

import dataclasses
import json
import os

from absl import logging
from tfx import v1 as tfx

from keyclass.components.pusher.executor import NOT_PUSHED_REASON
from keyclass.pipeline import metadata
from keyclass.pipeline.config import KeyclassConfig
from keyclass.pipeline.pipeline import create_pipeline


@dataclasses.dataclass
class RunOutcome:
    """What one local run produced (artifact URIs from ML Metadata)."""

    examples_uri: str = ""
    report_uri: str = ""
    raw_images_uri: str = ""
    model_uri: str = ""
    blessed: bool | None = None
    pushed: bool | None = None
    pushed_path: str = ""
    pushed_version: str = ""
    not_pushed_reason: str = ""  # a blessed model the Pusher refused (failed calibration)
    eval_metrics: dict = dataclasses.field(default_factory=dict)


def build_local_pipeline(cfg: KeyclassConfig, ingestion_only: bool = False) -> tfx.dsl.Pipeline:
    """The pipeline with local paths from ``cfg`` (home, pipeline root, SQLite store)."""
    return create_pipeline(
        pipeline_name=cfg.resolved_pipeline_name,
        pipeline_root=str(cfg.pipeline_root),
        serving_model_dir=str(cfg.models_dir / cfg.model_name),
        config=cfg,
        beam_pipeline_args=cfg.beam_pipeline_args(),
        metadata_connection_config=metadata.sqlite_connection(cfg.metadata_path),
        ingestion_only=ingestion_only,
    )


def _uri(outputs: dict, key: str) -> str:
    arts = outputs.get(key) or []
    return arts[0].uri if arts else ""


def collect_outcome(cfg: KeyclassConfig, ingestion_only: bool) -> RunOutcome:
    conn = metadata.sqlite_connection(cfg.metadata_path)
    name = cfg.resolved_pipeline_name
    out = RunOutcome()
    crawl = metadata.latest_outputs(conn, name, "ImageCrawler")
    clean = metadata.latest_outputs(conn, name, "ImageCleaner")
    out.raw_images_uri = _uri(crawl, "raw_images")
    out.examples_uri = _uri(clean, "examples")
    out.report_uri = _uri(clean, "report")
    if ingestion_only:
        return out
    out.model_uri = _uri(metadata.latest_outputs(conn, name, "Trainer"), "model")
    ev = metadata.latest_outputs(conn, name, "Evaluator")
    blessing = (ev.get("blessing") or [None])[0]
    if blessing is not None:
        out.blessed = bool(blessing.custom_properties["blessed"].int_value)
    out.eval_metrics = read_eval_metrics(_uri(ev, "evaluation"))
    pushed = (metadata.latest_outputs(conn, name, "Pusher").get("pushed_model") or [None])[0]
    if pushed is not None:
        props = pushed.custom_properties
        out.pushed = bool(props["pushed"].int_value) if "pushed" in props else None
        out.pushed_path = props["pushed_destination"].string_value if "pushed_destination" in props else ""
        out.pushed_version = props["pushed_version"].string_value if "pushed_version" in props else ""
        out.not_pushed_reason = props[NOT_PUSHED_REASON].string_value if NOT_PUSHED_REASON in props else ""
    return out


def read_eval_metrics(evaluation_uri: str) -> dict:
    """Overall-slice metric values of the candidate model from a TFMA evaluation."""
    if not evaluation_uri or not os.path.isdir(evaluation_uri):
        return {}
    import tensorflow_model_analysis as tfma

    result = tfma.load_eval_result(evaluation_uri)
    metrics: dict = {}
    for slice_key, per_output in result.slicing_metrics:
        if slice_key:
            continue
        for _, by_sub in per_output.items():
            for _, values in by_sub.items():
                for metric, value in values.items():
                    if "doubleValue" in value:
                        metrics[metric] = value["doubleValue"]
    return metrics


def run_local(cfg: KeyclassConfig, ingestion_only: bool = False) -> RunOutcome:
    """Run the pipeline with the LocalDagRunner; raise if a component fails."""
    cfg.home.mkdir(parents=True, exist_ok=True)
    logging.info("keyclass: running %s (%s)", cfg.resolved_pipeline_name, json.dumps(cfg.crawl.classes))
    tfx.orchestration.LocalDagRunner().run(build_local_pipeline(cfg, ingestion_only))
    return collect_outcome(cfg, ingestion_only)
