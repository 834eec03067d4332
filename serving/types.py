"""The one result type and interface shared by every way of predicting.

``LocalPredictor`` (in-process SavedModel), ``GrpcPredictor`` and ``RestPredictor``
(TF Serving) all return a :class:`PredictResult` and raise the errors below, so callers
such as ``keyclass predict`` never care where the model runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from keyclass.serving.model_layout import (
    CLASS_INDEX_INPUT,
    EXAMPLES_INPUT,
    GRAD_CAM,
    GRAD_CAM_CLASS,
    HEATMAP_OUTPUT,
    IMAGE_FEATURE,
    IMAGES_INPUT,
    OUTPUTS,
    RAW_OUTPUTS,
    SERVING_TF_EXAMPLE,
)


class PredictorError(RuntimeError):
    """A prediction could not be made; the message says which model and why."""


class ModelNotFoundError(PredictorError):
    """The server does not serve this model name, version or label."""


class SignatureError(PredictorError):
    """The model has no such signature, or the request does not fit it."""


class ServerUnavailableError(PredictorError):
    """The server could not be reached or stayed unavailable through every retry."""


@dataclasses.dataclass
class PredictResult:
    """Predictions for N images from a model with K classes.

    ``probabilities`` and ``confidence`` are calibrated (``softmax(logits / T)``);
    ``raw_probabilities`` and ``raw_confidence`` are ``softmax(logits)``, None for models
    exported before calibration. ``heatmap`` is (N,h,w) in 0..1 for the Grad-CAM
    signatures, else None. ``model_version`` is the version that answered, when known.
    """

    probabilities: np.ndarray  # (N,K) float32
    class_id: np.ndarray  # (N,) int64
    class_name: list[str]
    confidence: np.ndarray  # (N,) float32
    heatmap: np.ndarray | None = None  # (N,h,w) float32
    model_version: int | None = None
    raw_probabilities: np.ndarray | None = None  # (N,K) float32
    raw_confidence: np.ndarray | None = None  # (N,) float32

    def __len__(self) -> int:
        return len(self.class_name)

    @classmethod
    def from_outputs(cls, outputs: Mapping[str, Any], model_version: int | None = None) -> PredictResult:
        """Build from a signature's named outputs (tensors, arrays or lists); checks shapes."""
        missing = [k for k in OUTPUTS if k not in outputs]
        if missing:
            raise PredictorError(f"model answered without outputs {missing}; got {sorted(outputs)}")
        probs = np.asarray(outputs["probabilities"], dtype=np.float32)
        if probs.ndim != 2:
            raise PredictorError(f"probabilities: expected shape (N,K), got {probs.shape}")
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in np.asarray(outputs["class_name"]).tolist()]
        raw_probs, raw_conf = (np.asarray(outputs[k], dtype=np.float32) if k in outputs else None for k in RAW_OUTPUTS)
        result = cls(
            probabilities=probs,
            class_id=np.asarray(outputs["class_id"], dtype=np.int64).reshape(-1),
            class_name=names,
            confidence=np.asarray(outputs["confidence"], dtype=np.float32).reshape(-1),
            heatmap=np.asarray(outputs[HEATMAP_OUTPUT], dtype=np.float32) if HEATMAP_OUTPUT in outputs else None,
            model_version=model_version,
            raw_probabilities=raw_probs,
            raw_confidence=None if raw_conf is None else raw_conf.reshape(-1),
        )
        n = probs.shape[0]
        sizes = {"class_id": len(result.class_id), "class_name": len(names), "confidence": len(result.confidence)}
        if result.heatmap is not None:
            sizes["heatmap"] = result.heatmap.shape[0]
        for key in RAW_OUTPUTS:
            value = getattr(result, key)
            if value is not None:
                sizes[key] = value.shape[0]
        if any(v != n for v in sizes.values()):
            raise PredictorError(f"outputs disagree on the number of images: probabilities {n}, {sizes}")
        return result


@runtime_checkable
class Predictor(Protocol):
    """Anything that scores encoded images with a keyclass model."""

    model_name: str

    @property
    def classes(self) -> list[str]:
        """Class names in class_id order."""
        ...

    @property
    def image_size(self) -> int | None:
        """The model's input size, when known."""
        ...

    def predict(
        self, images: list[bytes], signature: str = GRAD_CAM, class_index: list[int] | None = None
    ) -> PredictResult: ...

    def metadata(self) -> dict:
        """``{"model_name", "version", "signatures": {name: {"inputs": {...}, "outputs": {...}}}}``,
        each tensor as ``{"dtype": "DT_STRING", "shape": [-1]}``."""
        ...

    def status(self) -> list[dict]:
        """``[{"version": int, "state": "AVAILABLE", ...}]`` for the model's versions."""
        ...


def check_request(images: Sequence[bytes], signature: str, class_index: Sequence[int] | None) -> None:
    """Client-side checks every predictor makes before sending anything."""
    if not isinstance(signature, str) or not signature:
        raise SignatureError(f"signature: expected a name such as 'grad_cam', got {signature!r}")
    if len(images) == 0:
        raise ValueError("images: empty list; give at least one encoded image")
    bad = [i for i, im in enumerate(images) if not isinstance(im, (bytes, bytearray))]
    if bad:
        raise TypeError(f"images: items {bad[:5]} are not bytes (pass encoded JPEG/PNG/GIF/BMP file contents)")
    if signature == GRAD_CAM_CLASS:
        if class_index is None:
            raise SignatureError("signature 'grad_cam_class' needs class_index: one class id per image")
        if len(class_index) != len(images):
            raise SignatureError(f"class_index: {len(class_index)} ids for {len(images)} images; give one per image")
    elif class_index is not None:
        raise SignatureError(f"class_index is only used by 'grad_cam_class', not by {signature!r}")


def signature_inputs(images: Sequence[bytes], signature: str, class_index: Sequence[int] | None) -> dict[str, Any]:
    """The named numpy inputs for ``signature``; ``serving_tf_example`` wraps each image
    in a tf.Example under ``image/encoded``."""
    if signature == SERVING_TF_EXAMPLE:
        from tensorflow.core.example import example_pb2, feature_pb2

        def example(data: bytes) -> bytes:
            feat = feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=[bytes(data)]))
            return example_pb2.Example(features=feature_pb2.Features(feature={IMAGE_FEATURE: feat})).SerializeToString()

        return {EXAMPLES_INPUT: np.array([example(im) for im in images], dtype=object)}
    inputs: dict[str, Any] = {IMAGES_INPUT: np.array([bytes(im) for im in images], dtype=object)}
    if class_index is not None:
        inputs[CLASS_INDEX_INPUT] = np.asarray(class_index, dtype=np.int32)
    return inputs


def check_classes(result: PredictResult, classes: list[str] | None, where: str) -> None:
    """Each answer's class_name must be ``classes[class_id]``; catches a stale class list."""
    if not classes:
        return
    k = result.probabilities.shape[1]
    if k != len(classes):
        raise PredictorError(f"{where}: the model answers with {k} classes but the class list has {len(classes)}")
    for cid, name in zip(result.class_id.tolist(), result.class_name, strict=True):
        if not 0 <= cid < len(classes) or classes[cid] != name:
            raise PredictorError(f"{where}: class_id {cid} came back as {name!r}, not in the class list {classes}")
