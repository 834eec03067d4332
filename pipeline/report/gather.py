"""The report's data layer: pure readers of what a run left, into plain dataclasses.

Nothing here draws or renders. Each ``gather_*`` function takes paths (or a
:class:`~keyclass.pipeline.metadata.PipelineRun`) and returns a dataclass, or None when
its input is absent; :func:`gather` assembles a :class:`ReportData` and records, for
every section it could not fill, a plain sentence saying why (``ReportData.missing``).

Shared data contracts read here (COMMON.md): the cleaner's ``ledger.jsonl`` and
``report.json`` (with curation's ``label_issue`` / ``near_duplicate`` keys and its
``curation`` block when present), the Trainer's ``history.json`` and calibration files
beside it, ``assets.extra/keyclass.json`` (with its ``calibration`` block when
present), and the results folder's ``predictions.jsonl`` / ``summary.json``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from keyclass.components import layout
from keyclass.components.version import keyclass_version
from keyclass.serving import model_layout

# Section keys, in page order, and their headers (the template and the tests use these).
SECTIONS: dict[str, str] = {
    "lineage": "Lineage",
    "funnel": "The funnel",
    "data": "The data",
    "training": "Training",
    "gate": "Gate and push",
    "prediction": "Prediction",
    "calibration": "Calibration",
    "gallery": "Grad-CAM gallery",
}

RUN_FILE = "run.json"  # what a command records beside its report (config, model, inputs)
REPORT_FILE = "report.html"
SAMPLES_PER_REASON = 6
GALLERY_PER_CELL = 3
# The trainer's figures of calibration, beside history.json (COMMON.md).
CALIBRATION_FIGURES = (layout.RELIABILITY_PNG, layout.RISK_COVERAGE_PNG)
# Reasons from the curation issue (COMMON.md) that get their own layout.
LABEL_ISSUE = "label_issue"
DUPLICATE_REASONS = ("near_duplicate", "exact_duplicate")


# Lineage -------------------------------------------------------------------------------
@dataclasses.dataclass
class ModelInfo:
    """The model the run trained or the predictions came from."""

    name: str
    version: str
    path: str
    source: str  # "pushed model", "trainer output" or "TF Serving"
    metadata: dict  # assets.extra/keyclass.json (empty when not readable)

    @property
    def calibration(self) -> dict | None:
        block = self.metadata.get("calibration")
        return block if isinstance(block, dict) else None


@dataclasses.dataclass
class NodeRow:
    node_id: str
    state: str
    seconds: float
    artifacts: list[tuple[str, str]]  # (output key, uri)


@dataclasses.dataclass
class Lineage:
    keyclass_version: str
    git_commit: str
    command: str
    generated_at: str
    pipeline_name: str = ""
    run_id: str = ""
    run_state: str = ""
    run_seconds: float | None = None
    nodes: list[NodeRow] = dataclasses.field(default_factory=list)
    model: ModelInfo | None = None
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)  # dotted key -> value
    config: dict[str, Any] = dataclasses.field(default_factory=dict)  # dotted key -> value
    parameters: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # node -> exec parameters
    server: str = ""
    prediction_path: str = ""
    error: str = ""  # why the command failed, when it did
    notes: list[str] = dataclasses.field(default_factory=list)


# Funnel --------------------------------------------------------------------------------
@dataclasses.dataclass
class Sample:
    """One ledger line shown as a tile: the image (raw file) when there is one."""

    image: str | None  # path of the stored file
    caption: str
    detail: str = ""
    pair: str | None = None  # duplicates: the kept picture
    pair_caption: str = ""
    note: str = ""  # shown instead of a picture when there is none (or it does not decode)


@dataclasses.dataclass
class ReasonGroup:
    outcome: str
    reason: str
    count: int
    kind: str  # "single", "pair" (duplicates) or "label" (label issues)
    samples: list[Sample]


@dataclasses.dataclass
class ClassFunnel:
    name: str
    stages: list[tuple[str, int]]
    outcomes: dict[str, int]
    groups: list[ReasonGroup]
    kept: list[Sample]


@dataclasses.dataclass
class Funnel:
    stages: list[str]
    classes: list[ClassFunnel]
    totals: dict
    curation: dict | None
    engine_errors: list
    unknown_keywords: dict
    ledger_lines: int
    accounted: bool  # every ledger line has an outcome, and per-class outcomes add up to found
    report_uri: str


# Data ----------------------------------------------------------------------------------
@dataclasses.dataclass
class FeatureRow:
    name: str
    kind: str
    per_split: dict[str, str]


@dataclasses.dataclass
class AnomalyRow:
    split: str
    feature: str
    severity: str
    short: str
    description: str


@dataclasses.dataclass
class DataCheck:
    examples: dict[str, int]
    features: list[FeatureRow]
    label_counts: dict[str, dict[str, int]]
    anomalies: list[AnomalyRow]
    gate: dict | None  # verdict.json: ok, problems, class_counts
    gate_state: str  # the ValidationGate execution's state


# Training ------------------------------------------------------------------------------
@dataclasses.dataclass
class PhaseRow:
    name: str
    epochs: int
    best_epoch: int
    best_val_loss: float
    best_val_accuracy: float
    seconds: float


@dataclasses.dataclass
class Training:
    history: dict  # history.json as written by the trainer
    phases: list[PhaseRow]
    kept: str
    why: str
    model_run_uri: str


# Gate and push -------------------------------------------------------------------------
@dataclasses.dataclass
class MetricRow:
    metric: str
    candidate: float | None
    baseline: float | None
    threshold: str
    ok: bool | None


@dataclasses.dataclass
class GateResult:
    rows: list[MetricRow]
    has_baseline: bool
    baseline_uri: str
    blessed: bool | None
    pushed: bool | None
    pushed_destination: str
    pushed_version: str
    evaluator_state: str


# Prediction, calibration, gallery ------------------------------------------------------
@dataclasses.dataclass
class Prediction:
    results_dir: str
    summary: dict
    records: list[dict]
    root: str  # the predicted folder, when recorded
    threshold: float

    @property
    def truth_known(self) -> bool:
        return bool(self.summary.get("truth_known"))

    @property
    def faithfulness(self) -> dict | None:
        f = self.summary.get("faithfulness")
        return f if isinstance(f, dict) and f.get("images") else None


@dataclasses.dataclass
class Calibration:
    model_block: dict | None  # keyclass.json "calibration"
    trainer_figures: dict[str, str]  # file name -> path (reliability.png, risk_coverage.png)
    trainer_json: dict | None  # calibration.json
    selective: dict[str, Any]  # summary.json: coverage, selective_accuracy, ...
    certification: dict | None  # summary.json "certification": where the bound comes from
    points: list[tuple[float, bool]]  # (confidence, correct) of labelled predictions
    threshold: float | None


@dataclasses.dataclass
class GalleryItem:
    file: str
    predicted: str
    truth: str | None
    confidence: float
    raw_confidence: float | None
    kept: bool
    overlay: str | None  # the Grad-CAM overlay predict wrote
    original: str | None  # the predicted file, when the folder is known
    faithfulness: dict | None


@dataclasses.dataclass
class GalleryClass:
    name: str
    correct: list[GalleryItem]
    wrong: list[GalleryItem]
    abstained: list[GalleryItem]


@dataclasses.dataclass
class Gallery:
    classes: list[GalleryClass]
    truth_known: bool
    faithfulness: dict | None


@dataclasses.dataclass
class ReportData:
    title: str
    classes: list[str]
    lineage: Lineage
    funnel: Funnel | None = None
    data: DataCheck | None = None
    training: Training | None = None
    gate: GateResult | None = None
    prediction: Prediction | None = None
    calibration: Calibration | None = None
    gallery: Gallery | None = None
    missing: dict[str, str] = dataclasses.field(default_factory=dict)


# Small readers ------------------------------------------------------------------------
def read_json(path: str | os.PathLike) -> Any:
    """The parsed JSON file, or None when it does not exist."""
    p = Path(path)
    if not p.is_file():
        return None
    return json.loads(p.read_text())


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    p = Path(path)
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def git_commit(path: str | os.PathLike | None = None) -> str:
    """The commit of the keyclass checkout this code runs from (an editable install), or
    "" when it is not one (an installed wheel, even inside some other repository)."""
    here = Path(__file__).resolve()
    where = Path(path) if path else here.parent

    def git(*args: str) -> subprocess.CompletedProcess | None:
        try:
            return subprocess.run(
                ["git", "-C", str(where), *args], capture_output=True, text=True, timeout=5, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None

    tracked = git("ls-files", "--error-unmatch", str(here))  # this very file is in that repository
    head = git("rev-parse", "--short=12", "HEAD")
    if not tracked or tracked.returncode != 0 or not head or head.returncode != 0:
        return ""
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return head.stdout.strip() + (" (with uncommitted changes)" if dirty and dirty.stdout.strip() else "")


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_differences(config: dict, defaults: dict) -> dict[str, Any]:
    """Settings whose value differs from the default (from a file, a flag or --set)."""
    flat, base = flatten(config), flatten(defaults)
    return {k: v for k, v in flat.items() if base.get(k, object()) != v}


def model_info(path: str, source: str, name: str = "", version: str = "") -> ModelInfo:
    meta = model_layout.read_metadata(path) or {}
    if not version:
        base = os.path.basename(os.path.normpath(path))
        version = base if base.isdigit() else ""
    if not name and version:
        name = os.path.basename(os.path.dirname(os.path.normpath(path)))
    return ModelInfo(name=name, version=version, path=path, source=source, metadata=meta)


def trainer_model_dir(model_uri: str) -> str:
    """The SavedModel directory inside a Trainer ``model`` artifact (TFX's Format-Serving)."""
    from tfx.utils import path_utils

    return path_utils.serving_model_path(model_uri)


# Lineage -------------------------------------------------------------------------------
def gather_lineage(
    command: str,
    run=None,
    model: ModelInfo | None = None,
    invocation: dict | None = None,
) -> Lineage:
    """Who made this, from what: versions, the run and its artifacts, the model, config."""
    inv = invocation or {}
    lin = Lineage(
        keyclass_version=keyclass_version(),
        git_commit=git_commit(),
        command=command,
        generated_at=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        model=model,
        overrides=dict(inv.get("overrides") or {}),
        config=flatten(inv.get("config") or {}),
        server=str(inv.get("server") or ""),
        prediction_path=str(inv.get("prediction_path") or ""),
        error=str(inv.get("error") or ""),
    )
    if run is not None:
        lin.pipeline_name, lin.run_id, lin.run_seconds = run.pipeline_name, run.run_id, run.seconds
        failed = [n.node_id for n in run.nodes.values() if n.state == "FAILED"]
        unfinished = [n.node_id for n in run.nodes.values() if n.state in ("RUNNING", "NEW", "UNKNOWN")]
        if failed:
            lin.run_state = f"failed at {', '.join(failed)}"
        elif unfinished:
            lin.run_state = f"unfinished: {', '.join(unfinished)}"
        else:
            cached = sum(n.state == "CACHED" for n in run.nodes.values())
            lin.run_state = "complete" + (
                f" ({cached} of {len(run.nodes)} steps reused from the cache)" if cached else ""
            )
        for n in run.nodes.values():
            arts = [(k, a.uri) for k, v in n.outputs.items() for a in v]
            lin.nodes.append(NodeRow(n.node_id, n.state, max(0.0, (n.ended_ms - n.started_ms) / 1000), arts))
            if n.parameters:
                lin.parameters[n.node_id] = dict(n.parameters)
    if run is not None and command in ("predict", "run") and model is not None and model.source == "pushed model":
        lin.notes.append("The pipeline run shown is the one that trained and pushed the model these predictions used.")
    if lin.server:
        lin.notes.append(
            f"Predictions came from the TF Serving endpoint {lin.server}: there is no pipeline lineage "
            "for a served model, only the name and version the server answered with."
        )
    elif run is None:
        lin.notes.append("No pipeline run was found for this report: it covers the files named below only.")
    return lin


# Funnel --------------------------------------------------------------------------------
def _raw_file(raw_uri: str, sha: str) -> str | None:
    if not raw_uri or not sha:
        return None
    path = os.path.join(raw_uri, layout.IMAGES_DIR, sha)
    return path if os.path.isfile(path) else None


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).netloc or url[:60]
    except ValueError:
        return url[:60]


def _sample(line: dict, raw_uri: str, kept_by_url: dict[str, str]) -> Sample:
    reason, outcome = line.get("reason") or "", line.get("outcome") or ""
    image = _raw_file(raw_uri, line.get("sha256") or "")
    host = _host(line.get("source_url") or "")
    if outcome == "kept":
        return Sample(image, line.get("split") or "")
    if reason == LABEL_ISSUE:
        return _label_issue_sample(line, image)
    if outcome == "duplicate":
        kept_sha = line.get("kept_sha256") or kept_by_url.get(line.get("detail") or "", "")
        bits = []
        if isinstance(line.get("phash_distance"), int):
            bits.append(f"pHash distance {line['phash_distance']}")
        if isinstance(line.get("cosine"), (int, float)):
            bits.append(f"cosine {line['cosine']:.3f}")
        return Sample(image, "duplicate", ", ".join(bits), pair=_raw_file(raw_uri, kept_sha), pair_caption="kept")
    detail = line.get("detail") or ""
    note = (reason or outcome).replace("_", " ")
    if outcome == "failed" or image is None:
        return Sample(None, host, detail, note=note)
    if reason == "balance":  # a good picture the class had too many of: nothing to say
        return Sample(image, "", detail)
    return Sample(image, host, detail, note=f"{note}: no picture to show")


def _label_issue_sample(line: dict, image: str | None) -> Sample:
    """Curation's label issue: the class it was crawled for against the one the
    classifier suggests, or, when they agree, the rule that flagged it (e.g. off_topic:
    the picture is far from every class). Its ``detail`` starts with the rule."""
    given, suggested = line.get("keyword") or "?", line.get("suggested_class") or ""
    detail = str(line.get("detail") or "")
    rule, sep, rest = detail.partition(":")
    rule = rule if sep and " " not in rule else ""
    if suggested and suggested != given:
        caption = f"given {given} → suggested {suggested}"
    else:
        caption = f"{(rule or 'flagged').replace('_', ' ')}: given {given}"
    quality = line.get("label_quality")
    bits = [f"label quality {quality:.2f}"] if isinstance(quality, (int, float)) else []
    if ";" in rest:  # the rule's own measure, e.g. "class distance 41.8 (off-topic beyond 39.3)"
        bits.append(rest.split(";", 1)[1].strip())
    return Sample(image, caption, " · ".join(bits))


def _pick(lines: list[dict], reason: str, n: int) -> list[dict]:
    """The samples worth looking at first: the lowest label quality, the most distant
    near duplicates; otherwise a stable spread (by content hash)."""
    if reason == LABEL_ISSUE:
        key = lambda r: (r.get("label_quality", 1.0), r.get("sha256") or "")  # noqa: E731
    elif reason == "near_duplicate":
        key = lambda r: (-(r.get("phash_distance") or 0), r.get("sha256") or "")  # noqa: E731
    else:
        key = lambda r: (r.get("sha256") or "", r.get("line", 0))  # noqa: E731
    return sorted(lines, key=key)[:n]


def gather_funnel(report_uri: str, raw_images_uri: str = "", per_reason: int = SAMPLES_PER_REASON) -> Funnel | None:
    """The cleaner's funnel per class, with sample tiles for every drop or duplicate reason."""
    if not report_uri:
        return None
    report = read_json(os.path.join(report_uri, layout.REPORT))
    if report is None:
        return None
    ledger = read_jsonl(os.path.join(report_uri, layout.LEDGER))
    kept_by_url = {r.get("source_url") or "": r.get("sha256") or "" for r in ledger if r.get("outcome") == "kept"}
    by_reason: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for r in ledger:
        by_reason[(r.get("keyword") or "", r.get("outcome") or "", r.get("reason") or "")].append(r)
    crawl = read_json(os.path.join(raw_images_uri, layout.CRAWL_REPORT)) if raw_images_uri else None

    classes = []
    stages: list[str] = []
    accounted = all((r.get("outcome") in layout.OUTCOMES) for r in ledger)
    for name, entry in (report.get("classes") or {}).items():
        funnel = entry.get("funnel") or {}
        stages = stages or list(funnel)
        outcomes = entry.get("outcomes") or {}
        accounted = accounted and sum(outcomes.values()) == funnel.get("found", sum(outcomes.values()))
        groups = []
        for outcome, reasons in (entry.get("reasons") or {}).items():
            for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1]):
                lines = by_reason.get((name, outcome, reason), [])
                kind = "label" if reason == LABEL_ISSUE else "pair" if outcome == "duplicate" else "single"
                samples = [_sample(r, raw_images_uri, kept_by_url) for r in _pick(lines, reason, per_reason)]
                groups.append(ReasonGroup(outcome, reason, int(count), kind, samples))
        kept = [
            _sample(r, raw_images_uri, kept_by_url)
            for r in _pick(by_reason.get((name, "kept", ""), []), "", per_reason)
        ]
        classes.append(ClassFunnel(name, [(s, int(funnel.get(s, 0))) for s in funnel], outcomes, groups, kept))
    return Funnel(
        stages=stages,
        classes=classes,
        totals=report.get("totals") or {},
        curation=report.get("curation") if isinstance(report.get("curation"), dict) else None,
        engine_errors=list((crawl or {}).get("engine_errors") or []),
        unknown_keywords=dict(report.get("unknown_keywords") or {}),
        ledger_lines=len(ledger),
        accounted=accounted,
        report_uri=report_uri,
    )


# Data ----------------------------------------------------------------------------------
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


# Training ------------------------------------------------------------------------------
def _why_kept(history: dict) -> tuple[str, str]:
    p1, p2, kept = history.get("phase1") or {}, history.get("phase2"), history.get("kept", "phase1")
    l1 = p1.get("best_val_loss")
    if not p2:
        return kept, "phase 2 (fine-tuning) did not run (fine_tune_epochs 0), so phase 1's weights were kept"
    l2 = p2.get("best_val_loss")
    if kept == "phase2":
        return kept, f"fine-tuning's best validation loss {l2:.4g} beat phase 1's {l1:.4g}"
    return (
        kept,
        f"fine-tuning's best validation loss {l2:.4g} did not beat phase 1's {l1:.4g}, so phase 1's weights were restored",
    )


def gather_training(model_run_uri: str) -> Training | None:
    """Both phases' histories (history.json) and which one was kept, and why."""
    if not model_run_uri:
        return None
    history = read_json(os.path.join(model_run_uri, layout.HISTORY_JSON))
    if not isinstance(history, dict) or "phase1" not in history:
        return None
    phases = []
    for key in ("phase1", "phase2"):
        p = history.get(key)
        if not p:
            continue
        phases.append(
            PhaseRow(
                name=key,
                epochs=len((p.get("history") or {}).get("loss", [])),
                best_epoch=int(p.get("best_epoch", 0)),
                best_val_loss=float(p.get("best_val_loss", float("nan"))),
                best_val_accuracy=float(p.get("best_val_accuracy", float("nan"))),
                seconds=float(p.get("seconds", 0.0)),
            )
        )
    kept, why = _why_kept(history)
    return Training(history, phases, kept, why, model_run_uri)


# Gate and push -------------------------------------------------------------------------
def _thresholds(eval_config_json: str) -> dict[str, dict]:
    """Metric name -> its value and change thresholds, from the Evaluator's recorded
    ``eval_config`` (the thresholds that run really used)."""
    try:
        cfg = json.loads(eval_config_json or "{}")
    except ValueError:
        return {}
    out = {}
    for spec in cfg.get("metrics_specs") or []:
        for m in spec.get("metrics") or []:
            t = m.get("threshold") or {}
            if t:
                out[_snake(m.get("class_name", ""))] = {
                    **(t.get("value_threshold") or {}),
                    **{f"change_{k}": v for k, v in (t.get("change_threshold") or {}).items()},
                }
    return out


def _snake(name: str) -> str:
    import re

    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _threshold_text(t: dict) -> str:
    parts = []
    if "upper_bound" in t:
        parts.append(f"≤ {t['upper_bound']:g}")
    if "lower_bound" in t:
        parts.append(f"≥ {t['lower_bound']:g}")
    if "change_direction" in t:
        sign = "+" if t["change_direction"] == "LOWER_IS_BETTER" else "−"
        parts.append(f"baseline {sign} {t.get('change_absolute', 0):g}")
    return " and ".join(parts)


def _passes(t: dict, cand: float | None, base: float | None) -> bool | None:
    """Whether ``cand`` meets the thresholds (the change one only against a baseline)."""
    if cand is None or not t:
        return None
    ok = True
    if "upper_bound" in t:
        ok &= cand <= t["upper_bound"]
    if "lower_bound" in t:
        ok &= cand >= t["lower_bound"]
    if "change_direction" in t and base is not None:
        allowed = float(t.get("change_absolute", 0))
        ok &= (cand - base <= allowed) if t["change_direction"] == "LOWER_IS_BETTER" else (base - cand <= allowed)
    return bool(ok)


def gather_gate(run, metrics: dict | None = None) -> GateResult | None:
    """The Evaluator's metrics against the latest blessed model and the thresholds, the
    blessing, and the push. ``metrics`` is TFMA's overall-slice metrics (candidate values
    and ``*_diff`` against the baseline), as ``local_runner.read_eval_metrics`` reads."""
    if run is None or "Evaluator" not in run.nodes:
        return None
    ev = run.nodes["Evaluator"]
    metrics = metrics or {}
    thresholds = _thresholds(str(ev.parameters.get("eval_config") or ""))
    baseline_arts = ev.inputs.get("baseline_model") or []
    rows = []
    for name in sorted(k for k in metrics if not k.endswith("_diff")):
        cand = metrics[name]
        diff = metrics.get(f"{name}_diff")
        base = cand - diff if (baseline_arts and diff is not None) else None
        t = thresholds.get(name, {})
        rows.append(MetricRow(name, cand, base, _threshold_text(t), _passes(t, cand, base)))
    blessing = run.artifact("Evaluator", "blessing")
    pushed = run.artifact("Pusher", "pushed_model")
    props = pushed.properties if pushed else {}
    return GateResult(
        rows=rows,
        has_baseline=bool(baseline_arts),
        baseline_uri=baseline_arts[0].uri if baseline_arts else "",
        blessed=None if blessing is None else bool(blessing.properties.get("blessed")),
        pushed=None if pushed is None else bool(props.get("pushed")),
        pushed_destination=str(props.get("pushed_destination") or ""),
        pushed_version=str(props.get("pushed_version") or ""),
        evaluator_state=ev.state,
    )


# Prediction ----------------------------------------------------------------------------
def gather_prediction(results_dir: str, root: str = "") -> Prediction | None:
    """``summary.json`` and ``predictions.jsonl`` of a results folder."""
    if not results_dir:
        return None
    summary = read_json(os.path.join(results_dir, "summary.json"))
    if not isinstance(summary, dict):
        return None
    records = read_jsonl(os.path.join(results_dir, "predictions.jsonl"))
    return Prediction(results_dir, summary, records, root, float(summary.get("threshold", 0.0)))


SELECTIVE_KEYS = ("coverage", "selective_accuracy", "certified_precision_lower_bound", "ece", "aurc")


def abstained(record: dict) -> bool:
    """Below the threshold: the calibration issue's ``abstained``, else not ``kept``."""
    if "abstained" in record:
        return bool(record["abstained"])
    return not record.get("kept", False)


def gather_calibration(
    model: ModelInfo | None, model_run_uri: str, prediction: Prediction | None
) -> Calibration | None:
    """Calibration from the model (keyclass.json), the trainer's figures, and the
    confidences of labelled predictions (for a reliability diagram and risk-coverage)."""
    block = model.calibration if model else None
    figures = {}
    trainer_json = None
    if model_run_uri:
        figures = {
            n: os.path.join(model_run_uri, n)
            for n in CALIBRATION_FIGURES
            if os.path.isfile(os.path.join(model_run_uri, n))
        }
        trainer_json = read_json(os.path.join(model_run_uri, layout.CALIBRATION_JSON))
    selective: dict[str, Any] = {}
    points: list[tuple[float, bool]] = []
    threshold = None
    certification = None
    if prediction is not None:
        selective = {k: prediction.summary[k] for k in SELECTIVE_KEYS if k in prediction.summary}
        cert = prediction.summary.get("certification")
        certification = cert if isinstance(cert, dict) else None
        threshold = prediction.threshold
        for r in prediction.records:
            if r.get("error") is None and r.get("truth") is not None and r.get("confidence") is not None:
                points.append((float(r["confidence"]), r.get("class") == r["truth"]))
    if not block and not figures and not trainer_json and not selective and not points:
        return None
    return Calibration(block, figures, trainer_json, selective, certification, points, threshold)


def _overlay_path(record: dict) -> str | None:
    for p in record.get("images") or []:
        if str(p).endswith("_gradcam.jpg") and os.path.isfile(p):
            return str(p)
    return None


def gather_gallery(
    prediction: Prediction | None, classes: Iterable[str], per_cell: int = GALLERY_PER_CELL
) -> Gallery | None:
    """Per predicted class: the most confident correct and wrong predictions above the
    threshold, and the abstained ones (least confident first), with their faithfulness
    scores. An image appears in one cell only."""
    if prediction is None:
        return None
    rows = [r for r in prediction.records if r.get("error") is None and r.get("class")]
    if not rows:
        return None

    def item(r: dict) -> GalleryItem:
        original = os.path.join(prediction.root, r["file"]) if prediction.root else None
        return GalleryItem(
            file=r["file"],
            predicted=r["class"],
            truth=r.get("truth"),
            confidence=float(r["confidence"]),
            raw_confidence=r.get("raw_confidence"),
            kept=bool(r.get("kept")),
            overlay=_overlay_path(r),
            original=original if original and os.path.isfile(original) else None,
            faithfulness=r.get("faithfulness"),
        )

    out = []
    for c in classes:
        mine = [r for r in rows if r["class"] == c]
        confident = sorted((r for r in mine if not abstained(r)), key=lambda r: -r["confidence"])
        if prediction.truth_known:
            correct = [r for r in confident if r.get("truth") == c]
            wrong = [r for r in confident if r.get("truth") not in (None, c)]
        else:
            correct, wrong = confident, []
        low = sorted((r for r in mine if abstained(r)), key=lambda r: r["confidence"])
        out.append(
            GalleryClass(
                c,
                [item(r) for r in correct[:per_cell]],
                [item(r) for r in wrong[:per_cell]],
                [item(r) for r in low[:per_cell]],
            )
        )
    return Gallery(out, prediction.truth_known, prediction.faithfulness)


# The whole report --------------------------------------------------------------------------
def missing_reasons(data: ReportData, run, invocation: dict | None) -> dict[str, str]:
    """A plain sentence for every section the report could not fill."""
    inv = invocation or {}
    no_run = "no pipeline run: " + (
        "these predictions came from a TF Serving endpoint, which has no pipeline lineage"
        if inv.get("server")
        else "none was found in ML Metadata for these classes"
    )
    out = {}
    if data.funnel is None:
        out["funnel"] = no_run if run is None else "the run has no ImageCleaner report (ledger.jsonl, report.json)"
    if data.data is None:
        out["data"] = no_run if run is None else "the run has no TFDV statistics, anomalies or gate verdict"
    if data.training is None:
        if run is None:
            out["training"] = no_run
        elif "Trainer" not in run.nodes:
            out["training"] = "this run did not train (it stopped before the Trainer, or was a dataset run)"
        else:
            out["training"] = f"the Trainer's history.json is missing (Trainer {run.nodes['Trainer'].state})"
    if data.gate is None:
        out["gate"] = no_run if run is None else "this run did not evaluate a model (no Evaluator execution)"
    if data.prediction is None:
        out["prediction"] = "no prediction in this report: run keyclass predict or keyclass run, or pass --results DIR"
    if data.calibration is None:
        out["calibration"] = (
            "no calibration data: the model's keyclass.json has no calibration block, the Trainer wrote no "
            "reliability.png or risk_coverage.png, and no labelled predictions give confidences to check"
        )
    elif data.calibration.model_block is None:
        out["calibration_model"] = (
            "the model carries no calibration (keyclass.json has no calibration block): its confidences are the "
            "softmax of its logits, untempered"
        )
    if data.gallery is None:
        out["gallery"] = "no predictions to explain: the gallery shows Grad-CAM for a prediction run"
    elif data.gallery.faithfulness is None:
        out["faithfulness"] = (
            "no faithfulness scores: run keyclass predict --faithfulness to score each kept prediction's heatmap "
            "against a random map (about 4 x steps more forward passes per kept image)"
        )
    return out


def gather(
    *,
    classes: list[str],
    command: str,
    run=None,
    model: ModelInfo | None = None,
    results_dir: str = "",
    invocation: dict | None = None,
    eval_metrics: dict | None = None,
) -> ReportData:
    """Everything the report shows, from the pipeline run (or None), the model and the
    results folder (or ""). ``eval_metrics`` are read by the caller (TFMA) when the run
    has an evaluation."""
    inv = invocation or {}
    art = lambda node, key: run.artifact(node, key).uri if run and run.artifact(node, key) else ""  # noqa: E731
    model_run_uri = art("Trainer", "model_run")
    prediction = gather_prediction(results_dir, str(inv.get("prediction_path") or ""))
    data = ReportData(
        title=f"keyclass report: {', '.join(classes)}",
        classes=list(classes),
        lineage=gather_lineage(command, run, model, inv),
        funnel=gather_funnel(art("ImageCleaner", "report"), art("ImageCrawler", "raw_images")),
        data=gather_data(
            art("StatisticsGen", "statistics"),
            art("ExampleValidator", "anomalies"),
            art("ValidationGate", "verdict"),
            run.nodes["ValidationGate"].state if run and "ValidationGate" in run.nodes else "",
            str(inv.get("error") or ""),
        ),
        training=gather_training(model_run_uri),
        gate=gather_gate(run, eval_metrics),
        prediction=prediction,
        calibration=gather_calibration(model, model_run_uri, prediction),
        gallery=gather_gallery(prediction, classes),
    )
    data.missing = missing_reasons(data, run, inv)
    return data
