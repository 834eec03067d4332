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
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from keyclass.components.classes import ClassList, class_set_id, normalize_class_name, parse_classes
from keyclass.components.cleaner.settings import CleanConfig
from keyclass.components.crawler.settings import KNOWN_ENGINES, SOURCE_KINDS, CrawlConfig
from keyclass.components.errors import ConfigError
from keyclass.components.trainer.settings import BACKBONES, TrainConfig

BEAM_RUNNERS = ("direct", "dataflow", "flink")

# Re-exported: the configuration's sections live with the components that use them.
__all__ = [
    "BACKBONES",
    "BEAM_RUNNERS",
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
    cfg.crawl.validate()
    if cfg.image_size < 32:
        raise ConfigError(f"image_size: must be at least 32, got {cfg.image_size}")
    cfg.clean.validate()
    cfg.train.validate()

    p = cfg.predict
    if not 0 < p.threshold <= 1:
        raise ConfigError(f"threshold: must be in (0, 1], got {p.threshold}")
    if p.target_precision and not 0 < p.target_precision < 1:
        raise ConfigError(f"target-precision: must be in (0, 1), e.g. 0.99, got {p.target_precision}")
    if not 0 < p.confidence_level < 1:
        raise ConfigError(f"confidence: must be in (0, 1), e.g. 0.9, got {p.confidence_level}")
    _positive(p.batch_size, "predict.batch_size")
    if not 0 < p.segmentation_fraction <= 1:
        raise ConfigError("predict.segmentation_fraction: must be in (0, 1]")
    if p.version and p.label:
        raise ConfigError("predict: give --version or --label, not both")
    if p.server and not re.match(r"^(grpc|http|https)://", p.server):
        raise ConfigError(f"server: use grpc://HOST:PORT or http://HOST:PORT, got {p.server!r}")

    if cfg.runner.beam_runner not in BEAM_RUNNERS:
        raise ConfigError(f"runner.beam_runner: unknown {cfg.runner.beam_runner!r}; use {', '.join(BEAM_RUNNERS)}")


def _positive(value: float, where: str) -> None:
    if value <= 0:
        raise ConfigError(f"{where}: must be positive, got {value}")


def dumps(cfg: KeyclassConfig) -> str:
    """The configuration as JSON (for logs and reports)."""
    return json.dumps(cfg.to_dict(), indent=2, sort_keys=True)
