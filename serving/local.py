"""In-process prediction: load the exported SavedModel and call its signatures."""

from __future__ import annotations

import os
import threading

import tensorflow as tf

from keyclass.serving import model_layout, savedmodel
from keyclass.serving.model_layout import GRAD_CAM
from keyclass.serving.types import (
    PredictorError,
    PredictResult,
    SignatureError,
    check_classes,
    check_request,
    signature_inputs,
)


class LocalPredictor:
    """Runs an exported keyclass SavedModel in this process.

    ``saved_model_dir`` is a version directory (``models/<name>/<version>/``) or a model
    base dir, from which ``version`` or the newest version is taken. Class names and
    the input size come from ``assets.extra/keyclass.json``.
    """

    def __init__(self, saved_model_dir: str, version: int | None = None, model_name: str | None = None):
        try:
            self.saved_model_dir, self.version = model_layout.resolve_saved_model_dir(saved_model_dir, version)
        except FileNotFoundError as e:
            raise PredictorError(f"local model: {e}") from None
        parent = os.path.dirname(os.path.normpath(self.saved_model_dir)) if self.version is not None else ""
        self.model_name = model_name or os.path.basename(parent or os.path.normpath(self.saved_model_dir))
        self._meta = model_layout.read_metadata(self.saved_model_dir) or {}
        self._loaded = tf.saved_model.load(self.saved_model_dir)
        self._lock = threading.Lock()  # tf.function tracing is not worth racing over

    @property
    def classes(self) -> list[str]:
        if "classes" not in self._meta:
            raise PredictorError(
                f"{self.saved_model_dir}: no {model_layout.ASSETS_EXTRA}/{model_layout.METADATA_FILE} with the class list; "
                "was it exported by keyclass?"
            )
        return list(self._meta["classes"])

    @property
    def image_size(self) -> int | None:
        return self._meta.get("image_size")

    @property
    def signatures(self) -> list[str]:
        return sorted(self._loaded.signatures.keys())

    def predict(
        self, images: list[bytes], signature: str = GRAD_CAM, class_index: list[int] | None = None
    ) -> PredictResult:
        check_request(images, signature, class_index)
        fn = self._loaded.signatures.get(signature)
        if fn is None:
            raise SignatureError(
                f"model {self.model_name!r} ({self.saved_model_dir}) has no signature {signature!r}; "
                f"it has {self.signatures}"
            )
        inputs = {k: tf.constant(v) for k, v in signature_inputs(images, signature, class_index).items()}
        try:
            with self._lock:
                outputs = fn(**inputs)
        except tf.errors.InvalidArgumentError as e:
            raise PredictorError(f"model {self.model_name!r} signature {signature!r}: {e.message}") from None
        result = PredictResult.from_outputs({k: v.numpy() for k, v in outputs.items()}, self.version)
        check_classes(result, self._meta.get("classes"), f"model {self.model_name!r}")
        return result

    def metadata(self) -> dict:
        return {
            "model_name": self.model_name,
            "version": self.version,
            "signatures": savedmodel.signature_map_to_dict(savedmodel.signature_def_map(self._loaded)),
            "keyclass": dict(self._meta),
        }

    def status(self) -> list[dict]:
        return [{"version": self.version, "state": "AVAILABLE"}]
