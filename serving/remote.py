"""What the gRPC and REST TF Serving clients share: model addressing, retries and the
class list.

Where remote class names come from: TF Serving serves signatures, not assets, so
``assets.extra/keyclass.json`` cannot be fetched from it, and the outputs only ever
name the predicted class. A remote predictor therefore takes the class list from, in
order: ``classes=`` (e.g. the configured ``-c`` classes, which keyclass sorts exactly
as the trainer does), or ``keyclass.json`` under ``saved_model_dir`` (the pushed model
directory the server mounts, local or gs://). Either way the list is checked against
the served signature's number of classes (GetModelMetadata) and against every answer
(``class_name == classes[class_id]``), so a stale or misordered list fails loudly.
Without either, ``classes`` raises a PredictorError saying what to pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from keyclass.serving import model_layout
from keyclass.serving.model_layout import GRAD_CAM
from keyclass.serving.types import (
    PredictorError,
    PredictResult,
    ServerUnavailableError,
    check_classes,
    check_request,
)

T = TypeVar("T")
log = logging.getLogger(__name__)


class RemotePredictor:
    """Base of GrpcPredictor and RestPredictor; subclasses implement ``_predict``,
    ``_metadata`` and ``_status`` for one attempt each."""

    endpoint: str = ""

    def __init__(
        self,
        model_name: str,
        version: int | None = None,
        label: str | None = None,
        timeout_s: float = 30.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        classes: list[str] | None = None,
        saved_model_dir: str | None = None,
    ):
        if not model_name:
            raise ValueError("model_name: required for a TF Serving endpoint")
        if version and label:
            raise ValueError("give version or label, not both")
        if timeout_s <= 0 or retries < 0 or backoff_s < 0:
            raise ValueError("timeout_s must be positive; retries and backoff_s must not be negative")
        self.model_name = model_name
        self.version = int(version) if version else None
        self.label = label or None
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.backoff_s = float(backoff_s)
        self._classes = list(classes) if classes else None
        self._keyclass_meta: dict | None = None
        if saved_model_dir:
            try:
                path, _ = model_layout.resolve_saved_model_dir(saved_model_dir, self.version)
            except FileNotFoundError as e:
                raise PredictorError(f"saved_model_dir: {e}") from None
            self._keyclass_meta = model_layout.read_metadata(path)
            if self._keyclass_meta is None:
                raise PredictorError(
                    f"saved_model_dir: {path} has no {model_layout.ASSETS_EXTRA}/{model_layout.METADATA_FILE}"
                )
            if self._classes is None:
                self._classes = list(self._keyclass_meta["classes"])
        self._metadata_cache: dict | None = None
        self._classes_checked = False

    # Addressing -------------------------------------------------------------------
    def describe(self) -> str:
        """``model 'x' version 3 on grpc://h:p`` etc., for error messages."""
        if self.version:
            which = f" version {self.version}"
        elif self.label:
            which = f" label {self.label!r}"
        else:
            which = " (latest version)"
        return f"model {self.model_name!r}{which} on {self.endpoint}"

    # Retries ----------------------------------------------------------------------
    def _retrying(self, attempt: Callable[[], T], retryable: Callable[[Exception], bool], what: str) -> T:
        """Run ``attempt``; on a retryable error wait backoff_s * 2^i (capped at 10 s)
        and try again, up to ``retries`` more times."""
        for i in range(self.retries + 1):
            try:
                return attempt()
            except Exception as e:  # noqa: BLE001 - classified right here
                if not retryable(e):
                    raise
                if i == self.retries:
                    raise ServerUnavailableError(
                        f"{what}: {self.describe()} unavailable after {self.retries + 1} attempts: {e}"
                    ) from e
                delay = min(self.backoff_s * 2**i, 10.0)
                log.warning("%s: %s unavailable (%s); retry %d in %.1fs", what, self.endpoint, e, i + 1, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    # Public API -------------------------------------------------------------------
    @property
    def classes(self) -> list[str]:
        if self._classes is None:
            raise PredictorError(
                f"{self.describe()}: TF Serving does not serve the class list (it is in the model's "
                "assets.extra/keyclass.json); pass classes=[...] or saved_model_dir=<pushed model dir>"
            )
        if not self._classes_checked:
            self._check_class_count()
            self._classes_checked = True
        return list(self._classes)

    @property
    def image_size(self) -> int | None:
        return (self._keyclass_meta or {}).get("image_size")

    def predict(
        self, images: list[bytes], signature: str = GRAD_CAM, class_index: list[int] | None = None
    ) -> PredictResult:
        check_request(images, signature, class_index)
        result = self._predict(images, signature, class_index)
        check_classes(result, self._classes, self.describe())
        return result

    def metadata(self) -> dict:
        if self._metadata_cache is None:
            self._metadata_cache = self._metadata()
            if self._keyclass_meta:
                self._metadata_cache["keyclass"] = dict(self._keyclass_meta)
        return self._metadata_cache

    def resolved_version(self) -> int | None:
        """The version this predictor addresses now: ``version``, the one ``label``
        names on the server (asked afresh through GetModelMetadata, which resolves labels),
        or None for the newest."""
        if self.version:
            return self.version
        if self.label:
            return self._metadata()["version"]
        return None

    def status(self) -> list[dict]:
        """The served versions' states. TF Serving's GetModelStatus ignores a version
        label and answers every version, so for a label the labelled version is resolved
        first and only its state is returned."""
        return self._status(self.resolved_version() if self.label else self.version)

    def wait_until_available(self, timeout_s: float = 60.0, poll_s: float = 1.0) -> list[dict]:
        """Poll until the addressed version is AVAILABLE (for a label: the version the
        label names, not just any version); returns its status."""
        deadline = time.monotonic() + timeout_s
        last: object = None
        while True:
            try:
                st = self.status()
                pinned = self.version or self.label
                if st and (all if pinned else any)(s["state"] == "AVAILABLE" for s in st):
                    return st
                last = st
            except PredictorError as e:
                last = e
            if time.monotonic() >= deadline:
                raise ServerUnavailableError(f"{self.describe()}: not AVAILABLE after {timeout_s:.0f}s ({last})")
            time.sleep(poll_s)

    def _check_class_count(self) -> None:
        sig = self.metadata()["signatures"].get("serving_default", {})
        shape = sig.get("outputs", {}).get("probabilities", {}).get("shape") or []
        if len(shape) == 2 and shape[1] > 0 and shape[1] != len(self._classes or []):
            raise PredictorError(
                f"{self.describe()} has {shape[1]} classes but the class list has {len(self._classes or [])}: "
                f"{self._classes}"
            )

    # Subclass hooks ---------------------------------------------------------------
    def _predict(self, images, signature, class_index) -> PredictResult:
        raise NotImplementedError

    def _metadata(self) -> dict:
        raise NotImplementedError

    def _status(self, version: int | None = None) -> list[dict]:
        """One GetModelStatus: every version, or only ``version``."""
        raise NotImplementedError
