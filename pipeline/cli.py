"""``keyclass``: the command line. Parses arguments into the one configuration and calls
one function of ``pipeline.commands``; bad arguments stop it before any work starts."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from keyclass.pipeline import terminal
from keyclass.pipeline.config import ConfigError, KeyclassConfig, load_config


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML/JSON configuration file (see docs/configuration.md)")
    p.add_argument(
        "--home", help="keyclass home: pipelines, metadata and models (env KEYCLASS_HOME, default ~/.keyclass)"
    )
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="any setting, e.g. train.batch_size=16"
    )
    p.add_argument(
        "-v", "--verbose", action="count", default=0, help="show the libraries' logs and warnings (-vv: debug)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors and the results")
    p.add_argument(
        "--no-progress", action="store_true", help="no progress bars (automatic when stderr is not a terminal)"
    )


def _add_classes(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("-c", "--classes", required=required, help='comma-separated classes, e.g. "cat,dog"')


def _add_dataset(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("dataset")
    g.add_argument("--source", action="append", help="bing, google, urls:FILE or folder:DIR; repeat or comma-separate")
    g.add_argument("--search-url", action="append", help="engine endpoint: URL (for the engine sources) or ENGINE=URL")
    g.add_argument(
        "--allow-loopback", action="store_true", default=None, help="allow 127.0.0.0/8 and ::1 (tests, local mirrors)"
    )
    g.add_argument("--max-images", type=int, help="images to collect per class (default 1000)")
    g.add_argument("--min-images", type=int, help="fail when a class ends with fewer (default 20)")
    g.add_argument("--snapshot", help="change to force a new crawl, e.g. the date for a weekly refresh")
    g.add_argument("--no-balance", action="store_true", default=None, help="keep unequal class sizes")
    g.add_argument("--image-size", type=int, help="model input size in pixels (default 224)")


def _add_train(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--backbone", help="resnet50 (default), efficientnet_lite0 or tiny")
    g.add_argument("--weights", help="imagenet (default), none or a weights file")
    g.add_argument("--max-epochs", type=int, help="phase 1 epoch limit (default 100, early stopping)")
    g.add_argument("--fine-tune-epochs", type=int, help="phase 2 epochs (default 10; 0 skips)")
    g.add_argument("--batch-size", type=int, help="training batch size (default 32)")
    g.add_argument("--max-val-loss", type=float, help="bless only below this validation loss")
    g.add_argument("--beam-runner", help="direct (default), dataflow or flink")


def _add_predict(p: argparse.ArgumentParser, path: bool = True) -> None:
    g = p.add_argument_group("prediction")
    if path:
        g.add_argument("-p", "--prediction-path", required=True, help="folder of images to predict (recursive)")
    g.add_argument("-t", "--threshold", type=float, help="keep predictions with confidence >= this (default 0.99)")
    g.add_argument(
        "--target-precision",
        type=float,
        help="instead of -t: the lowest threshold certified to keep precision >= this (e.g. 0.99) on held-out data",
    )
    g.add_argument(
        "--confidence", type=float, help="confidence of the certificates (default 0.9: wrong at most 1 time in 10)"
    )
    g.add_argument("--results", help="results folder (default ./results)")
    g.add_argument("--overwrite", action="store_true", default=None, help="replace an existing results folder")
    g.add_argument(
        "--server", help="TF Serving endpoint: grpc://HOST:8500, grpcs://HOST:8500 (TLS) or http(s)://HOST:8501"
    )
    g.add_argument("--ca-file", help="PEM CA certificates for a grpcs:// or https:// server (default: the system's)")
    g.add_argument("--model-name", help="served model name (default: derived from the classes)")
    g.add_argument("--version", type=int, help="model version")
    g.add_argument("--label", help="served version label, e.g. stable or canary")
    g.add_argument(
        "--faithfulness",
        action="store_true",
        default=None,
        help="score each kept prediction's heatmap against a random map (deletion/insertion AUC; ~4 x steps "
        "more forward passes per kept image)",
    )


# Flags only compile-kubeflow has -> config keys.
_KUBEFLOW_FLAG_TO_KEY = {
    "image": "runner.image",
    "pipeline_root": "runner.cloud_pipeline_root",
    "serving_dir": "runner.cloud_serving_dir",
    "gcp_project": "runner.gcp_project",
    "gcp_region": "runner.gcp_region",
    "temp_location": "runner.dataflow_temp_location",
    "flink_master": "runner.flink_master",
}

_FLAG_TO_KEY = {
    "classes": "crawl.classes",
    "max_images": "crawl.max_images_per_class",
    "min_images": "crawl.min_images_per_class",
    "allow_loopback": "crawl.allow_loopback",
    "snapshot": "crawl.snapshot",
    "image_size": "image_size",
    "backbone": "train.backbone",
    "weights": "train.weights",
    "max_epochs": "train.max_epochs",
    "fine_tune_epochs": "train.fine_tune_epochs",
    "batch_size": "train.batch_size",
    "max_val_loss": "gate.max_val_loss",
    "beam_runner": "runner.beam_runner",
    "threshold": "predict.threshold",
    "target_precision": "predict.target_precision",
    "confidence": "predict.confidence_level",
    "results": "predict.results",
    "overwrite": "predict.overwrite",
    "server": "predict.server",
    "model_name": "predict.model_name",
    "version": "predict.version",
    "label": "predict.label",
    "faithfulness": "predict.faithfulness",
    "ca_file": "predict.ca_file",
    "home": "runner.home",
}


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Map parsed flags to dotted config keys; flags not given stay None (not applied)."""
    out: dict[str, Any] = {}
    for flag, key in _FLAG_TO_KEY.items():
        if hasattr(args, flag):
            out[key] = getattr(args, flag)
    if getattr(args, "no_balance", None):
        out["clean.balance"] = False
    if getattr(args, "source", None):
        out["crawl.sources"] = [s.strip() for item in args.source for s in item.split(",") if s.strip()]
    if getattr(args, "search_url", None):
        urls: dict[str, str] = {}
        for item in args.search_url:
            engine, sep, url = item.partition("=")
            if sep and not engine.startswith("http"):
                urls[engine.strip()] = url.strip()
            else:
                urls["*"] = item.strip()
        out["crawl.search_url"] = urls
    for flag, key in _KUBEFLOW_FLAG_TO_KEY.items():
        if hasattr(args, flag):
            out[key] = getattr(args, flag)
    for item in getattr(args, "set", None) or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: use KEY=VALUE")
        out[key.strip()] = value.strip()
    if out.get("predict.threshold") is not None and out.get("predict.target_precision") is not None:
        raise ConfigError(
            "-t/--threshold and --target-precision: give one. -t keeps predictions above a confidence you choose; "
            "--target-precision picks the lowest threshold certified for that precision"
        )
    return out


def build_config(args: argparse.Namespace) -> KeyclassConfig:
    """Defaults, the config file, then the flags; a plain search URL applies to the
    engine sources in use."""
    overrides = overrides_from_args(args)
    urls = overrides.pop("crawl.search_url", None)
    cfg = load_config(args.config, overrides)
    if urls:
        if "*" in urls:
            engines = [s for s in cfg.crawl.sources if s in ("bing", "google")]
            if not engines:
                raise ConfigError("--search-url: no engine source (bing, google) to apply it to")
            for e in engines:
                urls.setdefault(e, urls["*"])
            del urls["*"]
        cfg = load_config(args.config, {**overrides, "crawl.search_url": urls})
    return cfg


def user_keys(args: argparse.Namespace) -> set[str]:
    """Dotted keys the user set through --config or --set (they win over command defaults)."""
    from keyclass.pipeline.origins import file_keys

    keys = {item.partition("=")[0].strip() for item in getattr(args, "set", None) or []}
    return keys | file_keys(getattr(args, "config", None))


def flag_keys(args: argparse.Namespace) -> dict[str, str]:
    """Dotted keys given by a flag -> the flag, as the user would type it."""
    out = {}
    for dest, key in {**_FLAG_TO_KEY, **_KUBEFLOW_FLAG_TO_KEY}.items():
        if getattr(args, dest, None) is not None:
            out[key] = "-c/--classes" if dest == "classes" else "--" + dest.replace("_", "-")
    if getattr(args, "no_balance", None):
        out["clean.balance"] = "--no-balance"
    if getattr(args, "source", None):
        out["crawl.sources"] = "--source"
    if getattr(args, "search_url", None):
        out["crawl.search_url"] = "--search-url"
    return out


def explain_config(args: argparse.Namespace, cfg: KeyclassConfig) -> list[tuple[str, Any, str]]:
    """Every effective setting with where it came from (``keyclass config``)."""
    from keyclass.pipeline import origins

    return origins.origins(
        origins.flatten(cfg),
        config_path=args.config,
        flags=flag_keys(args),
        set_keys={item.partition("=")[0].strip() for item in args.set or []},
        env_home=bool(os.environ.get("KEYCLASS_HOME")),
    )


def _version() -> str:
    from keyclass.components.version import keyclass_version

    return keyclass_version()


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keyclass", description="Type a few words, get a production image classifier."
    )
    parser.add_argument("--version", action="version", version=f"keyclass {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("dataset", help="crawl, clean and validate a labelled dataset (TFRecords)")
    _add_classes(p)
    _add_dataset(p)
    p.add_argument("--out", required=True, help="folder for the TFRecords, ledger.jsonl and report.json")
    _add_common(p)

    p = sub.add_parser("train", help="dataset, then train, gate and push a model")
    _add_classes(p)
    _add_dataset(p)
    _add_train(p)
    _add_common(p)

    p = sub.add_parser("predict", help="predict a folder with a stored or served model")
    _add_classes(p)
    _add_predict(p)
    p.add_argument("--image-size", type=int, help=argparse.SUPPRESS)
    _add_common(p)

    p = sub.add_parser("run", help="reuse or train a model for these classes, then predict a folder")
    _add_classes(p)
    _add_dataset(p)
    _add_train(p)
    _add_predict(p)
    _add_common(p)

    p = sub.add_parser("report", help="write the HTML report of a run (default: the newest for these classes)")
    _add_classes(p)
    p.add_argument("--run-id", help="a pipeline run id (the report's Lineage section shows it)")
    p.add_argument("--results", help="a predict results folder to include (default: none)")
    p.add_argument("--out", help="HTML file to write (default: <results>/report.html or <home>/reports/...)")
    _add_common(p)

    p = sub.add_parser("models", help="list stored models")
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_common(p)

    p = sub.add_parser("config", help="print the effective settings and where each came from")
    _add_classes(p, required=False)
    _add_dataset(p)
    _add_train(p)
    _add_predict(p, path=False)
    p.add_argument("--json", action="store_true", help="print JSON")
    _add_common(p)

    p = sub.add_parser("serving-config", help="TF Serving models.config labelling pushed versions stable/canary")
    _add_classes(p)
    p.add_argument("--stable", type=int, help="version labelled stable (default: the newest pushed)")
    p.add_argument("--canary", type=int, help="version labelled canary (default: none)")
    p.add_argument("--base-path", default="/models", help="the models dir as the server sees it (default /models)")
    p.add_argument("--model-name", help="served model name (default: derived from the classes)")
    p.add_argument("--output", help="file to write (default: print it)")
    _add_common(p)

    p = sub.add_parser("demo", help="the offline end-to-end demo on a loopback search engine")
    p.add_argument("--results", default="demo-out/results", help="results folder")
    p.add_argument("--per-class", type=int, default=120, help="images the demo engine serves per class")
    _add_common(p)

    p = sub.add_parser("compile-kubeflow", help="compile the pipeline to a Kubeflow Pipelines spec (JSON)")
    _add_classes(p)
    _add_dataset(p)
    _add_train(p)
    g = p.add_argument_group("kubeflow")
    g.add_argument("--output", required=True, help="pipeline spec JSON to write")
    g.add_argument("--image", help="container image holding keyclass (see kubeflow/Dockerfile)")
    g.add_argument("--pipeline-root", help="gs://... or s3://... pipeline root")
    g.add_argument("--serving-dir", help="where pushed models go (default PIPELINE_ROOT/serving)")
    g.add_argument("--gcp-project", help="Dataflow project")
    g.add_argument("--gcp-region", help="Dataflow region")
    g.add_argument("--temp-location", help="Dataflow temp location gs://...")
    g.add_argument("--flink-master", help="Flink master host:port")
    _add_common(p)

    p = sub.add_parser("submit-kubeflow", help="upload a compiled pipeline: run it now and/or on a schedule")
    p.add_argument("--host", required=True, help="Kubeflow Pipelines API endpoint")
    p.add_argument("--package", required=True, help="compiled pipeline JSON (keyclass compile-kubeflow)")
    p.add_argument("--experiment", default="keyclass", help="experiment name (default keyclass)")
    p.add_argument("--job-name", default="keyclass-weekly", help="name of the run and the recurring run")
    p.add_argument("--run-now", action="store_true", help="start one run now")
    p.add_argument("--cron", help='recurring schedule, six fields, e.g. "0 0 3 * * 1" (Mondays 03:00)')
    p.add_argument("--snapshot", help="crawl snapshot for these runs (a runtime parameter; default: the compiled one)")
    _add_common(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    # TFX's Beam executors parse sys.argv as absl flags (base_beam_executor.py), where our
    # own flags would be misread (-v is absl's --verbosity). They are consumed here.
    sys.argv = sys.argv[:1]
    level = terminal.verbosity(args.verbose, args.quiet)
    with terminal.session(level, bars=False if args.no_progress else None):
        try:
            return _dispatch(args)
        except ConfigError as e:
            terminal.write_error(str(e))
            return 2
        except Exception as e:  # noqa: BLE001 - the CLI's last word: say what failed, no traceback
            if args.verbose:
                raise
            terminal.write_error(f"{type(e).__name__}: {e}")
            return 1


def _dispatch(args: argparse.Namespace) -> int:
    """Build the configuration (every check before anything heavy loads), then act."""
    from keyclass.pipeline import commands

    cfg = build_config(args)
    if args.command == "dataset":
        report = commands.dataset(cfg, args.out)
        print(commands.format_funnel(report))
        print(f"\ndataset written to {args.out}")
    elif args.command == "train":
        outcome = commands.train(cfg)
        print(commands.format_training(outcome))
        _print_report(outcome.report_path)
        return 0 if outcome.pushed else 3
    elif args.command == "predict":
        summary = commands.predict(cfg, args.prediction_path)
        _print_summary(summary, cfg)
    elif args.command == "run":
        summary, trained = commands.run(cfg, args.prediction_path)
        print("trained a new model" if trained else "reused the stored model for these classes")
        _print_summary(summary, cfg)
    elif args.command == "report":
        result = commands.report(cfg, args.run_id, args.results, args.out)
        print(f"report: {result.path}  ({result.bytes / 1e6:.1f} MB, {result.seconds:.1f} s)")
    elif args.command == "models":
        rows = commands.models(cfg)
        print(json.dumps(rows, indent=2) if args.json else commands.format_models(rows))
    elif args.command == "serving-config":
        text = commands.serving_config(cfg, args.stable, args.canary, args.base_path, args.output or "")
        print(f"wrote {args.output}" if args.output else text, end="\n" if args.output else "")
    elif args.command == "config":
        from keyclass.pipeline.origins import format_rows

        rows = explain_config(args, cfg)
        if args.json:
            print(json.dumps([{"setting": k, "value": v, "from": o} for k, v, o in rows], indent=2))
        else:
            print(format_rows(rows))
    elif args.command == "compile-kubeflow":
        spec = commands.compile_kubeflow(cfg, args.output)
        tasks = spec["pipelineSpec"]["root"]["dag"]["tasks"]
        print(f"compiled {len(tasks)} steps for {cfg.runner.image} ({cfg.runner.beam_runner} Beam) to {args.output}")
    elif args.command == "submit-kubeflow":
        from keyclass.pipeline.kubeflow_submit import check_submission, submit

        check_submission(args.package, args.run_now, args.cron)
        for rid in submit(
            args.host, args.package, args.experiment, args.run_now, args.cron, args.job_name, args.snapshot
        ):
            print(rid)
    elif args.command == "demo":
        from keyclass.pipeline.demo import run_demo

        return run_demo(cfg, results=args.results, per_class=args.per_class, user_keys=user_keys(args))
    return 0


def _print_summary(summary: dict, cfg: KeyclassConfig) -> None:
    from keyclass.pipeline.predict.summary import format_table

    print(format_table(summary))
    print(f"\nresults in {cfg.predict.results}")
    _print_report(summary.get("report", ""))


def _print_report(path: str) -> None:
    if path:
        print(f"report: {path}")


if __name__ == "__main__":
    sys.exit(main())
