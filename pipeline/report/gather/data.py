"""The data section: TFDV statistics per split (``FeatureStats.pb``), ExampleValidator's
anomalies (``SchemaDiff.pb``) and the validation gate's ``verdict.json``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from keyclass.components import layout
from keyclass.pipeline.report.gather.model import AnomalyRow, DataCheck, FeatureRow
from keyclass.pipeline.report.gather.readers import read_json


def _split_dirs(uri: str) -> dict[str, str]:
    if not uri or not os.path.isdir(uri):
        return {}
    return {d[len("Split-") :]: os.path.join(uri, d) for d in sorted(os.listdir(uri)) if d.startswith("Split-")}


def _split_protos(dirs: dict[str, str], filename: str, proto_cls) -> list[tuple[str, Any]]:
    """``(split, message)`` for each ``Split-<name>/<filename>`` that exists."""
    out = []
    for split, d in dirs.items():
        path = os.path.join(d, filename)
        if os.path.isfile(path):
            msg = proto_cls()
            msg.ParseFromString(Path(path).read_bytes())
            out.append((split, msg))
    return out


def _feature_summary(f) -> tuple[str, str]:
    kind = f.WhichOneof("stats") or ""
    if kind == "num_stats":
        s = f.num_stats
        return "number", f"mean {s.mean:.4g} [{s.min:.4g} – {s.max:.4g}], {s.common_stats.num_missing} missing"
    if kind == "string_stats":
        s = f.string_stats
        text = f"{s.unique} unique, {s.common_stats.num_missing} missing"
        if 0 < s.unique <= 10:
            text += ": " + ", ".join(f"{t.value} ({t.frequency:.0f})" for t in s.top_values[:10])
        return "bytes" if any(t.value == "__BYTES_VALUE__" for t in s.top_values) else "text", text
    return kind or "?", ""


def _rejection(error: str) -> dict:
    """The gate's verdict when its step failed: TFX removes a failed step's outputs, so
    the reasons come from the error the run stopped with (the gate lists one per line)."""
    problems = [line.strip()[2:] for line in error.splitlines() if line.strip().startswith("- ")]
    if not problems:
        problems = [error or "the ValidationGate step failed, and its error was not recorded with this run"]
    return {"ok": False, "problems": problems, "class_counts": {}}


def gather_data(
    statistics_uri: str, anomalies_uri: str, verdict_uri: str, gate_state: str = "", error: str = ""
) -> DataCheck | None:
    """TFDV statistics per split, ExampleValidator's anomalies, the validation gate."""
    stats_dirs, anomaly_dirs = _split_dirs(statistics_uri), _split_dirs(anomalies_uri)
    verdict = read_json(os.path.join(verdict_uri, "verdict.json")) if verdict_uri else None
    if verdict is None and gate_state == "FAILED":
        verdict = _rejection(error)
    if not stats_dirs and not anomaly_dirs and verdict is None:
        return None
    from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2

    examples: dict[str, int] = {}
    features: dict[str, FeatureRow] = {}
    labels: dict[str, dict[str, int]] = {}
    for split, msg in _split_protos(stats_dirs, "FeatureStats.pb", statistics_pb2.DatasetFeatureStatisticsList):
        for ds in msg.datasets:
            examples[split] = int(ds.num_examples)
            for f in ds.features:
                name = "/".join(f.path.step) or f.name
                kind, text = _feature_summary(f)
                features.setdefault(name, FeatureRow(name, kind, {})).per_split[split] = text
                if name == layout.F_LABEL_TEXT and f.WhichOneof("stats") == "string_stats":
                    labels[split] = {t.value: int(t.frequency) for t in f.string_stats.top_values}
    anomalies = []
    for split, msg in _split_protos(anomaly_dirs, "SchemaDiff.pb", anomalies_pb2.Anomalies):
        infos = sorted(msg.anomaly_info.items())
        if msg.HasField("dataset_anomaly_info"):
            infos.append(("(dataset)", msg.dataset_anomaly_info))
        for feature, info in infos:
            severity = anomalies_pb2.AnomalyInfo.Severity.Name(info.severity)
            anomalies.append(AnomalyRow(split, feature, severity, info.short_description, info.description))
    return DataCheck(examples, sorted(features.values(), key=lambda r: r.name), labels, anomalies, verdict, gate_state)
