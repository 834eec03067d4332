"""The ImageCleaner's ComponentSpec, its keys, and the config <-> exec properties mapping.

Execution parameters are the ``CleanConfig`` fields the cleaner uses plus the top-level
``image_size``, the trainer's backbone and weights (curation embeds with them) and the
class list: scalars under the field's own name, booleans as 0/1 and the classes
JSON-encoded (plain types compile to Kubeflow and read well in ML Metadata), and the
keyclass version (not a setting: it makes TFX's cache key change with an upgrade).
``CleanerSettings`` lives in :mod:`settings` (no TFX import) so Beam workers can load it
cheaply; it is re-exported here.
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
BACKBONE_KEY = "backbone"
WEIGHTS_KEY = "weights"
CURATE_KEY = "curate"
NEAR_DUPLICATE_CANDIDATE_DISTANCE_KEY = "near_duplicate_candidate_distance"
NEAR_DUPLICATE_CLOSE_DISTANCE_KEY = "near_duplicate_close_distance"
NEAR_DUPLICATE_MIN_COSINE_KEY = "near_duplicate_min_cosine"
NEAR_DUPLICATE_FAR_MIN_COSINE_KEY = "near_duplicate_far_min_cosine"
LABEL_ISSUE_FOLDS_KEY = "label_issue_folds"
OFF_TOPIC_P_VALUE_KEY = "off_topic_p_value"
MAX_LABEL_ISSUE_FRACTION_KEY = "max_label_issue_fraction"
EMBEDDING_BATCH_SIZE_KEY = "embedding_batch_size"
# Not a setting: part of TFX's cache key, so an upgraded cleaner cleans again.
KEYCLASS_VERSION_KEY = VERSION_KEY

# Every parameter but the class list and the version is the CleanerSettings field of the same name.
_SCALARS: dict[str, type] = {
    IMAGE_SIZE_KEY: int,
    BACKBONE_KEY: str,
    WEIGHTS_KEY: str,
    MIN_WIDTH_KEY: int,
    MIN_HEIGHT_KEY: int,
    NEAR_DUPLICATE_DISTANCE_KEY: int,
    BALANCE_KEY: bool,
    EVAL_FRACTION_KEY: float,
    CALIBRATION_FRACTION_KEY: float,
    JPEG_QUALITY_KEY: int,
    MAX_IMAGE_PIXELS_KEY: int,
    DIRECT_THREADS_UP_TO_KEY: int,
    CURATE_KEY: bool,
    NEAR_DUPLICATE_CANDIDATE_DISTANCE_KEY: int,
    NEAR_DUPLICATE_CLOSE_DISTANCE_KEY: int,
    NEAR_DUPLICATE_MIN_COSINE_KEY: float,
    NEAR_DUPLICATE_FAR_MIN_COSINE_KEY: float,
    LABEL_ISSUE_FOLDS_KEY: int,
    OFF_TOPIC_P_VALUE_KEY: float,
    MAX_LABEL_ISSUE_FRACTION_KEY: float,
    EMBEDDING_BATCH_SIZE_KEY: int,
}
PARAMETER_TYPES: dict[str, type] = {
    CLASSES_KEY: str,
    **{key: int if tp is bool else tp for key, tp in _SCALARS.items()},
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
    out: dict[str, Any] = {CLASSES_KEY: json.dumps(list(settings.classes))}
    for key, tp in _SCALARS.items():
        value = getattr(settings, key)
        out[key] = int(value) if tp is bool else tp(value)
    out[KEYCLASS_VERSION_KEY] = keyclass_version()
    return out


def settings_from_exec_properties(props: dict[str, Any]) -> CleanerSettings:
    """The inverse of :func:`exec_properties`; names a missing or bad property."""
    missing = [k for k in PARAMETER_TYPES if k not in props]
    if missing:
        raise ConfigError(f"ImageCleaner: execution properties missing: {', '.join(missing)}")
    try:
        classes = json.loads(props[CLASSES_KEY])
    except (TypeError, ValueError):
        raise ConfigError(f"ImageCleaner: {CLASSES_KEY} is not JSON: {props[CLASSES_KEY]!r}") from None
    values: dict[str, Any] = {}
    for key, tp in _SCALARS.items():
        try:
            values[key] = bool(int(props[key])) if tp is bool else tp(props[key])
        except (TypeError, ValueError):
            raise ConfigError(f"ImageCleaner: {key}: expected {tp.__name__}, got {props[key]!r}") from None
    return CleanerSettings(classes=tuple(classes), **values)


__all__ = [
    "CleanerSettings",
    "ImageCleanerSpec",
    "exec_properties",
    "settings_from_exec_properties",
]
