"""The ImageCleaner's ComponentSpec, its keys, and the config <-> exec properties mapping.

Execution parameters are the ``CleanConfig`` fields the cleaner uses plus the top-level
``image_size`` and the class list: scalars under the field's own name, ``balance`` as 0/1
and the classes JSON-encoded (plain types compile to Kubeflow and read well in ML
Metadata), and the keyclass version (not a setting: it makes TFX's cache key change
with an upgrade). ``CleanerSettings`` lives in :mod:`settings` (no TFX import) so Beam workers
can load it cheaply; it is re-exported here.
"""

from __future__ import annotations

import json
from typing import Any

from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from keyclass.components.artifacts import CleaningReport, RawImages
from keyclass.components.cleaner.settings import CleanerSettings
from keyclass.components.errors import ConfigError
from keyclass.components.version import VERSION_KEY, keyclass_version

# Input and outputs.
RAW_IMAGES_KEY = "raw_images"
EXAMPLES_KEY = "examples"
REPORT_KEY = "report"

# Execution parameters.
CLASSES_KEY = "classes_json"
IMAGE_SIZE_KEY = "image_size"
MIN_WIDTH_KEY = "min_width"
MIN_HEIGHT_KEY = "min_height"
NEAR_DUPLICATE_DISTANCE_KEY = "near_duplicate_distance"
BALANCE_KEY = "balance"
EVAL_FRACTION_KEY = "eval_fraction"
CALIBRATION_FRACTION_KEY = "calibration_fraction"
JPEG_QUALITY_KEY = "jpeg_quality"
MAX_IMAGE_PIXELS_KEY = "max_image_pixels"
DIRECT_THREADS_UP_TO_KEY = "direct_threads_up_to"
# Not a setting: part of TFX's cache key, so an upgraded cleaner cleans again.
KEYCLASS_VERSION_KEY = VERSION_KEY

PARAMETER_TYPES: dict[str, type] = {
    CLASSES_KEY: str,
    IMAGE_SIZE_KEY: int,
    MIN_WIDTH_KEY: int,
    MIN_HEIGHT_KEY: int,
    NEAR_DUPLICATE_DISTANCE_KEY: int,
    BALANCE_KEY: int,
    EVAL_FRACTION_KEY: float,
    CALIBRATION_FRACTION_KEY: float,
    JPEG_QUALITY_KEY: int,
    MAX_IMAGE_PIXELS_KEY: int,
    DIRECT_THREADS_UP_TO_KEY: int,
    KEYCLASS_VERSION_KEY: str,
}


class ImageCleanerSpec(ComponentSpec):
    """RawImages in; Examples (train/eval/calibration) and a CleaningReport out."""

    PARAMETERS = {key: ExecutionParameter(type=tp) for key, tp in PARAMETER_TYPES.items()}
    INPUTS = {RAW_IMAGES_KEY: ChannelParameter(type=RawImages)}
    OUTPUTS = {
        EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        REPORT_KEY: ChannelParameter(type=CleaningReport),
    }


def exec_properties(settings: CleanerSettings) -> dict[str, Any]:
    return {
        CLASSES_KEY: json.dumps(list(settings.classes)),
        IMAGE_SIZE_KEY: settings.image_size,
        MIN_WIDTH_KEY: settings.min_width,
        MIN_HEIGHT_KEY: settings.min_height,
        NEAR_DUPLICATE_DISTANCE_KEY: settings.near_duplicate_distance,
        BALANCE_KEY: int(settings.balance),
        EVAL_FRACTION_KEY: float(settings.eval_fraction),
        CALIBRATION_FRACTION_KEY: float(settings.calibration_fraction),
        JPEG_QUALITY_KEY: settings.jpeg_quality,
        MAX_IMAGE_PIXELS_KEY: settings.max_image_pixels,
        DIRECT_THREADS_UP_TO_KEY: settings.direct_threads_up_to,
        KEYCLASS_VERSION_KEY: keyclass_version(),
    }


def settings_from_exec_properties(props: dict[str, Any]) -> CleanerSettings:
    """The inverse of :func:`exec_properties`; names a missing or bad property."""
    missing = [k for k in PARAMETER_TYPES if k not in props]
    if missing:
        raise ConfigError(f"ImageCleaner: execution properties missing: {', '.join(missing)}")
    try:
        classes = json.loads(props[CLASSES_KEY])
    except (TypeError, ValueError):
        raise ConfigError(f"ImageCleaner: {CLASSES_KEY} is not JSON: {props[CLASSES_KEY]!r}") from None
    return CleanerSettings(
        classes=tuple(classes),
        image_size=int(props[IMAGE_SIZE_KEY]),
        min_width=int(props[MIN_WIDTH_KEY]),
        min_height=int(props[MIN_HEIGHT_KEY]),
        near_duplicate_distance=int(props[NEAR_DUPLICATE_DISTANCE_KEY]),
        balance=bool(props[BALANCE_KEY]),
        eval_fraction=float(props[EVAL_FRACTION_KEY]),
        calibration_fraction=float(props[CALIBRATION_FRACTION_KEY]),
        jpeg_quality=int(props[JPEG_QUALITY_KEY]),
        max_image_pixels=int(props[MAX_IMAGE_PIXELS_KEY]),
        direct_threads_up_to=int(props[DIRECT_THREADS_UP_TO_KEY]),
    )


__all__ = [
    "CleanerSettings",
    "ImageCleanerSpec",
    "exec_properties",
    "settings_from_exec_properties",
]
