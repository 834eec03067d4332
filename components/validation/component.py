"""TFX components around the rules: ``CurateSchema`` and ``ValidationGate``.

The pipeline makes the Trainer depend on ``ValidationGate``; the gate raises when the
dataset has anomalies or is unbalanced, so a bad dataset stops the run before training.
"""

import json
import os

from absl import logging
from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2
from tfx import v1 as tfx
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import io_utils

from keyclass.components.validation import rules

SCHEMA_FILE = "schema.pbtxt"
STATS_FILE = "FeatureStats.pb"  # StatisticsGen's per-split file


class DatasetRejected(RuntimeError):
    """The validation gate refused the dataset; the message lists every problem."""


def _read_per_split(artifact, filename: str, proto_cls) -> dict:
    """``{split: proto}`` from ``Split-<name>/<filename>`` of a TFX per-split artifact."""
    out = {}
    for split in artifact_utils.decode_split_names(artifact.split_names):
        msg = proto_cls()
        with fileio.open(os.path.join(artifact_utils.get_split_uri([artifact], split), filename), "rb") as f:
            msg.ParseFromString(f.read())
        out[split] = msg
    return out


def _image_stats_everywhere(stats: dict[str, statistics_pb2.DatasetFeatureStatisticsList]) -> bool:
    """Whether TFDV computed image statistics for every split (100 images or more)."""
    return all(rules.has_image_stats(s) for s in stats.values())


@tfx.dsl.components.component
def CurateSchema(
    schema: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Schema],
    statistics: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleStatistics],
    curated_schema: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.Schema],
    classes_json: tfx.dsl.components.Parameter[str],
) -> None:
    """SchemaGen's inferred schema plus keyclass's rules (see rules.curate_schema)."""
    inferred = io_utils.SchemaReader().read(os.path.join(schema.uri, SCHEMA_FILE))
    stats = _read_per_split(statistics, STATS_FILE, statistics_pb2.DatasetFeatureStatisticsList)
    curated = rules.curate_schema(inferred, json.loads(classes_json), image_stats=_image_stats_everywhere(stats))
    io_utils.write_pbtxt_file(os.path.join(curated_schema.uri, SCHEMA_FILE), curated)


@tfx.dsl.components.component
def ValidationGate(
    examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    statistics: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleStatistics],
    anomalies: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleAnomalies],
    verdict: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.InfraBlessing],
    classes_json: tfx.dsl.components.Parameter[str],
    balance_tolerance: tfx.dsl.components.Parameter[float],
    min_images_per_class: tfx.dsl.components.Parameter[int],
) -> None:
    """Raise DatasetRejected (stopping the pipeline) unless the dataset is fit to train."""
    stats = _read_per_split(statistics, STATS_FILE, statistics_pb2.DatasetFeatureStatisticsList)
    undecodable = {}
    if not _image_stats_everywhere(stats):  # TFDV checks no image (see rules.curate_schema)
        for split in stats:
            files = fileio.glob(os.path.join(artifact_utils.get_split_uri([examples], split), "*"))
            undecodable[split] = rules.undecodable_images(files)
    result = rules.judge(
        _read_per_split(anomalies, "SchemaDiff.pb", anomalies_pb2.Anomalies),
        stats,
        json.loads(classes_json),
        balance_tolerance=balance_tolerance,
        min_images_per_class=min_images_per_class,
        undecodable_by_split=undecodable,
    )
    with fileio.open(os.path.join(verdict.uri, "verdict.json"), "w") as f:
        f.write(
            json.dumps({"ok": result.ok, "problems": result.problems, "class_counts": result.class_counts}, indent=2)
        )
    if not result.ok:
        raise DatasetRejected("the dataset failed validation:\n  - " + "\n  - ".join(result.problems))
    verdict.set_int_custom_property("blessed", 1)
    logging.info("Validation gate passed: %s", result.class_counts)


__all__ = ["CurateSchema", "ValidationGate", "DatasetRejected"]
