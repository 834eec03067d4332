"""Find what a run left and write its report (``keyclass.pipeline.report``).

Which run a report covers:

- ``run_id`` given: that pipeline run of these classes (``keyclass report --run-id``);
- a results folder whose ``run.json`` names a locally pushed model: the run that
  pushed it (found in ML Metadata), so a ``predict`` report shows how its model came to be;
- predictions from a TF Serving endpoint: no pipeline run (said plainly in the report);
- otherwise the newest run of these classes' pipeline.

Where it goes (unless ``out`` is given): ``<results>/report.html`` for a prediction,
``<home>/reports/<pipeline>/<run id>/report.html`` for a training run.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from pathlib import Path

from keyclass.components.errors import ConfigError
from keyclass.pipeline.config import KeyclassConfig
from keyclass.pipeline.report import gather
from keyclass.pipeline.report.write import ReportResult, check_report_path, write_report


def invocation(cfg, command: str, **extra) -> dict:
    """What a command records about itself for its report (``run.json``)."""
    config = cfg.to_dict()
    return {
        "command": command,
        "classes": list(cfg.classes.names),
        "config": config,
        "overrides": gather.config_differences(config, KeyclassConfig().to_dict()),
        **extra,
    }


def find_run(cfg, run_id: str | None, inv: dict):
    """The pipeline run this report covers, or None (see the module docstring)."""
    if not cfg.metadata_path.is_file():  # never create a store just to look into it
        if run_id:
            raise ConfigError(f"--run-id {run_id}: there is no metadata store at {cfg.metadata_path}")
        return None
    from keyclass.pipeline import metadata

    conn = metadata.sqlite_connection(cfg.metadata_path)
    name = cfg.resolved_pipeline_name
    if run_id:
        run = metadata.pipeline_run(conn, name, run_id)
        if run is None:
            ids = metadata.pipeline_run_ids(conn, name)
            have = f"; its runs: {', '.join(ids[-5:])}" if ids else "; it has no runs"
            raise ConfigError(f"--run-id {run_id}: no such run of pipeline {name}{have}")
        return run
    if inv.get("server"):
        return None
    model_path = (inv.get("model") or {}).get("path")
    if model_path:
        found = metadata.run_that_pushed(conn, model_path)
        return metadata.pipeline_run(conn, found[0], found[1]) if found else None
    return metadata.pipeline_run(conn, name)


def model_for(run, inv: dict):
    m = inv.get("model") or {}
    if inv.get("server"):
        return gather.ModelInfo(
            name=str(m.get("name") or ""),
            version=str(m.get("version") or ""),
            path=str(inv["server"]),
            source="TF Serving",
            metadata=dict(m.get("metadata") or {}),
        )
    if m.get("path") and os.path.isdir(m["path"]):
        return gather.model_info(m["path"], "pushed model", str(m.get("name") or ""), str(m.get("version") or ""))
    if run is None:
        return None
    pushed = run.artifact("Pusher", "pushed_model")
    dest = str((pushed.properties if pushed else {}).get("pushed_destination") or "")
    if pushed and pushed.properties.get("pushed") and os.path.isdir(dest):
        return gather.model_info(dest, "pushed model", version=str(pushed.properties.get("pushed_version") or ""))
    model = run.artifact("Trainer", "model")
    if model is not None:
        path = gather.trainer_model_dir(model.uri)
        if os.path.isdir(path):
            return gather.model_info(path, "trainer output (not pushed)", name="", version="")
    return None


def default_path(cfg, run, results_dir: str) -> Path:
    if results_dir:
        return Path(results_dir) / gather.REPORT_FILE
    if run is not None:
        folder = re.sub(r"[^0-9A-Za-z._-]", "-", run.run_id)
        return cfg.home / "reports" / run.pipeline_name / folder / gather.REPORT_FILE
    return cfg.home / "reports" / cfg.model_name / gather.REPORT_FILE


def _stored_invocation(cfg, run, results_dir: str) -> dict:
    """A command's ``run.json`` for this run or results folder, when one was written."""
    candidates = []
    if results_dir:
        candidates.append(Path(results_dir) / gather.RUN_FILE)
    if run is not None:
        candidates.append(default_path(cfg, run, "").parent / gather.RUN_FILE)
    for p in candidates:
        data = gather.read_json(p)
        if isinstance(data, dict):
            return data
    return {}


def _eval_metrics(run) -> dict:
    ev = run.artifact("Evaluator", "evaluation") if run is not None else None
    if ev is None or not os.path.isdir(ev.uri):
        return {}
    from keyclass.pipeline.local_runner import read_eval_metrics

    return read_eval_metrics(ev.uri)


def write(
    cfg: KeyclassConfig,
    *,
    command: str,
    out: str | os.PathLike | None = None,
    run_id: str | None = None,
    results_dir: str = "",
    record: dict | None = None,
    predictor=None,
) -> ReportResult:
    """Write the report of a run and/or a results folder; returns where, how big, and
    how long it took. ``record`` is the command's own :func:`invocation` (written as
    ``run.json`` beside the report); without it, one an earlier command left is used."""
    t0 = time.perf_counter()
    if out:
        check_report_path(out)
    results_dir = str(results_dir or "")
    if results_dir and not (Path(results_dir) / "summary.json").is_file():
        if command == "report":
            raise ConfigError(f"--results {results_dir}: no summary.json there (not a keyclass predict results folder)")
        results_dir = ""
    inv = dict(record) if record is not None else _stored_invocation(cfg, None, results_dir)
    run = find_run(cfg, run_id, inv)
    if record is None and not inv:
        inv = _stored_invocation(cfg, run, results_dir)
    model = model_for(run, inv)
    if predictor is None and model is not None and model.source == "pushed model":
        # Heatmaps of abstained predictions for a later report: the same model, loaded
        # only if the gallery needs it.
        def predictor():
            from keyclass.serving.local import LocalPredictor

            return LocalPredictor(model.path)

    target = Path(out) if out else default_path(cfg, run, results_dir)
    check_report_path(target)  # a default path too: never over a file keyclass did not write
    result = write_report(
        target,
        classes=list(cfg.classes.names),
        command=command,
        run=run,
        model=model,
        results_dir=results_dir,
        invocation=inv,
        eval_metrics=_eval_metrics(run),
        predictor=predictor,
        image_size=cfg.image_size,
        record=record is not None,
    )
    return dataclasses.replace(result, seconds=time.perf_counter() - t0)


# What the commands call (train, run, predict) -------------------------------------------
def run_ids(cfg: KeyclassConfig) -> set[str]:
    """The pipeline's run ids so far (none without a metadata store)."""
    if not cfg.metadata_path.is_file():
        return set()
    from keyclass.pipeline import metadata

    return set(metadata.pipeline_run_ids(metadata.sqlite_connection(cfg.metadata_path), cfg.resolved_pipeline_name))


def for_command(cfg: KeyclassConfig, command: str, **kwargs) -> str:
    """Write a command's report; returns its path, or "" after saying on stderr why it
    could not be written (the command's own result stands either way)."""
    from keyclass.pipeline import terminal

    extra = {k: kwargs.pop(k) for k in ("prediction_path", "server", "model", "error") if k in kwargs}
    try:
        with terminal.stage("report"):
            result = write(cfg, command=command, record=invocation(cfg, command, **extra), **kwargs)
    except Exception as e:  # noqa: BLE001 - a report failure must not hide the run's result
        terminal.write_error(f"the report was not written: {type(e).__name__}: {e}")
        return ""
    return str(result.path)


def after_failure(cfg: KeyclassConfig, command: str, error: BaseException, runs_before: set[str] | None = None) -> None:
    """A failed run's report, showing how far it got and why it stopped; written only
    when a pipeline run started (not for an error before any work)."""
    if runs_before is not None and not run_ids(cfg) - runs_before:
        return
    path = for_command(cfg, command, error=f"{type(error).__name__}: {error}")
    if path:
        from keyclass.pipeline import terminal

        terminal.write_error(f"the run's report: {path}")


def for_prediction(cfg: KeyclassConfig, command: str, path: str, predictor) -> str:
    """The report of a prediction: the results folder, the predictor that made it (for
    the gallery's heatmaps), and the model's lineage when it is a local pushed model."""
    model = {"name": getattr(predictor, "model_name", ""), "version": getattr(predictor, "version", None)}
    if cfg.predict.server:
        model["metadata"] = {"classes": list(predictor.classes)}
    else:
        model["path"] = getattr(predictor, "saved_model_dir", "")
    return for_command(
        cfg,
        command,
        results_dir=cfg.predict.results,
        predictor=predictor,
        prediction_path=str(Path(path).resolve()),
        server=cfg.predict.server,
        model=model,
    )
