"""TF Serving over REST: ``/v1/models/NAME[/versions/V | /labels/L][:predict | /metadata]``.

Images travel as ``{"b64": ...}`` in the columnar ``inputs`` format, so the answer is
``{"outputs": {name: value}}`` for every signature. Connection errors and 503 are
retried with backoff; 404 / 400 become errors naming the model, version, label or
signature.
"""

from __future__ import annotations

import base64

import requests
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2

from keyclass.serving import savedmodel
from keyclass.serving.remote import RemotePredictor
from keyclass.serving.types import ModelNotFoundError, PredictorError, PredictResult, SignatureError, signature_inputs


class _Retryable(Exception):
    """A 503 answer: the server is up but not ready."""


def _retryable(e: Exception) -> bool:
    return isinstance(e, (_Retryable, requests.ConnectionError))


class RestPredictor(RemotePredictor):
    """A model on TF Serving's REST port: ``RestPredictor("http://localhost:8501", "cat-dog-1234abcd")``."""

    def __init__(
        self,
        base_url: str,
        model_name: str,
        version: int | None = None,
        label: str | None = None,
        timeout_s: float = 30.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        classes: list[str] | None = None,
        saved_model_dir: str | None = None,
        ca_file: str | None = None,
    ):
        super().__init__(model_name, version, label, timeout_s, retries, backoff_s, classes, saved_model_dir)
        self.base_url = base_url.rstrip("/")
        self.endpoint = self.base_url
        self._session = requests.Session()
        if ca_file:
            if not self.base_url.startswith("https://"):
                raise PredictorError("ca_file is for TLS servers: use https://HOST:PORT")
            self._session.verify = ca_file

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> RestPredictor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def model_url(self, version: int | None = None) -> str:
        url = f"{self.base_url}/v1/models/{self.model_name}"
        if version or self.version:
            url += f"/versions/{version or self.version}"
        elif self.label:
            url += f"/labels/{self.label}"
        return url

    def _request(self, what: str, method: str, url: str, body: dict | None = None, signature: str = "") -> dict:
        def attempt() -> requests.Response:
            resp = self._session.request(method, url, json=body, timeout=self.timeout_s)
            if resp.status_code == 503:
                raise _Retryable(f"HTTP 503: {_error_text(resp)}")
            return resp

        try:
            resp = self._retrying(attempt, _retryable, what)
        except requests.Timeout as e:
            raise PredictorError(
                f"{what}: {self.describe()}: no answer within timeout_s={self.timeout_s:g} ({e})"
            ) from None
        if resp.ok:
            try:
                return resp.json()
            except ValueError:
                raise PredictorError(f"{what}: {self.describe()}: answer is not JSON: {resp.text[:200]!r}") from None
        raise self._error(what, resp, signature)

    def _error(self, what: str, resp: requests.Response, signature: str) -> PredictorError:
        text = _error_text(resp)
        where = f"{what}: {self.describe()}"
        if resp.status_code == 404:
            return ModelNotFoundError(f"{where}: not served ({text})")
        if "version label" in text:
            return ModelNotFoundError(f"{where}: the server defines no label {self.label!r} ({text})")
        if "signature" in text.lower() and "not found" in text.lower():
            return SignatureError(f"{where}: signature {signature!r} is not served ({text})")
        return PredictorError(f"{where}: HTTP {resp.status_code}: {text}")

    def _predict(self, images, signature, class_index) -> PredictResult:
        inputs = {}
        for name, value in signature_inputs(images, signature, class_index).items():
            if value.dtype == object:
                inputs[name] = [{"b64": base64.b64encode(v).decode("ascii")} for v in value]
            else:
                inputs[name] = value.tolist()
        body = {"signature_name": signature, "inputs": inputs}
        answer = self._request("predict", "POST", self.model_url() + ":predict", body, signature)
        outputs = answer.get("outputs")
        if not isinstance(outputs, dict):
            raise PredictorError(f"predict: {self.describe()}: expected named outputs, got {str(answer)[:200]}")
        decoded = {k: _b64_decode(v) for k, v in outputs.items()}
        # REST answers do not say which version answered; a pinned version is known.
        return PredictResult.from_outputs(decoded, self.version)

    def _metadata(self) -> dict:
        answer = self._request("metadata", "GET", self.model_url() + "/metadata")
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        json_format.ParseDict(answer["metadata"]["signature_def"], sig_map, ignore_unknown_fields=True)
        spec = answer.get("model_spec", {})
        return {
            "model_name": spec.get("name", self.model_name),
            "version": int(spec["version"]) if spec.get("version") else None,
            "signatures": savedmodel.signature_map_to_dict(sig_map),
        }

    def _status(self, version: int | None = None) -> list[dict]:
        url = f"{self.base_url}/v1/models/{self.model_name}" + (f"/versions/{version}" if version else "")
        answer = self._request("status", "GET", url)
        return [
            {
                "version": int(s["version"]),
                "state": s["state"],
                "error_code": s.get("status", {}).get("error_code", "OK"),
                "error_message": s.get("status", {}).get("error_message", ""),
            }
            for s in answer.get("model_version_status", [])
        ]


def _error_text(resp: requests.Response) -> str:
    try:
        return str(resp.json().get("error", resp.text))
    except ValueError:
        return resp.text[:500]


def _b64_decode(value):
    """TF Serving writes binary string outputs as ``{"b64": ...}``; plain text stays text."""
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_b64_decode(v) for v in value]
    return value
