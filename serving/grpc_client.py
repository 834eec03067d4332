"""TF Serving over gRPC: PredictionService (Predict, GetModelMetadata) and ModelService
(GetModelStatus), with timeouts, retries on UNAVAILABLE and errors that name the model.
``tls=True`` (``grpcs://`` in :func:`keyclass.serving.predictor.make_predictor`) uses a
TLS channel verified against ``ca_file`` (PEM), or the system's roots without one."""

from __future__ import annotations

import grpc
import tensorflow as tf
from tensorflow.core.protobuf import error_codes_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from keyclass.serving import savedmodel
from keyclass.serving.remote import RemotePredictor
from keyclass.serving.types import ModelNotFoundError, PredictorError, PredictResult, SignatureError, signature_inputs

MAX_MESSAGE_BYTES = 256 * 1024 * 1024  # a batch of full-size photos easily passes gRPC's 4 MiB default


def _unavailable(e: Exception) -> bool:
    return isinstance(e, grpc.RpcError) and e.code() == grpc.StatusCode.UNAVAILABLE


class GrpcPredictor(RemotePredictor):
    """A model on TF Serving's gRPC port: ``GrpcPredictor("localhost:8500", "cat-dog-1234abcd")``.

    ``version`` or ``label`` pick a version (default: the newest the server has loaded).
    See :mod:`serving.remote` for ``classes`` / ``saved_model_dir``.
    """

    def __init__(
        self,
        target: str,
        model_name: str,
        version: int | None = None,
        label: str | None = None,
        timeout_s: float = 30.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        classes: list[str] | None = None,
        saved_model_dir: str | None = None,
        tls: bool = False,
        ca_file: str | None = None,
    ):
        super().__init__(model_name, version, label, timeout_s, retries, backoff_s, classes, saved_model_dir)
        self.target = target
        self.endpoint = f"{'grpcs' if tls else 'grpc'}://{target}"
        options = [
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ]
        if tls:
            roots = None
            if ca_file:
                try:
                    with open(ca_file, "rb") as f:
                        roots = f.read()
                except OSError as e:
                    raise PredictorError(f"ca_file {ca_file}: cannot read it ({e.strerror})") from None
            credentials = grpc.ssl_channel_credentials(root_certificates=roots)
            self._channel = grpc.secure_channel(target, credentials, options=options)
        elif ca_file:
            raise PredictorError("ca_file is for TLS servers: use grpcs://HOST:PORT")
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._predict_stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._model_stub = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> GrpcPredictor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _spec(self, spec: model_pb2.ModelSpec, signature: str = "", version: int | None = None) -> None:
        spec.name = self.model_name
        if version:
            spec.version.value = version
        elif self.version:
            spec.version.value = self.version
        elif self.label:
            spec.version_label = self.label
        if signature:
            spec.signature_name = signature

    def _call(self, what: str, rpc, request, signature: str = ""):
        try:
            return self._retrying(lambda: rpc(request, timeout=self.timeout_s), _unavailable, what)
        except grpc.RpcError as e:
            raise self._error(what, e, signature) from None

    def _error(self, what: str, e: grpc.RpcError, signature: str) -> PredictorError:
        code, details = e.code(), e.details() or ""
        where = f"{what}: {self.describe()}"
        if code == grpc.StatusCode.NOT_FOUND:
            return ModelNotFoundError(f"{where}: not served ({details})")
        if code == grpc.StatusCode.INVALID_ARGUMENT and "version label" in details:
            return ModelNotFoundError(f"{where}: the server defines no label {self.label!r} ({details})")
        if code == grpc.StatusCode.INVALID_ARGUMENT and "signature" in details.lower():
            return SignatureError(f"{where}: signature {signature!r} is not served ({details})")
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return PredictorError(f"{where}: no answer within timeout_s={self.timeout_s:g} ({details})")
        return PredictorError(f"{where}: {code.name}: {details}")

    def _predict(self, images, signature, class_index) -> PredictResult:
        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, signature)
        for name, value in signature_inputs(images, signature, class_index).items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value, shape=[len(value)]))
        response = self._call("predict", self._predict_stub.Predict, request, signature)
        outputs = {name: tf.make_ndarray(t) for name, t in response.outputs.items()}
        version = response.model_spec.version.value if response.model_spec.HasField("version") else None
        return PredictResult.from_outputs(outputs, version)

    def _metadata(self) -> dict:
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(request.model_spec)
        response = self._call("metadata", self._predict_stub.GetModelMetadata, request)
        sig_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(sig_map)
        return {
            "model_name": response.model_spec.name,
            "version": response.model_spec.version.value if response.model_spec.HasField("version") else None,
            "signatures": savedmodel.signature_map_to_dict(sig_map),
        }

    def _status(self, version: int | None = None) -> list[dict]:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = self.model_name
        if version:
            request.model_spec.version.value = version
        response = self._call("status", self._model_stub.GetModelStatus, request)
        return [
            {
                "version": s.version,
                "state": get_model_status_pb2.ModelVersionStatus.State.Name(s.state),
                "error_code": error_codes_pb2.Code.Name(s.status.error_code),
                "error_message": s.status.error_message,
            }
            for s in response.model_version_status
        ]
