"""The one keyclass configuration: typed defaults, an optional YAML/JSON file, overrides.

Every entry point (the CLI, the local runner, the Kubeflow runner, the demo) builds a
``KeyclassConfig`` with :func:`load_config` and passes it down. A setting is defined
here once; variants override fields, they never redefine them.

Overrides are dotted paths (``"train.max_epochs": 3``); a config file holds the same
tree as nested mappings::

    crawl:
      sources: [bing, "folder:/data/photos"]
      max_images_per_class: 600
    train:
      backbone: efficientnet_lite0
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from keyclass.components.classes import ClassList, class_set_id, normalize_class_name, parse_classes
from keyclass.components.cleaner.settings import CleanConfig
from keyclass.components.crawler.settings import KNOWN_ENGINES, SOURCE_KINDS, CrawlConfig
from keyclass.components.errors import (
    HOST_PORT,
    SAFE_NAME,
    ConfigError,
    check_choice,
    check_int,
    check_pattern,
    check_range,
)
from keyclass.components.trainer.settings import BACKBONES, TrainConfig

BEAM_RUNNERS = ("direct", "dataflow", "flink")
DIRECT_RUNNING_MODES = ("in_memory", "multi_threading", "multi_processing")
SERVER_URL = r"(grpcs?|https?)://[^/\s]+/?"
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 32, 1024

# Re-exported: the configuration's sections live with the components that use them.
__all__ = [
    "BACKBONES",
    "BEAM_RUNNERS",
    "DIRECT_RUNNING_MODES",
    "KNOWN_ENGINES",
    "SOURCE_KINDS",
    "CleanConfig",
    "ClassList",
    "ConfigError",
    "CrawlConfig",
    "GateConfig",
    "KeyclassConfig",
    "PredictConfig",
    "RunnerConfig",
    "TrainConfig",
    "apply_overrides",
    "class_set_id",
    "dumps",
    "load_config",
    "normalize_class_name",
    "parse_classes",
    "validate",
]


@dataclasses.dataclass
class GateConfig:
    """Evaluator gate on validation loss."""

    max_val_loss: float = 0.7
    # The candidate's loss may exceed the latest blessed model's by at most this much.
    max_loss_increase: float = 0.0

    def validate(self) -> None:
        """A bound at or below 0 (or NaN) could never bless a model: refused before training."""
        check_range(self.max_val_loss, 0, 1e6, "gate.max_val_loss", open_low=True)
        check_range(self.max_loss_increase, 0, 1e6, "gate.max_loss_increase")


@dataclasses.dataclass
class PredictConfig:
    """How `predict` and `run` score a folder."""

    threshold: float = 0.99
    # Instead of a threshold: the lowest one certified for this precision (0 = off)
    # at confidence_level, from the model's held-out calibration scores.
    target_precision: float = 0.0
    confidence_level: float = 0.9
    batch_size: int = 16
    # Segmentation: pixels whose upsampled heatmap >= fraction * max.
    segmentation_fraction: float = 0.5
    results: str = "results"
    overwrite: bool = False
    server: str = ""
    model_name: str = ""
    version: int = 0
    label: str = ""
    timeout_s: float = 30.0
    # CA certificates (PEM) for grpcs:// and https:// servers; empty: the system's.
    ca_file: str = ""

    def validate(self) -> None:
        """Refuse prediction settings that cannot work, naming each."""
        check_range(self.threshold, 0, 1, "predict.threshold", open_low=True)
        check_range(self.target_precision, 0, 1, "predict.target_precision")  # 0: off, -t decides
        if self.target_precision >= 1:
            raise ConfigError("predict.target_precision: must be below 1 (e.g. 0.99): finite data cannot certify 1")
        check_range(self.confidence_level, 0, 1, "predict.confidence_level", open_low=True)
        if self.confidence_level >= 1:
            raise ConfigError("predict.confidence_level: must be below 1 (e.g. 0.9): finite data cannot certify it")
        check_int(self.batch_size, 1, 4096, "predict.batch_size")
        check_range(self.segmentation_fraction, 0, 1, "predict.segmentation_fraction", open_low=True)
        if not self.results.strip():
            raise ConfigError("predict.results: give a results folder")
        if self.server:
            check_pattern(
                self.server, SERVER_URL, "grpc://HOST:PORT, grpcs://HOST:PORT or http(s)://HOST:PORT", "predict.server"
            )
        if self.model_name:
            check_pattern(self.model_name, SAFE_NAME, "a model name (letters, digits, _ . -)", "predict.model_name")
        check_int(self.version, 0, 10**12, "predict.version")  # pushed versions are unix times
        if self.label:
            check_pattern(self.label, SAFE_NAME, "a version label (letters, digits, _ . -)", "predict.label")
        if self.version and self.label:
            raise ConfigError("predict: give --version or --label, not both")
        check_range(self.timeout_s, 0, 86_400, "predict.timeout_s", open_low=True)
        if self.ca_file and not Path(self.ca_file).expanduser().is_file():
            raise ConfigError(f"predict.ca_file: {self.ca_file} is not a readable file")


@dataclasses.dataclass
class RunnerConfig:
    """Where things live and how Beam runs."""

    home: str = ""
    beam_runner: str = "direct"
    # 0 = all cores.
    direct_num_workers: int = 0
    direct_running_mode: str = "multi_processing"
    extra_beam_args: list[str] = dataclasses.field(default_factory=list)
    # Kubeflow / cluster settings.
    image: str = "gcr.io/my-project/keyclass:latest"
    cloud_pipeline_root: str = ""
    cloud_serving_dir: str = ""
    gcp_project: str = ""
    gcp_region: str = "us-central1"
    dataflow_temp_location: str = ""
    flink_master: str = "localhost:8081"
    beam_job_endpoint: str = "localhost:8099"

    def validate(self) -> None:
        """Refuse runner settings that cannot work, naming each."""
        if not self.home.strip():
            raise ConfigError("runner.home: give the keyclass home folder")
        check_choice(self.beam_runner, BEAM_RUNNERS, "runner.beam_runner")
        check_int(self.direct_num_workers, 0, 1024, "runner.direct_num_workers")
        check_choice(self.direct_running_mode, DIRECT_RUNNING_MODES, "runner.direct_running_mode")
        for arg in self.extra_beam_args:
            check_pattern(
                arg, r"--[A-Za-z_][\w.\-]*(=.*)?", "a Beam option such as --name=value", "runner.extra_beam_args"
            )
        check_pattern(self.image, r"[^\s]+", "a container image reference without spaces", "runner.image")
        for name in ("cloud_pipeline_root", "cloud_serving_dir"):
            value = getattr(self, name)
            if value:
                check_pattern(
                    value,
                    r"[a-z][a-z0-9+.\-]*://\S+|/\S*",
                    "a URI (gs://..., s3://...) or an absolute path",
                    f"runner.{name}",
                )
        if self.gcp_project:
            check_pattern(
                self.gcp_project,
                r"([a-z][a-z0-9.\-]*:)?[a-z][a-z0-9\-]{0,62}",
                "a Google Cloud project id",
                "runner.gcp_project",
            )
        check_pattern(
            self.gcp_region, r"[a-z]+-[a-z]+\d+", "a Google Cloud region such as us-central1", "runner.gcp_region"
        )
        if self.dataflow_temp_location:
            check_pattern(self.dataflow_temp_location, r"gs://\S+", "a gs:// location", "runner.dataflow_temp_location")
        check_pattern(self.flink_master, HOST_PORT, "HOST:PORT", "runner.flink_master")
        check_pattern(self.beam_job_endpoint, HOST_PORT, "HOST:PORT", "runner.beam_job_endpoint")


@dataclasses.dataclass
class KeyclassConfig:
    """The whole configuration tree."""

    pipeline_name: str = ""
    image_size: int = 224
    crawl: CrawlConfig = dataclasses.field(default_factory=CrawlConfig)
    clean: CleanConfig = dataclasses.field(default_factory=CleanConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    gate: GateConfig = dataclasses.field(default_factory=GateConfig)
    predict: PredictConfig = dataclasses.field(default_factory=PredictConfig)
    runner: RunnerConfig = dataclasses.field(default_factory=RunnerConfig)

    # Derived paths -----------------------------------------------------------------
    @property
    def home(self) -> Path:
        return Path(self.runner.home).expanduser()

    @property
    def classes(self) -> ClassList:
        """The class list (``crawl.classes``): sorted, canonical, label i is class i."""
        return ClassList(self.crawl.classes)

    @property
    def model_name(self) -> str:
        return self.classes.model_name

    @property
    def resolved_pipeline_name(self) -> str:
        return self.pipeline_name or f"keyclass-{self.model_name}"

    @property
    def pipeline_root(self) -> Path:
        return self.home / "pipelines" / self.resolved_pipeline_name

    @property
    def metadata_path(self) -> Path:
        return self.home / "metadata.sqlite"

    @property
    def models_dir(self) -> Path:
        """Pushed models, TF Serving layout: models/<model_name>/<version>/."""
        return self.home / "models"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def beam_pipeline_args(self) -> list[str]:
        """Beam arguments for the configured runner."""
        r = self.runner
        if r.beam_runner == "direct":
            workers = r.direct_num_workers or (os.cpu_count() or 1)
            args = [
                "--runner=DirectRunner",
                f"--direct_num_workers={workers}",
                f"--direct_running_mode={r.direct_running_mode}",
            ]
        elif r.beam_runner == "dataflow":
            args = [
                "--runner=DataflowRunner",
                f"--project={r.gcp_project}",
                f"--region={r.gcp_region}",
                f"--temp_location={r.dataflow_temp_location}",
                f"--sdk_container_image={r.image}",
                "--experiments=use_runner_v2",
            ]
        else:  # flink
            args = [
                "--runner=FlinkRunner",
                f"--flink_master={r.flink_master}",
                "--environment_type=EXTERNAL",
                f"--environment_config={r.beam_job_endpoint}",
            ]
        return args + list(r.extra_beam_args)


def default_home() -> str:
    return os.environ.get("KEYCLASS_HOME") or str(Path("~/.keyclass").expanduser())


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Coerce a file/CLI value into the dataclass field type, or raise ConfigError."""
    origin = typing.get_origin(tp)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            out = tp(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}") from None
        if tp is int and isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return out
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where}: expected text, got {value!r}")
        return str(value)
    if origin is list:
        if isinstance(value, str):
            value = [p.strip() for p in value.split(",")]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item_tp,) = typing.get_args(tp)
        return [_coerce(v, item_tp, where) for v in value]
    if origin is dict:
        if isinstance(value, str):
            pairs = [p for p in value.split(",") if p.strip()]
            try:
                value = dict(p.split("=", 1) for p in pairs)
            except ValueError:
                raise ConfigError(f"{where}: expected NAME=VALUE pairs, got {value!r}") from None
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return {str(k).strip(): str(v).strip() for k, v in value.items()}
    raise ConfigError(f"{where}: unsupported type {tp}")


def _apply(obj: Any, path: list[str], value: Any, where: str) -> None:
    hints = typing.get_type_hints(type(obj))
    name = path[0]
    if name not in hints:
        known = ", ".join(f.name for f in dataclasses.fields(obj))
        raise ConfigError(f"{where}: unknown setting {name!r} (known: {known})")
    if len(path) == 1:
        if dataclasses.is_dataclass(hints[name]):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where}: expected a section, got {value!r}")
            for k, v in value.items():
                _apply(getattr(obj, name), [str(k)], v, f"{where}.{k}")
            return
        setattr(obj, name, _coerce(value, hints[name], where))
    else:
        child = getattr(obj, name)
        if not dataclasses.is_dataclass(child):
            raise ConfigError(f"{where}: {name!r} is not a section")
        _apply(child, path[1:], value, where)


def apply_overrides(cfg: KeyclassConfig, overrides: Mapping[str, Any], origin: str = "") -> KeyclassConfig:
    """Apply ``{"train.max_epochs": 3, ...}``; ``None`` values are skipped (flag not given)."""
    for key, value in overrides.items():
        if value is None:
            continue
        _apply(cfg, key.split("."), value, f"{origin}{key}")
    return cfg


def load_config(path: str | os.PathLike | None = None, overrides: Mapping[str, Any] | None = None) -> KeyclassConfig:
    """Defaults, then the file at ``path`` (YAML or JSON), then ``overrides``; validated."""
    cfg = KeyclassConfig()
    cfg.runner.home = default_home()
    if path:
        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except OSError as e:
            raise ConfigError(f"config file {p}: cannot read it ({e.strerror})") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {p}: not valid YAML/JSON ({e})") from None
        if not isinstance(data, Mapping):
            raise ConfigError(f"config file {p}: expected a mapping at the top level")
        for k, v in data.items():
            _apply(cfg, [str(k)], v, f"{p}: {k}")
    apply_overrides(cfg, overrides or {})
    validate(cfg)
    return cfg


def validate(cfg: KeyclassConfig) -> None:
    """Refuse settings that cannot work, naming each, before any work starts."""
    if cfg.pipeline_name:
        # It becomes a folder under <home>/pipelines/: no separators, no "..".
        check_pattern(cfg.pipeline_name, SAFE_NAME, "a name (letters, digits, _ . -)", "pipeline_name")
    check_int(cfg.image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE, "image_size")
    cfg.crawl.validate()
    cfg.clean.validate()
    cfg.train.validate()
    cfg.gate.validate()
    cfg.predict.validate()
    cfg.runner.validate()


def dumps(cfg: KeyclassConfig) -> str:
    """The configuration as JSON (for logs and reports)."""
    return json.dumps(cfg.to_dict(), indent=2, sort_keys=True)
