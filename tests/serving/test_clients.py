"""The predictors against the stand-in serving the exported model: same answers as
in-process, version and label resolution, errors that name what is wrong, retries."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

from keyclass.components.calibration import softmax
from keyclass.serving.grpc_client import GrpcPredictor
from keyclass.serving.local import LocalPredictor
from keyclass.serving.predictor import make_predictor
from keyclass.serving.rest_client import RestPredictor
from keyclass.serving.types import (
    ModelNotFoundError,
    Predictor,
    PredictorError,
    ServerUnavailableError,
    SignatureError,
)
from tests.serving.conftest import TEMPERATURE
from tests.serving.standin_server import StandinServer

SIGNATURES = ["serving_default", "grad_cam", "grad_cam_class", "serving_tf_example"]


@pytest.fixture(scope="module")
def local(exported_model):
    return LocalPredictor(exported_model.path)


def _remote(kind: str, standin, served_models, **kw):
    server = f"grpc://{standin.grpc_target}" if kind == "grpc" else standin.rest_url
    kw.setdefault("timeout_s", 10.0)
    return make_predictor(server, served_models.model_name, **kw)


@pytest.fixture(scope="module", params=["grpc", "rest"])
def remote(request, standin, served_models, local):
    return _remote(request.param, standin, served_models, classes=local.classes, retries=0)


def _class_index(n: int) -> list[int]:
    return [i % 3 for i in range(n)]


def test_local_predictor_follows_the_contract(local, images, exported_model):
    assert isinstance(local, Predictor)
    assert local.classes == ["cat", "dog", "fish"]
    assert local.image_size == 32
    assert local.version == exported_model.version and local.model_name == exported_model.model_name
    r = local.predict(images)
    assert r.probabilities.shape == (4, 3) and r.probabilities.dtype == np.float32
    np.testing.assert_allclose(r.probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert r.class_id.dtype == np.int64 and r.class_name == [local.classes[i] for i in r.class_id]
    np.testing.assert_allclose(r.confidence, r.probabilities.max(axis=1))
    # The tiny backbone downsamples 16x: a 2x2 grid at 32 px.
    assert r.heatmap.shape == (4, 2, 2) and 0 <= r.heatmap.min() and r.heatmap.max() <= 1
    assert local.predict(images, signature="serving_default").heatmap is None
    meta = local.metadata()
    assert set(meta["signatures"]) == set(SIGNATURES)
    assert meta["signatures"]["grad_cam_class"]["inputs"]["class_index"] == {"dtype": "DT_INT32", "shape": [-1]}


def test_local_predictor_takes_a_model_base_dir_and_version(served_models):
    base = f"{served_models.models_dir}/{served_models.model_name}"
    assert LocalPredictor(base).version == served_models.versions[-1]
    assert LocalPredictor(base, version=served_models.versions[0]).version == served_models.versions[0]
    with pytest.raises(PredictorError, match="no version 7"):
        LocalPredictor(base, version=7)


@pytest.mark.parametrize("signature", SIGNATURES)
def test_remote_answers_match_local(remote, local, images, signature):
    idx = _class_index(len(images)) if signature == "grad_cam_class" else None
    want, got = local.predict(images, signature, idx), remote.predict(images, signature, idx)
    np.testing.assert_allclose(got.probabilities, want.probabilities, atol=1e-5)
    np.testing.assert_allclose(got.confidence, want.confidence, atol=1e-5)
    np.testing.assert_allclose(got.raw_confidence, want.raw_confidence, atol=1e-5)
    # Served calibrated: softmax(logits / T), logits recovered from the raw softmax.
    logits = np.log(got.raw_probabilities.astype(np.float64))
    np.testing.assert_allclose(got.probabilities, softmax(logits, TEMPERATURE), atol=1e-5)
    assert got.class_name == want.class_name and got.class_id.tolist() == want.class_id.tolist()
    if want.heatmap is None:
        assert got.heatmap is None
    else:
        np.testing.assert_allclose(got.heatmap, want.heatmap, atol=1e-5)


def test_rest_and_grpc_agree(standin, served_models, images):
    g = _remote("grpc", standin, served_models)
    r = _remote("rest", standin, served_models)
    for sig in ("grad_cam", "grad_cam_class"):
        idx = _class_index(len(images)) if sig == "grad_cam_class" else None
        a, b = g.predict(images, sig, idx), r.predict(images, sig, idx)
        np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-5)
        np.testing.assert_allclose(a.heatmap, b.heatmap, atol=1e-5)
        assert a.class_name == b.class_name
    assert g.metadata()["signatures"] == r.metadata()["signatures"]


def test_grad_cam_class_explains_the_named_class(remote, local, images):
    a = remote.predict(images, "grad_cam_class", [0] * len(images))
    b = remote.predict(images, "grad_cam_class", [2] * len(images))
    assert not np.allclose(a.heatmap, b.heatmap)


@pytest.mark.parametrize("kind", ["grpc", "rest"])
def test_versions_and_labels_resolve_like_tf_serving(kind, standin, served_models, images):
    v1, v2 = served_models.versions
    cases = [({}, v2), ({"version": v1}, v1), ({"label": "stable"}, v1), ({"label": "canary"}, v2)]
    for kw, want in cases:
        p = _remote(kind, standin, served_models, **kw)
        assert p.metadata()["version"] == want, kw
        if kind == "grpc":  # gRPC answers say which version served them
            assert p.predict(images[:1], "serving_default").model_version == want, kw
        statuses = p.status()
        assert all(s["state"] == "AVAILABLE" for s in statuses)
        assert [s["version"] for s in statuses] == ([v1, v2] if not kw else [want])


@pytest.mark.parametrize("kind", ["grpc", "rest"])
def test_wrong_model_version_label_signature_are_named(kind, standin, served_models, images):
    with pytest.raises(ModelNotFoundError, match="'nope'"):
        _remote(kind, standin, served_models._replace(model_name="nope"), retries=0).predict(images)
    with pytest.raises(ModelNotFoundError, match="version 7"):
        _remote(kind, standin, served_models, version=7).predict(images)
    with pytest.raises(ModelNotFoundError, match="label 'gold'"):
        _remote(kind, standin, served_models, label="gold").predict(images)
    with pytest.raises(ModelNotFoundError, match="'nope'"):
        _remote(kind, standin, served_models._replace(model_name="nope")).status()
    p = _remote(kind, standin, served_models)
    with pytest.raises(SignatureError, match="'grad_kam'"):
        p.predict(images, signature="grad_kam")
    with pytest.raises(PredictorError, match="out of range"):
        p.predict(images[:1], "grad_cam_class", [5])


def test_requests_are_checked_before_sending(local, images):
    with pytest.raises(SignatureError, match="needs class_index"):
        local.predict(images, "grad_cam_class")
    with pytest.raises(SignatureError, match="2 ids for 4 images"):
        local.predict(images, "grad_cam_class", [0, 1])
    with pytest.raises(SignatureError, match="only used by 'grad_cam_class'"):
        local.predict(images, "grad_cam", [0, 1, 2, 0])
    with pytest.raises(SignatureError, match="no signature 'grad_kam'"):
        local.predict(images, "grad_kam")
    with pytest.raises(ValueError, match="empty"):
        local.predict([])


@pytest.mark.parametrize("kind", ["grpc", "rest"])
def test_retries_on_unavailable_then_gives_up(kind, standin, served_models, images):
    p = _remote(kind, standin, served_models, retries=3)
    p.backoff_s = 0.01
    standin.fail_next(2)
    before = standin.calls
    assert len(p.predict(images[:1])) == 1
    assert standin.calls - before == 3
    p.retries = 1
    standin.fail_next(5)
    try:
        with pytest.raises(ServerUnavailableError, match="unavailable after 2 attempts"):
            p.predict(images[:1])
    finally:
        standin.fail_next(0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_retries_until_a_late_server_starts(served_models, images):
    grpc_port, rest_port = _free_port(), _free_port()
    server = StandinServer(served_models.models_dir, grpc_port=grpc_port, rest_port=rest_port)
    timer = threading.Timer(1.0, server.start)
    timer.start()
    try:
        t0 = time.monotonic()
        for p in (
            GrpcPredictor(f"127.0.0.1:{grpc_port}", served_models.model_name, retries=6, backoff_s=0.2, timeout_s=5),
            RestPredictor(f"http://127.0.0.1:{rest_port}", served_models.model_name, retries=6, backoff_s=0.2),
        ):
            assert len(p.predict(images[:1], "serving_default")) == 1
        assert time.monotonic() - t0 >= 0.9
    finally:
        timer.join()
        server.stop()


def test_unreachable_server_is_named(served_models, images):
    port = _free_port()
    p = RestPredictor(f"http://127.0.0.1:{port}", served_models.model_name, retries=1, backoff_s=0.01)
    with pytest.raises(ServerUnavailableError, match=f"127.0.0.1:{port}"):
        p.predict(images[:1])


@pytest.mark.parametrize("kind", ["grpc", "rest"])
def test_remote_class_list_comes_from_config_or_pushed_model(kind, standin, served_models, exported_model, images):
    with pytest.raises(PredictorError, match="does not serve the class list"):
        _ = _remote(kind, standin, served_models).classes
    pushed = _remote(
        kind, standin, served_models, saved_model_dir=f"{served_models.models_dir}/{served_models.model_name}"
    )
    assert pushed.classes == ["cat", "dog", "fish"] and pushed.image_size == 32
    with pytest.raises(PredictorError, match="3 classes but the class list has 2"):
        _ = _remote(kind, standin, served_models, classes=["cat", "dog"]).classes
    misordered = _remote(kind, standin, served_models, classes=["fish", "dog", "cat"])
    with pytest.raises(PredictorError, match="not in the class list"):
        misordered.predict(images)


def test_factory_picks_the_transport(standin, served_models, exported_model):
    assert isinstance(make_predictor(f"grpc://{standin.grpc_target}", "m"), GrpcPredictor)
    assert isinstance(make_predictor(standin.rest_url, "m"), RestPredictor)
    assert isinstance(make_predictor("https://serving.example:8501/", "m"), RestPredictor)
    local = make_predictor("", saved_model_dir=exported_model.path)
    assert isinstance(local, LocalPredictor) and local.model_name == exported_model.model_name
    with pytest.raises(ValueError, match=r"grpc\(s\)://HOST:PORT"):
        make_predictor("tcp://x:1", "m")
    with pytest.raises(ValueError, match="saved_model_dir"):
        make_predictor("", "m")
    with pytest.raises(ValueError, match="version labels are a TF Serving feature"):
        make_predictor("", "m", label="stable", saved_model_dir=exported_model.path)
    with pytest.raises(ValueError, match="not both"):
        make_predictor(standin.rest_url, "m", version=1, label="stable")


def test_rest_row_and_columnar_formats_agree(standin, served_models, images):
    """The two REST bodies docs/serving.md shows give the same answers."""
    import base64
    import json as json_lib
    import urllib.request

    url = f"{standin.rest_url}/v1/models/{served_models.model_name}:predict"

    def post(body: dict) -> dict:
        req = urllib.request.Request(url, json_lib.dumps(body).encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json_lib.loads(resp.read())

    b64 = [{"b64": base64.b64encode(im).decode("ascii")} for im in images]
    columns = post({"signature_name": "grad_cam", "inputs": {"images": b64}})["outputs"]
    rows = post({"signature_name": "grad_cam", "instances": b64})["predictions"]
    assert len(rows) == len(images)
    assert [r["class_name"] for r in rows] == columns["class_name"]
    np.testing.assert_allclose([r["probabilities"] for r in rows], columns["probabilities"], atol=1e-6)
    idx = list(_class_index(len(images)))
    named = post(
        {
            "signature_name": "grad_cam_class",
            "instances": [{"images": b, "class_index": i} for b, i in zip(b64, idx, strict=True)],
        }
    )
    heat = post({"signature_name": "grad_cam_class", "inputs": {"images": b64, "class_index": idx}})["outputs"][
        "heatmap"
    ]
    np.testing.assert_allclose([r["heatmap"] for r in named["predictions"]], heat, atol=1e-6)
