"""Exec properties round-trip; the component builds from the one config."""

from __future__ import annotations

import pytest
from tfx import v1 as tfx

from components.artifacts import RawImages
from components.cleaner import spec
from components.cleaner.component import ImageCleaner
from pipeline.config import ConfigError, KeyclassConfig, apply_overrides


def _cfg() -> KeyclassConfig:
    cfg = KeyclassConfig()
    cfg.crawl.classes = ["Dog", "cat"]
    return apply_overrides(cfg, {"image_size": 128, "clean.balance": False, "clean.min_width": 100})


def test_exec_properties_round_trip_from_config():
    props = spec.cleaner_exec_properties(_cfg())
    assert props[spec.CLASSES_KEY] == '["cat", "dog"]'
    assert props[spec.BALANCE_KEY] == 0 and props[spec.IMAGE_SIZE_KEY] == 128
    settings = spec.settings_from_exec_properties(props)
    assert settings == spec.settings_from_config(_cfg())
    assert settings.min_width == 100 and settings.max_image_pixels == 64_000_000


def test_bad_properties_are_named():
    props = spec.cleaner_exec_properties(_cfg())
    with pytest.raises(ConfigError, match="eval_fraction"):
        spec.settings_from_exec_properties({**props, spec.EVAL_FRACTION_KEY: 1.5})
    with pytest.raises(ConfigError, match="missing: jpeg_quality"):
        spec.settings_from_exec_properties({k: v for k, v in props.items() if k != spec.JPEG_QUALITY_KEY})


def test_component_from_config():
    raw = tfx.dsl.Channel(type=RawImages)
    comp = ImageCleaner.from_config(_cfg(), raw_images=raw)
    assert comp.exec_properties == spec.cleaner_exec_properties(_cfg())
    assert set(comp.outputs) == {spec.EXAMPLES_KEY, spec.REPORT_KEY}
    assert comp.outputs[spec.EXAMPLES_KEY].type == tfx.types.standard_artifacts.Examples
    assert ImageCleaner(raw_images=raw, classes="b,a", jpeg_quality=80).exec_properties[spec.JPEG_QUALITY_KEY] == 80
    with pytest.raises(TypeError):
        ImageCleaner(raw_images=raw, classes=["a", "b"], no_such_setting=1)
