"""Pusher executor that publishes a blessed model atomically in TF Serving's layout.

TF Serving polls ``<base>/<version>/`` and loads a version as soon as the directory
exists. TFX's stock Pusher copies straight into that directory (``saved_model.pb``
last), so a poll during the copy can still see a half-written version. This executor
copies into a hidden temporary directory beside it, ``saved_model.pb`` last, and then
renames it into place, so the version appears whole or not at all. Versions are
integers that only grow, even when two pushes happen within the same second.

A blessed model is still refused when its calibration failed (a non-finite
temperature, or ECE after temperature scaling worse than before; see
``components.calibration.calibration_problem``): its confidences, and so every
threshold a user sets on them, would be worse than the raw ones. The reason is logged
and recorded on the PushedModel artifact as ``not_pushed_reason``.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from absl import logging
from tfx import types
from tfx.components.pusher import executor as tfx_pusher_executor
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from keyclass.components.calibration import calibration_problem
from keyclass.serving import model_layout
from keyclass.serving.model_layout import SAVED_MODEL_PB

NOT_PUSHED_REASON = "not_pushed_reason"  # PushedModel custom property when refused


def refusal_reason(model_path: str) -> str | None:
    """Why a blessed model at ``model_path`` must not be pushed, or None."""
    meta = model_layout.read_metadata(model_path)
    if meta is None:
        return f"{model_path} has no readable {model_layout.ASSETS_EXTRA}/{model_layout.METADATA_FILE}"
    problem = calibration_problem(meta.get("calibration"))
    return f"calibration failed: {problem}" if problem else None


def push_atomically(model_path: str, base_directory: str, version: int) -> str:
    """Copy ``model_path`` to ``base_directory/version`` via a temp dir and one rename."""
    final = os.path.join(base_directory, str(version))
    if fileio.exists(final):
        raise FileExistsError(f"push: {final} already exists; refusing to overwrite a served version")
    fileio.makedirs(base_directory)
    tmp = os.path.join(base_directory, f"{model_layout.TMP_PREFIX}{version}-{uuid.uuid4().hex[:8]}")
    try:
        io_utils.copy_dir(model_path, tmp, deny_regex_patterns=[r"saved_model\.pb"])
        pb = os.path.join(model_path, SAVED_MODEL_PB)
        if not fileio.exists(pb):
            raise FileNotFoundError(f"push: {model_path} holds no {SAVED_MODEL_PB}")
        io_utils.copy_file(pb, os.path.join(tmp, SAVED_MODEL_PB))
        fileio.rename(tmp, final)
    finally:
        if fileio.exists(tmp):
            fileio.rmtree(tmp)
    return final


class Executor(tfx_pusher_executor.Executor):
    """TFX Pusher semantics (blessing check, pushed_model artifact) with an atomic push."""

    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            logging.info("Model is not blessed; nothing is pushed and the served version stays as it was.")
            self._MarkNotPushed(model_push)
            return
        model_path = self.GetModelPath(input_dict)
        reason = refusal_reason(model_path)
        if reason:
            logging.warning("Model is blessed but not pushed: %s. The served version stays as it was.", reason)
            self._MarkNotPushed(model_push)
            model_push.set_string_custom_property(NOT_PUSHED_REASON, reason)
            return
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        if destination.WhichOneof("destination") != "filesystem":
            raise NotImplementedError("keyclass pushes to a filesystem destination (local disk or gs://)")
        base = destination.filesystem.base_directory
        version = model_layout.next_version(base)
        serving_path = push_atomically(model_path, base, version)
        logging.info("Model pushed to %s", serving_path)
        io_utils.copy_dir(model_path, model_push.uri)
        self._MarkPushed(model_push, pushed_destination=serving_path, pushed_version=str(version))
