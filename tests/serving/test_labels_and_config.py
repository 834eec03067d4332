"""Serving what is pushed: a models.config from the versions that exist (keyclass
serving-config) and the shipped one, read by a stand-in that treats version policies and
labels as TF Serving does; label status as TF Serving answers it (every version), with
the client checking the labelled version itself; gRPC over TLS with a CA file."""

from __future__ import annotations

import shutil
from pathlib import Path

import grpc
import pytest
import requests
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

from keyclass.components.classes import ClassList
from keyclass.components.pusher.publish import publish
from keyclass.pipeline import commands
from keyclass.pipeline.cli import main
from keyclass.pipeline.config import load_config
from keyclass.serving import model_layout, serving_config
from keyclass.serving.predictor import make_predictor
from keyclass.serving.types import PredictorError, ServerUnavailableError
from tests.fixtures.tls import self_signed_cert
from tests.serving.standin_server import ServingError, StandinServer

SERVING = Path(__file__).resolve().parents[2] / "serving"
CLASSES = "cat,dog,fish"  # the exported test model's classes


def _remote(kind: str, server: StandinServer, model_name: str, **kw):
    url = f"grpc://{server.grpc_target}" if kind == "grpc" else server.rest_url
    kw.setdefault("timeout_s", 10.0)
    kw.setdefault("retries", 0)
    return make_predictor(url, model_name, **kw)


# Status by label, as TF Serving answers it ----------------------------------------------
def test_the_stand_in_answers_label_status_with_every_version_like_tf_serving(standin, served_models):
    """get_model_status_impl.cc: a version narrows the answer; a label does not."""
    name, versions = served_models.model_name, served_models.versions
    stub = model_service_pb2_grpc.ModelServiceStub(grpc.insecure_channel(standin.grpc_target))
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    request.model_spec.version_label = "stable"
    answer = stub.GetModelStatus(request, timeout=10)
    assert [s.version for s in answer.model_version_status] == versions
    rest = requests.get(f"{standin.rest_url}/v1/models/{name}/labels/stable", timeout=10).json()
    assert [int(s["version"]) for s in rest["model_version_status"]] == versions


@pytest.mark.parametrize("kind", ["grpc", "rest"])
def test_wait_until_available_checks_the_labelled_version_itself(kind, standin, served_models):
    name = served_models.model_name
    stable, canary = served_models.versions
    canary_client = _remote(kind, standin, name, label="canary")
    try:
        standin.set_state(name, canary, "LOADING")  # stable still AVAILABLE
        with pytest.raises(ServerUnavailableError, match="label 'canary'"):
            canary_client.wait_until_available(timeout_s=0.6, poll_s=0.1)
        assert _remote(kind, standin, name, label="stable").wait_until_available(timeout_s=5)[0]["version"] == stable
    finally:
        standin.set_state(name, canary, "AVAILABLE")
    (row,) = canary_client.wait_until_available(timeout_s=5, poll_s=0.1)
    assert row["version"] == canary and row["state"] == "AVAILABLE"
    assert [s["version"] for s in canary_client.status()] == [canary]


# models.config from what was pushed -------------------------------------------------------
@pytest.fixture
def home(tmp_path, monkeypatch, exported_model):
    """A keyclass home with two pushed versions of the exported test model."""
    home = tmp_path / "home"
    monkeypatch.setenv("KEYCLASS_HOME", str(home))
    base = home / "models" / ClassList(CLASSES).model_name
    versions = []
    for i in range(2):
        copy = tmp_path / f"export-{i}"
        shutil.copytree(exported_model.path, copy)
        (copy / "assets.extra" / "nonce").write_text(str(i))  # two different models
        versions.append(publish(str(copy), str(base))[0])
    return home, versions


def test_serving_config_labels_versions_that_exist_and_the_server_serves_them(home, capsys, tmp_path):
    home_dir, (old, new) = home
    out = tmp_path / "models.config"
    code = main(["serving-config", "-c", CLASSES, "--stable", str(old), "--canary", str(new), "--output", str(out)])
    assert code == 0, capsys.readouterr().err
    (model,) = serving_config.parse(out.read_text()).model_config_list.config
    assert dict(model.version_labels) == {"stable": old, "canary": new}
    assert sorted(model.model_version_policy.specific.versions) == [old, new]
    name = ClassList(CLASSES).model_name
    with StandinServer.from_config(out.read_text(), mount={"/models": str(home_dir / "models")}) as server:
        for kind in ("grpc", "rest"):
            for label, version in (("stable", old), ("canary", new)):
                p = _remote(kind, server, name, label=label)
                assert p.metadata()["version"] == version
                assert [s["version"] for s in p.wait_until_available(timeout_s=5)] == [version]


def test_serving_config_defaults_to_the_newest_and_refuses_unknown_versions(home, capsys):
    _, (old, new) = home
    assert main(["serving-config", "-c", CLASSES]) == 0
    (model,) = serving_config.parse(capsys.readouterr().out).model_config_list.config
    assert dict(model.version_labels) == {"stable": new}
    code = main(["serving-config", "-c", CLASSES, "--canary", "1700000001"])
    err = capsys.readouterr().err
    assert code == 2 and "--canary 1700000001: no such pushed version" in err and str(old) in err


def test_a_label_on_a_version_the_policy_does_not_load_is_refused_as_tf_serving_does(home):
    home_dir, (old, _) = home
    text = serving_config.serving_config(
        ClassList(CLASSES).model_name, str(home_dir / "models"), labels={"stable": old}
    )
    bad = text.replace(f"value: {old}", "value: 1700000009")
    with pytest.raises(ServingError, match="not currently available"):
        StandinServer.from_config(bad, mount={"/models": str(home_dir / "models")})


def test_the_shipped_models_config_serves_what_the_pusher_writes(exported_model, tmp_path):
    """The demo model's pushes, whatever their version numbers, are served as they land."""
    text = (SERVING / "models.config").read_text()
    (model,) = serving_config.parse(text).model_config_list.config
    base = tmp_path / "models" / model.name
    first = publish(exported_model.path, str(base))[0]
    with StandinServer.from_config(text, mount={"/models": str(tmp_path / "models")}) as server:
        p = _remote("grpc", server, model.name)
        assert p.metadata()["version"] == first
        copy = tmp_path / "retrained"
        shutil.copytree(exported_model.path, copy)
        (copy / "assets.extra" / "nonce").write_text("retrained")
        second = publish(str(copy), str(base))[0]
        assert second > first and sorted(model_layout.version_dirs(str(base))) == [first, second]
        assert _remote("rest", server, model.name).metadata()["version"] == second


# gRPC over TLS ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return self_signed_cert(tmp_path_factory.mktemp("tls"), "localhost", "DNS:localhost,IP:127.0.0.1")


def test_grpcs_with_a_ca_file(tls_files, served_models, images, tmp_path, monkeypatch):
    cert, key = tls_files
    tls = (key.read_bytes(), cert.read_bytes())
    with StandinServer(served_models.models_dir, tls=tls) as server:
        target = f"grpcs://localhost:{server.grpc_port}"
        kw = dict(classes=["cat", "dog", "fish"], timeout_s=10.0, retries=0)
        p = make_predictor(target, served_models.model_name, ca_file=str(cert), **kw)
        assert p.predict(images[:2]).class_name and p.endpoint == f"grpcs://localhost:{server.grpc_port}"
        with pytest.raises(ServerUnavailableError):  # the system's roots do not trust it
            make_predictor(target, served_models.model_name, **kw).predict(images[:1])
        with pytest.raises(ServerUnavailableError):  # plain gRPC cannot talk to a TLS port
            make_predictor(f"grpc://localhost:{server.grpc_port}", served_models.model_name, **kw).predict(images[:1])
        with pytest.raises(PredictorError, match="grpcs://"):
            make_predictor(f"grpc://localhost:{server.grpc_port}", served_models.model_name, ca_file=str(cert), **kw)

        # The same through keyclass's configuration (--server grpcs://... --ca-file ...).
        monkeypatch.setenv("KEYCLASS_HOME", str(tmp_path / "home"))
        cfg = load_config(
            overrides={
                "crawl.classes": CLASSES,
                "predict.server": target,
                "predict.ca_file": str(cert),
                "predict.model_name": served_models.model_name,
            }
        )
        assert commands.make_predictor(cfg).predict(images[:1]).class_name
