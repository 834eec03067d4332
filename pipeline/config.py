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
import hashlib
import json
import os
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

KNOWN_ENGINES = ("bing", "google")
SOURCE_KINDS = ("bing", "google", "urls", "folder")
# "tiny" is a small CNN on the same code path, for tests and smoke runs.
BACKBONES = ("resnet50", "efficientnet_lite0", "tiny")
BEAM_RUNNERS = ("direct", "dataflow", "flink")


class ConfigError(ValueError):
    """A setting is missing or wrong; the message names it and says what to fix."""


def normalize_class_name(name: str) -> str:
    """Canonical class name: case, surrounding and repeated spaces do not matter."""
    return " ".join(name.strip().lower().split())


def parse_classes(classes: str | list[str] | tuple[str, ...]) -> list[str]:
    """Turn ``"Cat, dog"`` or ``["dog", "cat"]`` into the sorted canonical class list.

    Raises ConfigError for empty names, duplicates or fewer than two classes.
    """
    raw = classes.split(",") if isinstance(classes, str) else list(classes)
    names = [normalize_class_name(str(c)) for c in raw]
    if any(not n for n in names):
        raise ConfigError(f"classes: empty class name in {classes!r}; separate names with commas")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"classes: {', '.join(dupes)} given more than once")
    if len(names) < 2:
        raise ConfigError(f"classes: need at least two classes, got {names}")
    for n in names:
        if "/" in n or "\\" in n or n in (".", ".."):
            raise ConfigError(f"classes: {n!r} may not contain path separators")
    return sorted(names)


def class_set_id(classes: list[str]) -> str:
    """Stable, filesystem-safe model name for a class set (order and case do not matter)."""
    names = parse_classes(classes)
    slug = "-".join(re.sub(r"[^a-z0-9]+", "_", n).strip("_") or "x" for n in names)[:60]
    digest = hashlib.sha256("\n".join(names).encode()).hexdigest()[:8]
    return f"{slug}-{digest}"


@dataclasses.dataclass
class CrawlConfig:
    """What the ImageCrawler collects and how it talks to the web."""

    classes: list[str] = dataclasses.field(default_factory=list)
    # In order, until the quota is met: "bing", "google", "urls:FILE", "folder:DIR".
    # A urls FILE holds "keyword<TAB>url" lines, or plain URLs when FILE names the
    # keyword's own file (urls:DIR/{keyword}.txt). A folder DIR has one subfolder per class.
    sources: list[str] = dataclasses.field(default_factory=lambda: ["bing", "google"])
    # Engine search endpoints; unset engines use their public address.
    search_url: dict[str, str] = dataclasses.field(default_factory=dict)
    max_images_per_class: int = 1000
    min_images_per_class: int = 20
    allow_loopback: bool = False
    max_bytes: int = 20 * 1024 * 1024
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    total_timeout_s: float = 30.0
    retries: int = 2
    backoff_s: float = 0.5
    per_host_delay_s: float = 0.0
    download_threads: int = 8
    # Changing it forces a new crawl (e.g. the date, for a weekly refresh); otherwise the
    # crawl is cached while classes and sources stay the same.
    snapshot: str = ""


@dataclasses.dataclass
class CleanConfig:
    """What the ImageCleaner keeps."""

    min_width: int = 224
    min_height: int = 224
    near_duplicate_distance: int = 4
    balance: bool = True
    eval_fraction: float = 0.2
    jpeg_quality: int = 95
    max_image_pixels: int = 64_000_000
    # Allowed relative deviation of a class's share from 1/K in the validation gate.
    balance_tolerance: float = 0.2


@dataclasses.dataclass
class TrainConfig:
    """Trainer settings: backbone, weights and the two training phases."""

    backbone: str = "resnet50"
    # "imagenet", "none" or a path to a weights file.
    weights: str = "imagenet"
    batch_size: int = 32
    max_epochs: int = 100
    early_stopping_patience: int = 5
    learning_rate: float = 1e-3
    fine_tune_epochs: int = 10
    fine_tune_learning_rate: float = 1e-5
    augment: bool = True
    # With augmentation off, phase 1 can train the head on cached backbone features.
    cache_features: bool = False
    seed: int = 42
    # Test hook: permute training labels to make a deliberately worse model.
    shuffle_labels: bool = False


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
    def model_name(self) -> str:
        return class_set_id(self.crawl.classes)

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
    if cfg.crawl.classes:
        cfg.crawl.classes = parse_classes(cfg.crawl.classes)
    c = cfg.crawl
    if not c.sources:
        raise ConfigError("crawl.sources: give at least one source")
    for s in c.sources:
        kind, _, arg = s.partition(":")
        if kind not in SOURCE_KINDS:
            raise ConfigError(f"crawl.sources: unknown source {s!r}; use bing, google, urls:FILE or folder:DIR")
        if kind in KNOWN_ENGINES and arg:
            raise ConfigError(f"crawl.sources: {s!r}: set an engine's endpoint with search_url, not a suffix")
        if kind in ("urls", "folder") and not arg:
            raise ConfigError(f"crawl.sources: {kind} needs a path, as {kind}:PATH")
    for engine, url in c.search_url.items():
        if engine not in KNOWN_ENGINES:
            raise ConfigError(f"crawl.search_url: unknown engine {engine!r}")
        if not re.match(r"^https?://", url):
            raise ConfigError(f"crawl.search_url: {engine} endpoint must be http(s), got {url!r}")
    _positive(c.max_images_per_class, "crawl.max_images_per_class")
    _positive(c.max_bytes, "crawl.max_bytes")
    _positive(c.download_threads, "crawl.download_threads")
    if c.min_images_per_class < 1 or c.min_images_per_class > c.max_images_per_class:
        raise ConfigError("crawl.min_images_per_class: must be between 1 and crawl.max_images_per_class")
    for name in ("connect_timeout_s", "read_timeout_s", "total_timeout_s"):
        _positive(getattr(c, name), f"crawl.{name}")
    if c.retries < 0 or c.backoff_s < 0 or c.per_host_delay_s < 0:
        raise ConfigError("crawl.retries, backoff_s and per_host_delay_s must not be negative")

    if cfg.image_size < 32:
        raise ConfigError(f"image_size: must be at least 32, got {cfg.image_size}")
    k = cfg.clean
    _positive(k.min_width, "clean.min_width")
    _positive(k.min_height, "clean.min_height")
    if not 0 <= k.near_duplicate_distance <= 32:
        raise ConfigError("clean.near_duplicate_distance: must be between 0 and 32 bits")
    if not 0 < k.eval_fraction < 1:
        raise ConfigError("clean.eval_fraction: must be between 0 and 1")
    if not 1 <= k.jpeg_quality <= 100:
        raise ConfigError("clean.jpeg_quality: must be between 1 and 100")

    t = cfg.train
    if t.backbone not in BACKBONES:
        raise ConfigError(f"train.backbone: unknown {t.backbone!r}; use one of {', '.join(BACKBONES)}")
    if t.weights not in ("imagenet", "none") and not Path(t.weights).expanduser().is_file():
        raise ConfigError(f"train.weights: {t.weights!r} is neither imagenet, none nor an existing file")
    _positive(t.batch_size, "train.batch_size")
    _positive(t.max_epochs, "train.max_epochs")
    if t.fine_tune_epochs < 0:
        raise ConfigError("train.fine_tune_epochs: must not be negative")
    if t.cache_features and t.augment:
        raise ConfigError("train.cache_features: needs train.augment off (cached features cannot be augmented)")

    p = cfg.predict
    if not 0 < p.threshold <= 1:
        raise ConfigError(f"threshold: must be in (0, 1], got {p.threshold}")
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
