"""The ML Metadata store the local runner uses: what each pipeline node produced."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import metadata


def sqlite_connection(path: str | os.PathLike) -> metadata_store_pb2.ConnectionConfig:
    """The embedded SQLite ML Metadata store the local runner uses."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return metadata.sqlite_metadata_connection_config(str(path))


def latest_outputs(
    connection: metadata_store_pb2.ConnectionConfig, pipeline_name: str, node_id: str
) -> dict[str, list[metadata_store_pb2.Artifact]]:
    """Output artifacts, by output key, of the node's latest completed or cached run."""
    store = metadata_store.MetadataStore(connection)
    ctx = store.get_context_by_type_and_name("node", f"{pipeline_name}.{node_id}")
    if ctx is None:
        return {}
    done = (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED)
    execs = [e for e in store.get_executions_by_context(ctx.id) if e.last_known_state in done]
    if not execs:
        return {}
    latest = max(execs, key=lambda e: (e.create_time_since_epoch, e.id))
    out: dict[str, list] = {}
    events = store.get_events_by_execution_ids([latest.id])
    outputs = [
        e for e in events if e.type in (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
    ]
    arts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in outputs])}
    for e in outputs:
        key = e.path.steps[0].key if e.path.steps else ""
        if e.artifact_id in arts:
            out.setdefault(key, []).append(arts[e.artifact_id])
    return out


# Whole pipeline runs (the report reads them) -----------------------------------------
@dataclasses.dataclass
class ArtifactInfo:
    """One artifact as plain data: ML Metadata id, type name, URI and custom properties."""

    id: int
    type: str
    uri: str
    properties: dict[str, Any]


@dataclasses.dataclass
class NodeRun:
    """One node's execution in a pipeline run (COMPLETE, CACHED, FAILED, RUNNING...)."""

    node_id: str
    execution_id: int
    state: str
    started_ms: int
    ended_ms: int
    parameters: dict[str, Any]
    inputs: dict[str, list[ArtifactInfo]]
    outputs: dict[str, list[ArtifactInfo]]


@dataclasses.dataclass
class PipelineRun:
    """What one ``LocalDagRunner`` run of a pipeline did, node by node, in order."""

    pipeline_name: str
    run_id: str
    created_ms: int
    nodes: dict[str, NodeRun]

    @property
    def seconds(self) -> float:
        if not self.nodes:
            return 0.0
        return (max(n.ended_ms for n in self.nodes.values()) - min(n.started_ms for n in self.nodes.values())) / 1000

    def artifact(self, node_id: str, key: str) -> ArtifactInfo | None:
        """The first ``key`` output of ``node_id`` in this run, or None."""
        node = self.nodes.get(node_id)
        arts = node.outputs.get(key) if node else None
        return arts[0] if arts else None


def _value(v: metadata_store_pb2.Value) -> Any:
    kind = v.WhichOneof("value")
    if kind == "struct_value":
        from google.protobuf import json_format

        return json_format.MessageToDict(v.struct_value)
    return getattr(v, kind) if kind else None


def _artifact_info(a: metadata_store_pb2.Artifact, type_names: dict[int, str]) -> ArtifactInfo:
    return ArtifactInfo(
        a.id, type_names.get(a.type_id, a.type), a.uri, {k: _value(v) for k, v in a.custom_properties.items()}
    )


def pipeline_run_ids(connection: metadata_store_pb2.ConnectionConfig, pipeline_name: str) -> list[str]:
    """The pipeline's run ids, oldest first."""
    store = metadata_store.MetadataStore(connection)
    pipeline = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline is None:
        return []
    runs = [c for c in store.get_children_contexts_by_context(pipeline.id) if c.type == "pipeline_run"]
    if not runs:  # older stores link runs to the pipeline only through executions
        execs = store.get_executions_by_context(pipeline.id)
        by_id = {}
        for ctx in store.get_contexts_by_type("pipeline_run"):
            ids = {e.id for e in store.get_executions_by_context(ctx.id)}
            if ids & {e.id for e in execs}:
                by_id[ctx.id] = ctx
        runs = list(by_id.values())
    return [c.name for c in sorted(runs, key=lambda c: (c.create_time_since_epoch, c.id))]


def pipeline_run(
    connection: metadata_store_pb2.ConnectionConfig, pipeline_name: str, run_id: str | None = None
) -> PipelineRun | None:
    """The run ``run_id`` of ``pipeline_name`` (default: the newest), or None."""
    ids = pipeline_run_ids(connection, pipeline_name)
    if not ids or (run_id is not None and run_id not in ids):
        return None
    run_id = run_id or ids[-1]
    store = metadata_store.MetadataStore(connection)
    run_ctx = store.get_context_by_type_and_name("pipeline_run", run_id)
    execs = {e.id: e for e in store.get_executions_by_context(run_ctx.id)}
    type_names = {t.id: t.name for t in store.get_artifact_types()}
    nodes: dict[str, NodeRun] = {}
    prefix = f"{pipeline_name}."
    for ctx in store.get_contexts_by_type("node"):
        if not ctx.name.startswith(prefix):
            continue
        mine = [execs[e.id] for e in store.get_executions_by_context(ctx.id) if e.id in execs]
        if not mine:
            continue
        e = max(mine, key=lambda x: (x.create_time_since_epoch, x.id))
        events = store.get_events_by_execution_ids([e.id])
        arts = {a.id: a for a in store.get_artifacts_by_id([ev.artifact_id for ev in events])}
        inputs: dict[str, list[ArtifactInfo]] = {}
        outputs: dict[str, list[ArtifactInfo]] = {}
        for ev in events:
            if ev.artifact_id not in arts:
                continue
            key = ev.path.steps[0].key if ev.path.steps else ""
            if ev.type in (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT):
                outputs.setdefault(key, []).append(_artifact_info(arts[ev.artifact_id], type_names))
            elif ev.type in (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT):
                inputs.setdefault(key, []).append(_artifact_info(arts[ev.artifact_id], type_names))
        node_id = ctx.name[len(prefix) :]
        nodes[node_id] = NodeRun(
            node_id=node_id,
            execution_id=e.id,
            state=metadata_store_pb2.Execution.State.Name(e.last_known_state),
            started_ms=e.create_time_since_epoch,
            ended_ms=e.last_update_time_since_epoch,
            parameters={k: _value(v) for k, v in e.custom_properties.items() if not k.startswith("__")},
            inputs=inputs,
            outputs=outputs,
        )
    ordered = dict(sorted(nodes.items(), key=lambda kv: (kv[1].started_ms, kv[1].execution_id)))
    return PipelineRun(pipeline_name, run_id, run_ctx.create_time_since_epoch, ordered)


def run_that_pushed(connection: metadata_store_pb2.ConnectionConfig, pushed_path: str) -> tuple[str, str] | None:
    """(pipeline name, run id) of the run whose Pusher pushed ``pushed_path``, or None."""
    store = metadata_store.MetadataStore(connection)
    want = os.path.normpath(str(pushed_path))
    for a in store.get_artifacts_by_type("PushedModel"):
        dest = a.custom_properties.get("pushed_destination")
        if dest is None or os.path.normpath(dest.string_value) != want:
            continue
        events = store.get_events_by_artifact_ids([a.id])
        producers = [ev.execution_id for ev in events if ev.type == metadata_store_pb2.Event.OUTPUT]
        for ctx in store.get_contexts_by_execution(producers[0]) if producers else []:
            if ctx.type == "pipeline_run":
                pipelines = [c for c in store.get_contexts_by_execution(producers[0]) if c.type == "pipeline"]
                return (pipelines[0].name if pipelines else "", ctx.name)
    return None
