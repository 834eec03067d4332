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

One module per section, importing only downward: :mod:`.model` (constants and
dataclasses) and :mod:`.readers` (small file readers) at the bottom; :mod:`.lineage`,
:mod:`.funnel`, :mod:`.data`, :mod:`.training`, :mod:`.gate` and :mod:`.prediction`
(prediction, calibration, gallery) above them; this module, the whole report, on top.
Every public name of those modules is re-exported here (``gather.X``).
"""

from __future__ import annotations

from keyclass.components.version import keyclass_version
from keyclass.pipeline.report.gather.data import gather_data
from keyclass.pipeline.report.gather.funnel import gather_funnel
from keyclass.pipeline.report.gather.gate import gather_gate
from keyclass.pipeline.report.gather.lineage import gather_lineage
from keyclass.pipeline.report.gather.model import (
    CALIBRATION_FIGURES,
    DUPLICATE_REASONS,
    GALLERY_PER_CELL,
    LABEL_ISSUE,
    REPORT_FILE,
    RUN_FILE,
    SAMPLES_PER_REASON,
    SECTIONS,
    AnomalyRow,
    Calibration,
    ClassFunnel,
    DataCheck,
    FeatureRow,
    Funnel,
    Gallery,
    GalleryClass,
    GalleryItem,
    GateResult,
    Lineage,
    MetricRow,
    ModelInfo,
    NodeRow,
    PhaseRow,
    Prediction,
    ReasonGroup,
    ReportData,
    Sample,
    Training,
)
from keyclass.pipeline.report.gather.prediction import (
    SELECTIVE_KEYS,
    abstained,
    gather_calibration,
    gather_gallery,
    gather_prediction,
)
from keyclass.pipeline.report.gather.readers import (
    config_differences,
    flatten,
    git_commit,
    model_info,
    read_json,
    read_jsonl,
    trainer_model_dir,
)
from keyclass.pipeline.report.gather.training import gather_training

__all__ = [
    "AnomalyRow",
    "CALIBRATION_FIGURES",
    "Calibration",
    "ClassFunnel",
    "DUPLICATE_REASONS",
    "DataCheck",
    "FeatureRow",
    "Funnel",
    "GALLERY_PER_CELL",
    "Gallery",
    "GalleryClass",
    "GalleryItem",
    "GateResult",
    "LABEL_ISSUE",
    "Lineage",
    "MetricRow",
    "ModelInfo",
    "NodeRow",
    "PhaseRow",
    "Prediction",
    "REPORT_FILE",
    "RUN_FILE",
    "ReasonGroup",
    "ReportData",
    "SAMPLES_PER_REASON",
    "SECTIONS",
    "SELECTIVE_KEYS",
    "Sample",
    "Training",
    "abstained",
    "config_differences",
    "flatten",
    "gather",
    "gather_calibration",
    "gather_data",
    "gather_funnel",
    "gather_gallery",
    "gather_gate",
    "gather_lineage",
    "gather_prediction",
    "gather_training",
    "git_commit",
    "keyclass_version",
    "missing_reasons",
    "model_info",
    "read_json",
    "read_jsonl",
    "trainer_model_dir",
]


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
