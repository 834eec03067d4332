"""A TEST STAND-IN for TF Serving. It is not TF Serving and must not be deployed.

No TF Serving binary can run on the machines keyclass is built and tested on, so this
in-process server speaks TF Serving's two APIs well enough to test the clients, the
smoke test and the readiness probe against real SavedModels:

- gRPC with the real ``tensorflow_serving.apis`` protos: ``PredictionService.Predict``,
  ``PredictionService.GetModelMetadata`` (``signature_def``) and
  ``ModelService.GetModelStatus``, on 127.0.0.1 (port 0 = any free port).
- REST over ``http.server``: ``GET /v1/models/NAME[/versions/V | /labels/L]`` (status),
  ``.../metadata`` and ``POST ...:predict`` (``inputs`` or ``instances``, ``{"b64": ...}``).

It serves every numbered version under ``<models_dir>/<name>/`` (like the ``all``
version policy), resolves no version to the newest AVAILABLE one and labels through
``labels={"name": {"stable": 1}}``, and answers unknown models, versions, labels,
signatures and inputs with TF Serving's status codes (NOT_FOUND / INVALID_ARGUMENT;
404 / 400) and messages. Or it reads a ``models.config`` (:meth:`StandinServer.from_config`):
names, base paths (``mount`` maps the container's ``/models``), version policies and
labels, refusing a label on a version the policy does not load, as TF Serving does.

Like TF Serving (``get_model_status_impl.cc``), GetModelStatus ignores a version label:
it answers one version when the request names one, and every version otherwise, also
for ``/v1/models/NAME/labels/L`` over REST. Predict and GetModelMetadata do resolve
labels. ``tls=(key_pem, cert_pem)`` serves gRPC over TLS (``grpcs://``).

Test hooks: ``set_state`` (e.g. report a version LOADING), ``fail_next`` (answer
UNAVAILABLE / 503 a number of times). What it does not do: batching, warmup replay,
config reloading, Classify/Regress/MultiInference, TLS for REST.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from keyclass.serving import model_layout, savedmodel, serving_config

_HTTP_STATUS = {
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
}


class ServingError(Exception):
    """An error answer: a gRPC status code and TF Serving's message."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class StandinServer:
    """Serve ``models_dir`` over gRPC and REST until ``stop()`` (or use ``with``)."""

    def __init__(
        self,
        models_dir: str,
        labels: dict[str, dict[str, int]] | None = None,
        host: str = "127.0.0.1",
        grpc_port: int = 0,
        rest_port: int = 0,
        tls: tuple[bytes, bytes] | None = None,
    ):
        self.models_dir = models_dir
        self.labels = {m: dict(v) for m, v in (labels or {}).items()}
        self.tls = tls
        self._configs: dict[str, object] = {}  # model name -> ModelConfig, when read from a models.config
        self._mount: dict[str, str] = {}  # base-path prefix -> local folder
        self.host = host
        self._grpc_port_wanted = grpc_port
        self._rest_port_wanted = rest_port
        self._loaded: dict[tuple[str, int], object] = {}
        self._states: dict[tuple[str, int], str] = {}
        self._lock = threading.Lock()
        self._fail = 0
        self.calls = 0
        self._grpc: grpc.Server | None = None
        self._http: ThreadingHTTPServer | None = None
        self.grpc_port = 0
        self.rest_port = 0

    @classmethod
    def from_config(cls, config_text: str, mount: dict[str, str], **kwargs) -> StandinServer:
        """Serve what a ``models.config`` says; ``mount`` maps its base-path prefixes to
        local folders (``{"/models": models_dir}``). Raises ServingError as TF Serving
        refuses a config: a label on a version its policy does not load."""
        server = cls(models_dir="", **kwargs)
        server._mount = dict(mount)
        for model in serving_config.parse(config_text).model_config_list.config:
            server._configs[model.name] = model
            served = server._versions(model.name)
            for version in model.version_labels.values():
                if version not in served:
                    raise ServingError(
                        grpc.StatusCode.FAILED_PRECONDITION,
                        f"Request to assign label to version {version} of model {model.name}, "
                        "which is not currently available for inference",
                    )
            server.labels[model.name] = dict(model.version_labels)
        return server

    def _base_dir(self, name: str) -> str:
        model = self._configs.get(name)
        if model is None:
            return f"{self.models_dir}/{name}"
        for prefix, local in self._mount.items():
            if model.base_path.startswith(prefix.rstrip("/") + "/"):
                return local.rstrip("/") + model.base_path[len(prefix.rstrip("/")) :]
        return model.base_path

    # Lifecycle --------------------------------------------------------------------
    def start(self) -> StandinServer:
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_PredictionServicer(self), self._grpc)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelServicer(self), self._grpc)
        address = f"{self.host}:{self._grpc_port_wanted}"
        if self.tls:
            credentials = grpc.ssl_server_credentials([self.tls])
            self.grpc_port = self._grpc.add_secure_port(address, credentials)
        else:
            self.grpc_port = self._grpc.add_insecure_port(address)
        self._grpc.start()
        self._http = ThreadingHTTPServer((self.host, self._rest_port_wanted), _make_handler(self))
        self._http.daemon_threads = True
        self.rest_port = self._http.server_address[1]
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace=None)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    def __enter__(self) -> StandinServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def grpc_target(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.rest_port}"

    # Test hooks -------------------------------------------------------------------
    def set_state(self, model: str, version: int, state: str) -> None:
        """Report ``version`` in ``state`` (AVAILABLE, LOADING, ...); only AVAILABLE serves."""
        self._states[(model, version)] = state

    def fail_next(self, count: int) -> None:
        """Answer the next ``count`` calls (any API) with UNAVAILABLE / HTTP 503."""
        with self._lock:
            self._fail = count

    def _enter_call(self) -> None:
        with self._lock:
            self.calls += 1
            if self._fail > 0:
                self._fail -= 1
                raise ServingError(grpc.StatusCode.UNAVAILABLE, "stand-in: simulated unavailability")

    # Version resolution, as TF Serving's ServerCore does it -------------------------
    def _versions(self, name: str) -> dict[int, str]:
        """The versions loaded for ``name`` (its version policy, ``all`` by default)."""
        on_disk = sorted(model_layout.version_dirs(self._base_dir(name)))
        model = self._configs.get(name)
        if model is not None:
            on_disk = serving_config.served_versions(model, on_disk)
        elif self._configs:
            on_disk = []  # a config file names every model served
        return {v: self._states.get((name, v), "AVAILABLE") for v in on_disk}

    def resolve(self, name: str, version: int | None = None, label: str | None = None) -> int:
        """The version a request for (name, version | label | latest) is served by."""
        if label:
            v = self.labels.get(name, {}).get(label)
            if v is None:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Unrecognized servable version label: {label}")
            version = v
        available = [v for v, state in self._versions(name).items() if state == "AVAILABLE"]
        if version:
            if version not in available:
                raise ServingError(
                    grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Specific({name}, {version})"
                )
            return version
        if not available:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({name})")
        return max(available)

    def status(self, name: str, version: int | None = None, label: str | None = None) -> list[tuple[int, str]]:
        """``[(version, state)]`` as GetModelStatus reports it: ``label`` is ignored, as
        TF Serving ignores it (only a version narrows the answer)."""
        versions = self._versions(name)
        if version:
            if version not in versions:
                raise ServingError(grpc.StatusCode.NOT_FOUND, f"Could not find version {version} of model {name}")
            return [(version, versions[version])]
        if not versions:
            raise ServingError(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {name}")
        return sorted(versions.items())

    def _model(self, name: str, version: int):
        with self._lock:
            key = (name, version)
            if key not in self._loaded:
                self._loaded[key] = tf.saved_model.load(f"{self._base_dir(name)}/{version}")
            return self._loaded[key]

    def signature_map(self, name: str, version: int) -> get_model_metadata_pb2.SignatureDefMap:
        return savedmodel.signature_def_map(self._model(name, version))

    def run(
        self, name: str, version: int, signature: str, inputs: dict[str, np.ndarray], output_filter=()
    ) -> dict[str, np.ndarray]:
        """Call ``signature`` of (name, version) with named numpy inputs."""
        signature = signature or "serving_default"
        fn = self._model(name, version).signatures.get(signature)
        if fn is None:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f'Serving signature key "{signature}" not found.')
        specs = fn.structured_input_signature[1]
        expected = set(specs)
        for alias in inputs:
            if alias not in expected:
                raise ServingError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"input tensor alias not found in signature: {alias}. "
                    f"Inputs expected to be in the set {{{','.join(sorted(expected))}}}.",
                )
        missing = expected - set(inputs)
        if missing:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Request inputs do not match required inputs for model `{name}`. "
                f"Send extra: {{}}. Missing but required: {{{','.join(sorted(missing))}}}.",
            )
        sizes = {len(v) for v in inputs.values()}
        if len(sizes) > 1:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT, "Batching Run() input tensors must have equal 0th-dimension size."
            )
        try:
            tensors = {k: tf.constant(v, dtype=specs[k].dtype) for k, v in inputs.items()}
            outputs = fn(**tensors)
        except (tf.errors.InvalidArgumentError, TypeError, ValueError) as e:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, str(getattr(e, "message", e))) from None
        names = list(output_filter) or sorted(outputs)
        unknown = [n for n in names if n not in outputs]
        if unknown:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT, f"output tensor alias not found in signature: {unknown[0]}"
            )
        return {n: outputs[n].numpy() for n in names}


def _abort(context: grpc.ServicerContext, e: ServingError):
    context.abort(e.code, e.message)


class _PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, server: StandinServer):
        self.s = server

    def Predict(self, request: predict_pb2.PredictRequest, context):  # noqa: N802 - gRPC method name
        try:
            self.s._enter_call()
            spec = request.model_spec
            version = self.s.resolve(
                spec.name, spec.version.value if spec.HasField("version") else None, spec.version_label
            )
            inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            outputs = self.s.run(spec.name, version, spec.signature_name, inputs, request.output_filter)
        except ServingError as e:
            _abort(context, e)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = spec.name
        response.model_spec.version.value = version
        response.model_spec.signature_name = spec.signature_name or "serving_default"
        for k, v in outputs.items():
            response.outputs[k].CopyFrom(tf.make_tensor_proto(v))
        return response

    def GetModelMetadata(self, request, context):  # noqa: N802
        try:
            self.s._enter_call()
            if list(request.metadata_field) != ["signature_def"]:
                raise ServingError(
                    grpc.StatusCode.INVALID_ARGUMENT, "Metadata field signature_def is the only one supported"
                )
            spec = request.model_spec
            version = self.s.resolve(
                spec.name, spec.version.value if spec.HasField("version") else None, spec.version_label
            )
            sig_map = self.s.signature_map(spec.name, version)
        except ServingError as e:
            _abort(context, e)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = spec.name
        response.model_spec.version.value = version
        response.metadata["signature_def"].Pack(sig_map)
        return response


class _ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, server: StandinServer):
        self.s = server

    def GetModelStatus(self, request, context):  # noqa: N802
        try:
            self.s._enter_call()
            spec = request.model_spec
            rows = self.s.status(
                spec.name, spec.version.value if spec.HasField("version") else None, spec.version_label
            )
        except ServingError as e:
            _abort(context, e)
        response = get_model_status_pb2.GetModelStatusResponse()
        for version, state in rows:
            response.model_version_status.add(
                version=version, state=get_model_status_pb2.ModelVersionStatus.State.Value(state)
            )
        return response


_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?(?P<tail>:predict|/metadata)?$"
)


def _from_json(value, dtype: tf.DType):
    """A JSON input value (with {"b64": ...} for bytes) as a numpy array of ``dtype``."""

    def decode(v):
        if isinstance(v, dict):
            if set(v) != {"b64"}:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"JSON object {v} is not a b64 value")
            return base64.b64decode(v["b64"])
        if isinstance(v, list):
            return [decode(x) for x in v]
        return v.encode() if isinstance(v, str) else v

    decoded = decode(value)
    return np.array(decoded, dtype=object if dtype == tf.string else dtype.as_numpy_dtype)


def _to_json(name: str, value: np.ndarray):
    """TF Serving's JSON for an output: text for strings, {"b64"} for names ending _bytes."""
    if value.dtype == object:

        def enc(v):
            if isinstance(v, list):
                return [enc(x) for x in v]
            if name.endswith("_bytes"):
                return {"b64": base64.b64encode(v).decode("ascii")}
            return v.decode("utf-8", errors="replace")

        return enc(value.tolist())
    return value.tolist()


def _make_handler(server: StandinServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def _send(self, code: int, body: dict) -> None:
            data = json.dumps(body, indent=1).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self):
            m = _PATH.match(self.path)
            if not m:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Malformed request: {self.command} {self.path}")
            version = int(m["version"]) if m["version"] else None
            return m["name"], version, m["label"], m["tail"] or ""

        def do_GET(self) -> None:  # noqa: N802
            try:
                server._enter_call()
                name, version, label, tail = self._route()
                if tail == ":predict":
                    raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Malformed request: GET :predict; use POST")
                if tail == "/metadata":
                    v = server.resolve(name, version, label)
                    sig = json_format.MessageToDict(server.signature_map(name, v), preserving_proto_field_name=True)
                    body = {
                        "model_spec": {"name": name, "signature_name": "", "version": str(v)},
                        "metadata": {"signature_def": sig},
                    }
                else:
                    rows = server.status(name, version, label)
                    body = {
                        "model_version_status": [
                            {"version": str(v), "state": st, "status": {"error_code": "OK", "error_message": ""}}
                            for v, st in rows
                        ]
                    }
                self._send(200, body)
            except ServingError as e:
                self._send(_HTTP_STATUS.get(e.code, 500), {"error": e.message})

        def do_POST(self) -> None:  # noqa: N802
            try:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                server._enter_call()
                name, version, label, tail = self._route()
                if tail != ":predict":
                    raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Malformed request: POST {self.path}")
                try:
                    body = json.loads(raw)
                except ValueError as e:
                    raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"JSON Parse error: {e}") from None
                v = server.resolve(name, version, label)
                signature = body.get("signature_name") or "serving_default"
                fn = server._model(name, v).signatures.get(signature)
                if fn is None:
                    raise ServingError(
                        grpc.StatusCode.INVALID_ARGUMENT, f'Serving signature key "{signature}" not found.'
                    )
                specs = fn.structured_input_signature[1]
                columnar = "inputs" in body
                if columnar:
                    raw_inputs = body["inputs"]
                    if not isinstance(raw_inputs, dict):
                        (only,) = specs
                        raw_inputs = {only: raw_inputs}
                elif "instances" in body:
                    rows = body["instances"]
                    if rows and all(isinstance(r, dict) and "b64" not in r for r in rows):
                        raw_inputs = {k: [r.get(k) for r in rows] for k in rows[0]}
                    else:
                        (only,) = specs
                        raw_inputs = {only: rows}
                else:
                    raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Missing 'inputs' or 'instances' key")
                inputs = {
                    k: _from_json(val, specs[k].dtype if k in specs else tf.string) for k, val in raw_inputs.items()
                }
                outputs = server.run(name, v, signature, inputs)
                as_json = {k: _to_json(k, val) for k, val in outputs.items()}
                if columnar:
                    out = {"outputs": as_json if len(as_json) > 1 else next(iter(as_json.values()))}
                else:
                    n = len(next(iter(as_json.values())))
                    if len(as_json) > 1:
                        out = {"predictions": [{k: val[i] for k, val in as_json.items()} for i in range(n)]}
                    else:
                        out = {"predictions": next(iter(as_json.values()))}
                self._send(200, out)
            except ServingError as e:
                self._send(_HTTP_STATUS.get(e.code, 500), {"error": e.message})

    return Handler


def main() -> None:
    """``python -m tests.serving.standin_server MODELS_DIR [GRPC_PORT REST_PORT]``: for trying
    the smoke test by hand without TF Serving (test stand-in only)."""
    import sys
    import time

    models_dir = sys.argv[1]
    ports = [int(p) for p in sys.argv[2:4]] or [8500, 8501]
    with StandinServer(models_dir, grpc_port=ports[0], rest_port=ports[1]) as s:
        print(f"TEST STAND-IN (not TF Serving): gRPC {s.grpc_target}, REST {s.rest_url}", flush=True)
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main()
