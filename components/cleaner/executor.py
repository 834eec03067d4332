"""ImageCleaner executor: read the manifest, run the cleaning pipeline, mark the outputs.

``Do()`` unpacks and validates; the work lives in :mod:`components.cleaner.stages`
(Beam) and :mod:`components.cleaner.funnel` (pure decisions). The Beam pipeline comes
from ``self._make_beam_pipeline()``, so the pipeline's ``beam_pipeline_args`` (DirectRunner
in multi-processing mode locally, Dataflow or Flink at scale) reach it.
"""

from __future__ import annotations

import json
import os
from typing import Any

from absl import logging
from tfx import types
from tfx.dsl.components.base import base_beam_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils

from keyclass.components import layout
from keyclass.components.cleaner import funnel, progress, spec, stages


class ManifestError(ValueError):
    """The RawImages manifest is missing or malformed; the message names file and line."""


def read_manifest(raw_uri: str) -> list[funnel.Record]:
    """Every manifest line as a Record (``index`` = line number from 0, blank lines skipped)."""
    path = os.path.join(raw_uri, layout.MANIFEST)
    if not fileio.exists(path):
        raise ManifestError(f"RawImages: {path} does not exist")
    records = []
    with fileio.open(path, "r") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as e:
                raise ManifestError(f"RawImages: {path} line {lineno} is not JSON ({e})") from None
            if not isinstance(rec, dict):
                raise ManifestError(f"RawImages: {path} line {lineno} is not a JSON object")
            records.append(funnel.Record.from_manifest(len(records), rec))
    return records


class Executor(base_beam_executor.BaseBeamExecutor):
    """Cleans a RawImages artifact into train/eval/calibration Examples and a CleaningReport."""

    def _runs_locally(self) -> bool:
        """Beam's DirectRunner (the default): workers share this machine's disk."""
        runners = [a.split("=", 1)[1] for a in self._beam_pipeline_args or [] if a.startswith("--runner=")]
        return not runners or runners[-1] in ("DirectRunner", "direct")

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        raw = artifact_utils.get_single_instance(input_dict[spec.RAW_IMAGES_KEY])
        examples = artifact_utils.get_single_instance(output_dict[spec.EXAMPLES_KEY])
        report = artifact_utils.get_single_instance(output_dict[spec.REPORT_KEY])
        settings = spec.settings_from_exec_properties(exec_properties)
        records = read_manifest(raw.uri)
        logging.info("ImageCleaner: %d manifest records from %s", len(records), raw.uri)

        for split in stages.SPLITS:
            fileio.makedirs(stages.split_dir(examples.uri, split))
        fileio.makedirs(report.uri)
        files = sum(len(batch) for batch in stages.file_batches(records, settings.classes))
        with progress.ProgressBar(files, enabled=self._runs_locally()) as bar:
            with self._make_beam_pipeline() as p:
                stages.build_pipeline(p, records, raw.uri, settings, examples.uri, report.uri, bar.dir)

        examples.split_names = artifact_utils.encode_split_names(list(stages.SPLITS))
        with fileio.open(os.path.join(report.uri, layout.REPORT), "r") as f:
            totals = json.load(f)["totals"]
        for outcome, n in totals["outcomes"].items():
            report.set_int_custom_property(f"num_{outcome}", int(n))
        logging.info("ImageCleaner: %s", totals["outcomes"])
