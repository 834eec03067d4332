"""Kubeflow compilation, offline: the same pipeline as the local runner, with the
image, cloud paths and Beam arguments flowing through."""

import json

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from keyclass.pipeline.config import ConfigError, load_config
from keyclass.pipeline.kubeflow_runner import build_kubeflow_pipeline, compile_pipeline
from keyclass.pipeline.local_runner import build_local_pipeline
from keyclass.pipeline.pipeline import INGESTION_IDS, TRAINING_IDS

IMAGE = "gcr.io/acme/keyclass:1.2.3"


def _cfg(tmp_path, **extra):
    return load_config(
        overrides={
            "crawl.classes": "cat,dog",
            "crawl.max_images_per_class": 600,
            "runner.home": str(tmp_path / "home"),
            "runner.image": IMAGE,
            "runner.cloud_pipeline_root": "gs://acme-bucket/keyclass",
            **extra,
        }
    )


def _executor_args(spec: dict) -> dict:
    """component id -> the container args of its executor."""
    out = {}
    executors = spec["pipelineSpec"]["deploymentSpec"]["executors"]
    for task_id, task in spec["pipelineSpec"]["root"]["dag"]["tasks"].items():
        label = spec["pipelineSpec"]["components"][task["componentRef"]["name"]].get("executorLabel")
        if label and "container" in executors[label]:
            out[task_id] = executors[label]["container"]
    return out


def _order(spec: dict) -> list[str]:
    tasks = spec["pipelineSpec"]["root"]["dag"]["tasks"]
    done, order = set(), []
    while len(order) < len(tasks):
        ready = sorted(t for t, v in tasks.items() if t not in done and set(v.get("dependentTasks", [])) <= done)
        assert ready, "cycle in compiled DAG"
        order.extend(ready)
        done.update(ready)
    return order


def test_dataflow_compile_has_every_component_in_order_with_image_and_args(tmp_path):
    cfg = _cfg(
        tmp_path,
        **{"runner.beam_runner": "dataflow", "runner.gcp_project": "acme", "runner.dataflow_temp_location": "gs://t"},
    )
    out = tmp_path / "pipeline.json"
    spec = compile_pipeline(cfg, str(out))
    on_disk = json.loads(out.read_text())
    assert on_disk["pipelineSpec"]["root"] == spec["pipelineSpec"]["root"]
    json_format.ParseDict(on_disk["pipelineSpec"], pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=True)
    tasks = spec["pipelineSpec"]["root"]["dag"]["tasks"]
    # KFP v2 compiles the resolver into two tasks named after it.
    resolver = "latest_blessed_model_resolver"
    assert {t.split("-")[0] for t in tasks} == set(INGESTION_IDS) | set(TRAINING_IDS)
    assert {t for t in tasks if t.startswith(resolver)} == {
        f"{resolver}-model-resolver",
        f"{resolver}-model-blessing-resolver",
    }
    order = _order(spec)
    chain = [*INGESTION_IDS, "Trainer", "Evaluator", "Pusher"]
    positions = [order.index(c) for c in chain]
    assert positions == sorted(positions), order
    assert "ValidationGate" in tasks["Trainer"].get("dependentTasks", [])
    containers = _executor_args(spec)
    assert {c["image"] for c in containers.values()} == {IMAGE}
    cleaner_args = " ".join(containers["ImageCleaner"]["args"])
    assert "--runner=DataflowRunner" in cleaner_args and "--project=acme" in cleaner_args
    text = out.read_text()
    assert "gs://acme-bucket/keyclass/" in text
    # The crawl setting reaches the ImageCrawler task as its own parameter, with its value.
    crawler_params = tasks["ImageCrawler"]["inputs"]["parameters"]
    assert crawler_params["max_images_per_class"]["runtimeValue"]["constantValue"] == {"intValue": "600"}
    assert crawler_params["min_images_per_class"]["runtimeValue"]["constantValue"] == {"intValue": "20"}


def test_flink_runner_args_flow_through(tmp_path):
    cfg = _cfg(tmp_path, **{"runner.beam_runner": "flink", "runner.flink_master": "flink:8081"})
    spec = compile_pipeline(cfg, str(tmp_path / "p.json"))
    args = " ".join(_executor_args(spec)["StatisticsGen"]["args"])
    assert "--runner=FlinkRunner" in args and "--flink_master=flink:8081" in args


def test_local_and_kubeflow_graphs_are_the_same(tmp_path):
    cfg = _cfg(tmp_path)
    local = build_local_pipeline(cfg)
    cluster = build_kubeflow_pipeline(cfg)

    def graph(p):
        return {c.id: sorted(u.id for u in c.upstream_nodes) for c in p.components}

    def params(p):
        return {c.id: json.dumps(c.exec_properties, sort_keys=True, default=str) for c in p.components}

    assert graph(local) == graph(cluster)
    crawl_local = dict(local.components[0].exec_properties)
    crawl_cluster = dict(cluster.components[0].exec_properties)
    snapshot = crawl_cluster.pop("snapshot")
    assert crawl_local.pop("snapshot") == cfg.crawl.snapshot
    assert crawl_local == crawl_cluster  # the same crawl, but for the snapshot:
    assert type(snapshot).__name__ == "RuntimeParameter"  # a runtime parameter on the cluster
    assert (snapshot.name, snapshot.default) == ("snapshot", cfg.crawl.snapshot)
    assert params(local)["Trainer"] == params(cluster)["Trainer"]


def test_crawl_snapshot_compiles_as_a_runtime_parameter_with_the_configured_default(tmp_path):
    cfg = _cfg(tmp_path, **{"crawl.snapshot": "2026-W48"})
    spec = compile_pipeline(cfg, str(tmp_path / "p.json"))
    root = spec["pipelineSpec"]["root"]
    assert root["inputDefinitions"]["parameters"]["snapshot"] == {"type": "STRING"}
    crawler_inputs = root["dag"]["tasks"]["ImageCrawler"]["inputs"]["parameters"]
    assert crawler_inputs["snapshot"] == {"componentInputParameter": "snapshot"}
    # The other crawl settings stay constants of the compiled spec.
    assert "runtimeValue" in crawler_inputs["max_images_per_class"]
    assert spec["runtimeConfig"]["parameters"]["snapshot"] == {"stringValue": "2026-W48"}


def test_missing_pipeline_root_is_refused(tmp_path):
    cfg = _cfg(tmp_path, **{"runner.cloud_pipeline_root": ""})
    with pytest.raises(ConfigError, match="cloud_pipeline_root"):
        compile_pipeline(cfg, str(tmp_path / "p.json"))


def test_compile_kubeflow_command(tmp_path, capsys, monkeypatch):
    from keyclass.pipeline.cli import main

    monkeypatch.setenv("KEYCLASS_HOME", str(tmp_path / "home"))
    out = tmp_path / "spec.json"
    code = main(
        [
            "compile-kubeflow", "-c", "cat,dog", "--output", str(out), "--image", IMAGE,
            "--pipeline-root", "gs://acme-bucket/keyclass", "--beam-runner", "flink", "--max-images", "300",
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    text = out.read_text()
    assert IMAGE in text and "--runner=FlinkRunner" in text and "gs://acme-bucket/keyclass/" in text
    assert "compiled" in capsys.readouterr().out
