"""ImageCleaner executor: read the manifest, run the cleaning, mark the outputs.

``Do()`` unpacks and validates; the work lives in :func:`components.cleaner.cleaning.clean`
(Beam stages in :mod:`stages`, the curation step in :mod:`curation`, pure decisions in
:mod:`funnel`). The Beam pipelines come from ``self._make_beam_pipeline()``, so the
pipeline's ``beam_pipeline_args`` (DirectRunner in multi-processing mode locally,
Dataflow or Flink at scale) reach them.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from absl import logging
from tfx import types
from tfx.dsl.components.base import base_beam_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils

from keyclass.components import layout
from keyclass.components.cleaner import cleaning, funnel, progress, spec, stages
from keyclass.components.cleaner.running import direct_running_args, runs_locally


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


def closing_line(totals: dict[str, Any], files: int, curation: dict[str, Any] | None = None) -> str:
    """The cleaner's one line: what the found images became, and what curated them (or,
    loudly, that nothing did)."""
    outcomes = totals["outcomes"]
    rest = ", ".join(f"{n} {o}" for o, n in outcomes.items() if o != funnel.KEPT and n)
    line = f"clean: {totals['found']} found ({files} files): {outcomes.get(funnel.KEPT, 0)} kept" + (
        f" ({rest})" if rest else ""
    )
    if not curation:
        return line
    if curation.get("mode") != "embedding":
        return f"{line}; NO CURATION: {curation.get('reason')}"
    pruned = sum((curation.get("label_issues") or {}).get("per_class", {}).values())
    return f"{line}; curated with {curation.get('backbone')}: {pruned} label issues pruned"


class Executor(base_beam_executor.BaseBeamExecutor):
    """Cleans a RawImages artifact into train/eval/calibration Examples and a CleaningReport."""

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
        staging = self._staging_dir()
        files = sum(len(batch) for batch in stages.file_batches(records, settings.classes))
        beam_args = list(self._beam_pipeline_args or [])
        self._beam_pipeline_args = direct_running_args(beam_args, files, settings.direct_threads_up_to)
        logging.info("ImageCleaner: %d files; Beam arguments %s", files, self._beam_pipeline_args)
        try:
            with progress.ProgressBar(files, enabled=runs_locally(beam_args)) as bar:
                rep = cleaning.clean(
                    records, raw.uri, settings, examples.uri, report.uri, staging, self._make_beam_pipeline, bar.dir
                )
                bar.finish(closing_line(rep["totals"], files, rep.get("curation")))
        finally:
            if fileio.exists(staging):
                fileio.rmtree(staging)

        examples.split_names = artifact_utils.encode_split_names(list(stages.SPLITS))
        totals, curated = rep["totals"], rep.get("curation", {})
        for outcome, n in totals["outcomes"].items():
            report.set_int_custom_property(f"num_{outcome}", int(n))
        report.set_string_custom_property("curation_mode", str(curated.get("mode", "")))
        logging.info("ImageCleaner: %s; curation %s %s", totals["outcomes"], curated.get("mode"), curated.get("reason"))

    def _staging_dir(self) -> str:
        """Where the decode stage leaves its files for the write stage: the execution's
        temporary directory (under the pipeline root, so remote workers reach it), or a
        local one when ``Do()`` is called without a TFX context."""
        if self._context is None:
            return tempfile.mkdtemp(prefix="keyclass-clean-")
        return os.path.join(self._get_tmp_dir(), "staging")
