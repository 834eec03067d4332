"""What each ``keyclass`` command does, as functions of the one configuration.

The CLI only parses arguments into a ``KeyclassConfig`` and calls one of these.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from keyclass.components.classes import keyword_file
from keyclass.pipeline import store, terminal
from keyclass.pipeline.config import ConfigError, KeyclassConfig

# Every command checks its arguments and settings before it imports TensorFlow, TFX or
# Beam (seconds), so a bad argument is refused at once; the heavy imports are local.


def _require_classes(cfg: KeyclassConfig) -> None:
    if not cfg.crawl.classes:
        raise ConfigError('classes: give them with -c, e.g. -c "cat,dog"')


def check_sources(cfg: KeyclassConfig) -> None:
    """Local sources must exist and be readable before any work starts."""
    for s in cfg.crawl.sources:
        kind, _, arg = s.partition(":")
        if kind == "folder":
            p = Path(arg).expanduser()
            if not p.is_dir():
                raise ConfigError(f"source {s}: {p} is not a readable folder")
            classes = cfg.classes
            found = {classes.for_folder(d.name) for d in p.iterdir() if d.is_dir()} - {None}
            if not found:
                raise ConfigError(f"source {s}: none of {cfg.crawl.classes} is a subfolder of {p}")
        elif kind == "urls" and "{keyword}" in arg:
            found = [c for c in cfg.classes if keyword_file(os.path.expanduser(arg), c) is not None]
            if not found:
                shown = ", ".join(arg.replace("{keyword}", c) for c in cfg.classes)
                raise ConfigError(f"source {s}: no URL list for any class (looked for {shown})")
        elif kind == "urls":
            p = Path(arg).expanduser()
            if not p.is_file():
                raise ConfigError(f"source {s}: {p} is not a readable file")


def format_curation(curation: dict) -> str:
    """What curated the dataset, in a line or two; a loud warning when nothing did."""
    if not curation:
        return ""
    near = curation.get("near_duplicate") or {}
    labels = curation.get("label_issues") or {}
    if curation.get("mode") != "embedding":
        return (
            f"WARNING: NO CURATION ({curation.get('reason') or 'no pretrained backbone'}): near duplicates by pHash "
            f"only (within {near.get('max_distance')} bits), off-topic and mislabelled images NOT pruned"
        )
    pruned = sum((labels.get("per_class") or {}).values())
    capped = labels.get("cap_hit") or []
    lines = [
        f"curation: {curation.get('backbone')} embeddings of {curation.get('images_embedded', 0)} images; "
        f"near copies = pHash within {near.get('close_distance')} bits and cosine >= {near.get('min_cosine')}, "
        f"or within {near.get('candidate_distance')} bits and cosine >= {near.get('far_min_cosine')} "
        f"({near.get('confirmed_pairs', 0)} of {near.get('candidate_pairs', 0)} candidate pairs); "
        f"label issues pruned: {pruned}"
    ]
    if labels.get("skipped"):
        lines.append(f"label issues not searched: {labels['skipped']}")
    if capped:
        lines.append(
            f"WARNING: the label-issue cap ({labels.get('cap')} of a class) bit in: {', '.join(capped)}; "
            "more images were flagged there than were pruned"
        )
    return "\n".join(lines)


def format_funnel(report: dict) -> str:
    """The cleaner's per-class funnel as a table, with what curated it."""
    classes = report.get("classes") or {}
    if not classes:
        return json.dumps(report, indent=2)
    stages = list(next(iter(classes.values()))["funnel"].keys())
    width = max(10, *(len(s) + 2 for s in stages))
    lines = [f"{'class':<20}" + "".join(f"{s:>{width}}" for s in stages)]
    for name, entry in classes.items():
        lines.append(f"{name[:19]:<20}" + "".join(f"{entry['funnel'].get(s, 0):>{width}}" for s in stages))
    curation = format_curation(report.get("curation") or {})
    if curation:
        lines.append(curation)
    return "\n".join(lines)


def _run_pipeline(cfg: KeyclassConfig, ingestion_only: bool):
    """The local run with a line per stage."""
    from keyclass.pipeline.local_runner import run_local
    from keyclass.pipeline.pipeline import stages

    with terminal.stage_lines(stages(ingestion_only)):
        return run_local(cfg, ingestion_only=ingestion_only)


def dataset(cfg: KeyclassConfig, out: str) -> dict:
    """crawl → clean → validate; copy TFRecords, ledger and report to ``out``."""
    _require_classes(cfg)
    check_sources(cfg)
    out_dir = Path(out)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ConfigError(f"--out {out_dir} is not empty; choose an empty or new folder")
    outcome = _run_pipeline(cfg, ingestion_only=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    for split_dir in sorted(Path(outcome.examples_uri).glob("Split-*")):
        shutil.copytree(split_dir, out_dir / split_dir.name)
    for name in ("ledger.jsonl", "report.json"):
        shutil.copy2(Path(outcome.report_uri) / name, out_dir / name)
    shutil.copy2(Path(outcome.raw_images_uri) / "manifest.jsonl", out_dir / "manifest.jsonl")
    return json.loads((out_dir / "report.json").read_text())


def train(cfg: KeyclassConfig, report: bool = True, command: str = "train"):
    """The whole pipeline: crawl, clean, validate, train, gate, push. With ``report``
    the run's HTML report is written too; a run that fails part-way gets one always."""
    from keyclass.pipeline import run_report

    _require_classes(cfg)
    check_sources(cfg)
    before = run_report.run_ids(cfg)
    try:
        outcome = _run_pipeline(cfg, ingestion_only=False)
    except Exception as e:
        run_report.after_failure(cfg, command, e, runs_before=before)
        raise
    if report:
        outcome.report_path = run_report.for_command(cfg, command)
    return outcome


def report(cfg: KeyclassConfig, run_id: str | None, results: str | None, out: str | None):
    """``keyclass report``: the report of a run (default the newest for these classes),
    with the predictions in ``results`` when given."""
    from keyclass.pipeline.run_report import write

    _require_classes(cfg)
    return write(cfg, command="report", run_id=run_id, results_dir=results or "", out=out)


def format_training(outcome) -> str:
    """The end of ``keyclass train``: the blessing decision, the push and the metrics."""
    m = outcome.eval_metrics
    loss = m.get("sparse_categorical_crossentropy")
    acc = m.get("sparse_categorical_accuracy")
    lines = [
        f"blessed: {'yes' if outcome.blessed else 'NO'}",
        f"validation loss: {loss:.4f}" if loss is not None else "validation loss: n/a",
        f"validation accuracy: {acc:.2%}" if acc is not None else "validation accuracy: n/a",
    ]
    if outcome.pushed:
        lines.append(f"pushed: {outcome.pushed_path} (version {outcome.pushed_version})")
        lines.append(_certificates_text(outcome.pushed_path))
    else:
        why = f" ({outcome.not_pushed_reason})" if getattr(outcome, "not_pushed_reason", "") else ""
        lines.append(f"pushed: no{why}; the served version stays as it was")
    return "\n".join(lines)


def _certificates_text(model_dir: str) -> str:
    """The pushed model's calibration and certified thresholds, for the console."""
    from keyclass.pipeline.predict.certify import format_certificates
    from keyclass.serving import model_layout

    meta = model_layout.read_metadata(model_dir) or {}
    return format_certificates(meta.get("calibration"), len(meta.get("classes", [])))


def models(cfg: KeyclassConfig) -> list[dict]:
    """Every pushed model version with what it was trained on and how it scored."""
    rows = []
    for m in store.list_models(cfg.models_dir):
        md = m.metadata
        rows.append(
            {
                "model": m.model_name,
                "version": m.version,
                "classes": m.classes,
                "trained_at": md.get("trained_at", ""),
                "val_loss": md.get("val_loss"),
                "val_accuracy": md.get("val_accuracy"),
                "images_per_class": md.get("train_images_per_class", {}),
                "backbone": md.get("backbone", ""),
                "path": m.path,
            }
        )
    return rows


def format_models(rows: list[dict]) -> str:
    if not rows:
        return 'no models yet: train one with keyclass train -c "a,b" or keyclass run'
    lines = [
        f"{'classes':<28}{'version':>12}  {'trained':<21}{'val_loss':>9}{'val_acc':>9}  {'backbone':<19}images/class"
    ]
    for r in rows:
        loss = f"{r['val_loss']:.4f}" if isinstance(r["val_loss"], (int, float)) else "-"
        acc = f"{r['val_accuracy']:.2%}" if isinstance(r["val_accuracy"], (int, float)) else "-"
        per = ",".join(str(v) for v in r["images_per_class"].values())
        lines.append(
            f"{','.join(r['classes'])[:27]:<28}{r['version']:>12}  {r['trained_at']:<21}{loss:>9}{acc:>9}  "
            f"{r['backbone']:<19}{per}"
        )
    return "\n".join(lines)


def serving_config(
    cfg: KeyclassConfig, stable: int | None, canary: int | None, base_path: str = "/models", output: str = ""
) -> str:
    """TF Serving's models.config for the pushed versions of these classes' model, with
    ``stable``/``canary`` labels on versions that exist (``stable`` defaults to the
    newest); written to ``output`` when given. Refuses versions that were never pushed."""
    from keyclass.serving.serving_config import ServingConfigError
    from keyclass.serving.serving_config import serving_config as build

    _require_classes(cfg)
    name = cfg.predict.model_name or cfg.model_name
    try:
        text = build(name, str(cfg.models_dir), base_path, {"stable": stable, "canary": canary})
    except ServingConfigError as e:
        raise ConfigError(str(e)) from None
    if output:
        Path(output).write_text(text)
    return text


def _stored_model(cfg: KeyclassConfig) -> store.StoredModel:
    """The newest local model for exactly these classes (and the asked version)."""
    p = cfg.predict
    found = store.find_model(cfg.models_dir, cfg.classes, version=p.version)
    if found is None:
        have = sorted({", ".join(m.classes) for m in store.list_models(cfg.models_dir)})
        hint = f" (stored: {'; '.join(have)})" if have else ""
        raise ConfigError(
            f"no model trained on exactly {cfg.crawl.classes}"
            + (f" at version {p.version}" if p.version else "")
            + f" in {cfg.models_dir}{hint}; train one with keyclass train or keyclass run"
        )
    return found


def make_predictor(cfg: KeyclassConfig, found: store.StoredModel | None = None):
    """The predictor for ``cfg``: a TF Serving endpoint, or the newest local model for
    exactly these classes (``found``, when already looked up). Refuses unknown models
    and class mismatches."""
    _require_classes(cfg)
    p = cfg.predict
    if not p.server:
        found = found or _stored_model(cfg)
    from keyclass.serving.predictor import make_predictor as make

    if p.server:

        def remote(saved_model_dir: str | None = None):
            return make(
                p.server,
                model_name=p.model_name or cfg.model_name,
                version=p.version or None,
                label=p.label or None,
                timeout_s=p.timeout_s,
                # The served model's label ids index the sorted class list it was trained on.
                classes=cfg.classes.names,
                ca_file=p.ca_file or None,
                saved_model_dir=saved_model_dir,
            )

        predictor = remote()
        local_copy = served_copy(cfg, predictor)
        if local_copy:
            predictor = remote(local_copy)
    else:
        predictor = make("", model_name=found.model_name, saved_model_dir=found.path)
    classes = sorted(predictor.classes)
    if classes != sorted(cfg.crawl.classes):
        raise ConfigError(f"the model's classes {classes} differ from -c {cfg.crawl.classes}")
    return predictor


def served_copy(cfg: KeyclassConfig, predictor) -> str | None:
    """This home's pushed copy of the version a TF Serving endpoint answers with
    (``<models>/<model name>/<version>`` holding ``keyclass.json``), or None. TF Serving
    does not serve ``assets.extra``, so this is where the served model's calibration
    (temperature, held-out scores, certified thresholds) comes from when keyclass pushed
    it here; without it ``--target-precision`` cannot be certified over ``--server``."""
    from keyclass.serving import model_layout
    from keyclass.serving.types import PredictorError

    try:
        version = predictor.resolved_version() or predictor.metadata().get("version")
    except PredictorError:
        return None  # unreachable now: the prediction itself will say so
    if not version:
        return None
    path = os.path.join(str(cfg.models_dir), predictor.model_name, str(version))
    return path if os.path.isfile(model_layout.metadata_path(path)) else None


def check_predict_paths(cfg: KeyclassConfig, path: str) -> None:
    """The prediction folder and the results folder, checked before any work: the results
    folder may not be, hold or sit inside the prediction folder or the keyclass home, and
    is only ever replaced when keyclass created it (``predict/results_dir.py``)."""
    from keyclass.pipeline.predict.results_dir import check_results_dir
    from keyclass.pipeline.predict.run import check_inputs

    check_results_dir(cfg.predict.results, prediction_root=path, home=cfg.home, overwrite=cfg.predict.overwrite)
    check_inputs(Path(path), Path(cfg.predict.results))


def predict(cfg: KeyclassConfig, path: str, progress: bool = True, command: str = "predict") -> dict:
    """Predict every image under ``path``; write the results folder and its HTML report;
    return the summary (``summary["report"]``: the report's path, or "")."""
    _require_classes(cfg)
    check_predict_paths(cfg, path)
    found = None if cfg.predict.server else _stored_model(cfg)
    with terminal.stage("predict"):
        from keyclass.pipeline.predict.certify import choose_threshold, model_calibration
        from keyclass.pipeline.predict.run import predict_folder

        predictor = make_predictor(cfg, found)
        choice = choose_threshold(
            model_calibration(predictor),
            len(predictor.classes),
            threshold=cfg.predict.threshold,
            target_precision=cfg.predict.target_precision or None,
            confidence=cfg.predict.confidence_level,
        )
        summary = predict_folder(
            predictor,
            list(predictor.classes),
            path,
            cfg.predict.results,
            threshold=choice.threshold,
            certification=choice.summary_fields(),
            batch_size=cfg.predict.batch_size,
            segmentation_fraction=cfg.predict.segmentation_fraction,
            image_size=getattr(predictor, "image_size", None) or cfg.image_size,
            overwrite=cfg.predict.overwrite,
            progress=progress,
            faithfulness_steps=cfg.predict.faithfulness_steps if cfg.predict.faithfulness else 0,
        )
    from keyclass.pipeline import run_report

    summary["report"] = run_report.for_prediction(cfg, command, path, predictor)
    return summary


def run(cfg: KeyclassConfig, path: str, progress: bool = True) -> tuple[dict, bool]:
    """Reuse a stored model for exactly these classes, or train one; then predict.
    Returns (summary, trained)."""
    _require_classes(cfg)
    check_predict_paths(cfg, path)
    trained = False
    if not cfg.predict.server and store.find_model(cfg.models_dir, cfg.classes) is None:
        outcome = train(cfg, report=False, command="run")
        trained = True
        if not outcome.pushed:
            error = RuntimeError(
                f"the trained model was not blessed (validation loss gate: max {cfg.gate.max_val_loss}); "
                f"metrics {outcome.eval_metrics}; nothing to predict with"
            )
            from keyclass.pipeline import run_report

            run_report.after_failure(cfg, "run", error)
            raise error
    try:
        return predict(cfg, path, progress=progress, command="run"), trained
    except ConfigError as e:
        if not trained:
            raise
        # The threshold was refused (--target-precision not certifiable) after a training
        # run: keep what it made visible, and say the model is there to reuse.
        from keyclass.pipeline import run_report

        run_report.after_failure(cfg, "run", e)
        raise ConfigError(
            f"{e}; the model is trained and stored: `keyclass run` again with a lower --target-precision "
            "(or -t) reuses it"
        ) from e


def compile_kubeflow(cfg: KeyclassConfig, output: str) -> dict:
    """Compile the pipeline for Kubeflow Pipelines to ``output``; returns the spec."""
    from keyclass.pipeline import kubeflow_runner

    _require_classes(cfg)
    kubeflow_runner.cloud_paths(cfg)  # refuses missing cloud paths before TFX loads
    return kubeflow_runner.compile_pipeline(cfg, output)
