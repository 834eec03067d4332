"""Where results live: the ML Metadata store (what each pipeline node produced) and the
pushed-model store (``<home>/models/<model_name>/<version>/``, TF Serving's layout)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import metadata

from pipeline.config import class_set_id, parse_classes


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


@dataclasses.dataclass
class StoredModel:
    """One pushed version of a model."""

    model_name: str
    version: int
    path: str
    metadata: dict

    @property
    def classes(self) -> list[str]:
        return list(self.metadata.get("classes", []))


def _read_meta(version_dir: Path) -> dict | None:
    meta = version_dir / "assets.extra" / "keyclass.json"
    if not (version_dir / "saved_model.pb").is_file() or not meta.is_file():
        return None
    try:
        return json.loads(meta.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def list_models(models_dir: str | os.PathLike) -> list[StoredModel]:
    """Every complete pushed version (hidden temp dirs of pushes in flight are skipped)."""
    root = Path(models_dir)
    out = []
    if not root.is_dir():
        return out
    for model_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for vdir in sorted(
            (p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)
        ):
            meta = _read_meta(vdir)
            if meta is not None:
                out.append(StoredModel(model_dir.name, int(vdir.name), str(vdir), meta))
    return out


def find_model(models_dir: str | os.PathLike, classes: list[str], version: int = 0) -> StoredModel | None:
    """The newest (or the given) pushed version trained on exactly ``classes``; order,
    case and spaces do not matter. The model's own class list is checked, not just its
    directory name."""
    wanted = parse_classes(classes)
    name = class_set_id(wanted)
    candidates = [
        m
        for m in list_models(models_dir)
        if m.model_name == name and sorted(m.classes) == wanted and (not version or m.version == version)
    ]
    return max(candidates, key=lambda m: m.version) if candidates else None
