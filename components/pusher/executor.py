"""Pusher executor that publishes a blessed model atomically in TF Serving's layout:
TFX's Pusher semantics (blessing check, pushed_model artifact), with the push itself
done by :func:`keyclass.components.pusher.publish.publish` (a temp dir and one rename;
leftovers of killed pushes removed; a repeated push of the same model reuses its
version).

A blessed model is still refused when its calibration failed (a non-finite
temperature, or ECE after temperature scaling worse than before beyond sampling noise;
see ``components.calibration.calibration_problem``): its confidences, and so every
threshold a user sets on them, would be worse than the raw ones. The reason is logged
and recorded on the PushedModel artifact as ``not_pushed_reason``.
"""

from __future__ import annotations

from typing import Any

from absl import logging
from tfx import types
from tfx.components.pusher import executor as tfx_pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from keyclass.components.calibration import calibration_problem
from keyclass.components.pusher.publish import publish, push_atomically
from keyclass.serving import model_layout

__all__ = ["NOT_PUSHED_REASON", "Executor", "publish", "push_atomically", "refusal_reason"]

NOT_PUSHED_REASON = "not_pushed_reason"  # PushedModel custom property when refused


def refusal_reason(model_path: str) -> str | None:
    """Why a blessed model at ``model_path`` must not be pushed, or None."""
    meta = model_layout.read_metadata(model_path)
    if meta is None:
        return f"{model_path} has no readable {model_layout.ASSETS_EXTRA}/{model_layout.METADATA_FILE}"
    problem = calibration_problem(meta.get("calibration"))
    return f"calibration failed: {problem}" if problem else None


class Executor(tfx_pusher_executor.Executor):
    """TFX Pusher semantics (blessing check, pushed_model artifact) with an atomic push,
    refusing a model whose calibration failed."""

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
        version, serving_path, _ = publish(model_path, base)
        logging.info("Model pushed to %s", serving_path)
        io_utils.copy_dir(model_path, model_push.uri)
        self._MarkPushed(model_push, pushed_destination=serving_path, pushed_version=str(version))
