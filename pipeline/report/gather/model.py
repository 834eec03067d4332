"""The report's data model: the section keys and file names, and the plain dataclasses
every ``gather_*`` reader returns (:class:`ReportData` holds them all). Reads nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from keyclass.components import layout

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
