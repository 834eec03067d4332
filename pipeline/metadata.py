"""The ML Metadata store the local runner uses: what each pipeline node produced."""

from __future__ import annotations

import os
from pathlib import Path

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
