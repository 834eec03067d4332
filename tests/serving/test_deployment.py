"""The deployment files: they parse as TF Serving / Kubernetes / compose read them,
agree with each other, and the readiness check really reads the model state."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from keyclass.components.classes import ClassList
from keyclass.pipeline.demo_images import DEMO_CLASSES
from tests.serving.tfs_protos import BatchingParameters, MonitoringConfig

SERVING = Path(__file__).resolve().parents[2] / "serving"
CONFIG_FILES = ("models.config", "batching_parameters.txt", "monitoring.config")
K8S_VERSION = "1.30.0"


def _models_config() -> model_server_config_pb2.ModelServerConfig:
    return text_format.Parse((SERVING / "models.config").read_text(), model_server_config_pb2.ModelServerConfig())


def _k8s_docs() -> list[dict]:
    docs = []
    for path in sorted((SERVING / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _deployment_container() -> dict:
    (dep,) = [d for d in _k8s_docs() if d["kind"] == "Deployment"]
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    return container


def _compose_service() -> dict:
    return yaml.safe_load((SERVING / "docker-compose.yml").read_text())["services"]["tensorflow-serving"]


def test_models_config_serves_the_demo_model_from_the_mounted_base_path():
    cfg = _models_config()
    (model,) = cfg.model_config_list.config
    assert model.model_platform == "tensorflow"
    assert model.name == ClassList(DEMO_CLASSES).model_name  # what `keyclass demo` pushes
    assert model.base_path == f"/models/{model.name}"
    # No version numbers written by hand: the newest push is served, and no label can
    # name a version that does not exist (keyclass serving-config writes labels).
    assert model.model_version_policy.WhichOneof("policy_choice") == "latest"
    assert not model.version_labels


def test_batching_parameters_are_tuned_for_cpu():
    params = text_format.Parse((SERVING / "batching_parameters.txt").read_text(), BatchingParameters())
    assert params.num_batch_threads.value == 2  # the machines' cores
    assert params.batch_timeout_micros.value == 0
    assert params.max_batch_size.value >= 16  # keyclass predict's default batch
    assert params.max_enqueued_batches.value > 0
    assert not params.allowed_batch_sizes  # no padding on CPU


def test_monitoring_enables_prometheus():
    cfg = text_format.Parse((SERVING / "monitoring.config").read_text(), MonitoringConfig())
    assert cfg.prometheus_config.enable
    assert cfg.prometheus_config.path == "/monitoring/prometheus/metrics"


def test_compose_runs_pinned_tf_serving_with_the_config_files():
    svc = _compose_service()
    assert svc["image"] == "tensorflow/serving:2.16.1"
    assert set(svc["ports"]) == {"8500:8500", "8501:8501"}
    flags = dict(f.lstrip("-").split("=", 1) for f in svc["command"])
    assert flags["port"] == "8500" and flags["rest_api_port"] == "8501"
    mounts = {v.rsplit(":", 2)[1]: v.rsplit(":", 2)[0] for v in svc["volumes"]}
    for name, flag in zip(
        CONFIG_FILES, ("model_config_file", "batching_parameters_file", "monitoring_config_file"), strict=True
    ):
        assert flags[flag] == f"/config/{name}"
        assert mounts[f"/config/{name}"] == f"./{name}"
        assert (SERVING / name).is_file()
    assert "/models" in mounts  # the pushed models dir, where models.config's base_path points
    assert int(flags["model_config_file_poll_wait_seconds"]) > 0


@pytest.mark.parametrize("doc", _k8s_docs(), ids=lambda d: d["kind"])
def test_k8s_manifest_matches_the_kubernetes_schema(doc):
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_k8s_agrees_with_compose_and_the_config_files():
    docs = {d["kind"]: d for d in _k8s_docs()}
    assert set(docs) == {"Deployment", "Service", "ConfigMap", "PersistentVolumeClaim"}
    for name in CONFIG_FILES:
        assert docs["ConfigMap"]["data"][name] == (SERVING / name).read_text(), f"configmap.yaml: {name} differs"
    c = _deployment_container()
    assert c["image"] == _compose_service()["image"]
    assert c["args"][: len(_compose_service()["command"])] == _compose_service()["command"]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["MODEL_NAME"] == _models_config().model_config_list.config[0].name
    assert {p["containerPort"] for p in c["ports"]} == {8500, 8501}
    assert {p["port"] for p in docs["Service"]["spec"]["ports"]} == {8500, 8501}
    spec = docs["Deployment"]["spec"]["template"]["spec"]
    claims = [v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"] if "persistentVolumeClaim" in v]
    assert claims == [docs["PersistentVolumeClaim"]["metadata"]["name"]]


def _probe_scripts() -> dict[str, str]:
    compose = _compose_service()["healthcheck"]["test"]
    assert compose[:3] == ["CMD", "/bin/bash", "-c"]
    k8s = _deployment_container()["readinessProbe"]["exec"]["command"]
    assert k8s[:2] == ["/bin/bash", "-c"]
    return {"k8s": k8s[2], "compose": compose[3].replace("$$", "$")}


def test_readiness_check_is_the_same_in_k8s_and_compose():
    scripts = _probe_scripts()
    assert scripts["k8s"] == scripts["compose"]


def _probe(script: str, port: int, model: str) -> int:
    env = {"PATH": os.environ["PATH"], "REST_PORT": str(port), "MODEL_NAME": model}
    return subprocess.run(["/bin/bash", "-c", script], env=env, timeout=10).returncode


def test_readiness_probe_waits_for_available(standin, served_models):
    """Run the manifest's probe command against the stand-in's REST status."""
    script = _probe_scripts()["k8s"]
    name, versions = served_models.model_name, served_models.versions
    assert _probe(script, standin.rest_port, name) == 0
    assert _probe(script, standin.rest_port, "no-such-model") != 0
    try:
        for v in versions:
            standin.set_state(name, v, "LOADING")
        # The status URL answers 200 while loading; the probe must still say not ready.
        import requests

        assert requests.get(f"{standin.rest_url}/v1/models/{name}", timeout=5).status_code == 200
        assert _probe(script, standin.rest_port, name) != 0
    finally:
        for v in versions:
            standin.set_state(name, v, "AVAILABLE")
    assert _probe(script, standin.rest_port, name) == 0


def test_readiness_probe_fails_when_nothing_listens():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert _probe(_probe_scripts()["k8s"], port, "m") != 0
