"""TF Serving warmup requests, written beside the exported model.

TF Serving replays ``assets.extra/tf_serving_warmup_requests`` (a TFRecord of
``PredictionLog``) when it loads a version, before it reports AVAILABLE, so the first
user request does not pay for graph tracing and kernel set-up of each signature.
"""

from __future__ import annotations

import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from keyclass.serving import model_layout
from keyclass.serving.model_layout import GRAD_CAM_CLASS, SIGNATURES
from keyclass.serving.types import signature_inputs


def warmup_requests(images: list[bytes], class_count: int) -> list[prediction_log_pb2.PredictionLog]:
    """For each signature, one request with one image and, given several, one with all
    of them (two batch shapes); grad_cam_class cycles through the class ids."""
    if not images:
        raise ValueError("images: give at least one encoded image for the warmup requests")
    if class_count < 1:
        raise ValueError(f"class_count: must be at least 1, got {class_count}")
    batches = [images[:1]] + ([list(images)] if len(images) > 1 else [])
    logs = []
    for signature in SIGNATURES:
        for batch in batches:
            class_index = [i % class_count for i in range(len(batch))] if signature == GRAD_CAM_CLASS else None
            request = predict_pb2.PredictRequest()
            request.model_spec.signature_name = signature
            for name, value in signature_inputs(batch, signature, class_index).items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value, shape=[len(value)]))
            logs.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request)))
    return logs


def write_warmup_requests(saved_model_dir: str, images: list[bytes], class_count: int) -> str:
    """Write ``<saved_model_dir>/assets.extra/tf_serving_warmup_requests``; returns its path."""
    path = model_layout.warmup_path(saved_model_dir)
    tf.io.gfile.makedirs(tf.io.gfile.join(saved_model_dir, model_layout.ASSETS_EXTRA))
    with tf.io.TFRecordWriter(path) as writer:
        for log in warmup_requests(images, class_count):
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(saved_model_dir: str) -> list[prediction_log_pb2.PredictionLog]:
    """The warmup records, parsed (for checks and tests)."""
    out = []
    for record in tf.data.TFRecordDataset(model_layout.warmup_path(saved_model_dir)):
        out.append(prediction_log_pb2.PredictionLog.FromString(record.numpy()))
    return out
