"""Exec properties round-trip; the component builds from the settings the pipeline
factory derives from the one config."""

from __future__ import annotations

import pytest
from tfx import v1 as tfx

from keyclass.components.artifacts import RawImages
from keyclass.components.cleaner import spec
from keyclass.components.cleaner.component import ImageCleaner
from keyclass.components.cleaner.settings import CleanerSettings
from keyclass.pipeline.config import ConfigError, KeyclassConfig, apply_overrides


def _settings() -> CleanerSettings:
    cfg = KeyclassConfig()
    cfg.crawl.classes = ["Dog", "cat"]
    cfg = apply_overrides(cfg, {"image_size": 128, "clean.balance": False, "clean.min_width": 100})
    return CleanerSettings.create(cfg.crawl.classes, cfg.image_size, cfg.clean)


def test_exec_properties_round_trip_from_config():
    props = spec.exec_properties(_settings())
    assert props[spec.CLASSES_KEY] == '["cat", "dog"]'
    assert props[spec.BALANCE_KEY] == 0 and props[spec.IMAGE_SIZE_KEY] == 128
    settings = spec.settings_from_exec_properties(props)
    assert settings == _settings()
    assert settings.min_width == 100 and settings.max_image_pixels == 64_000_000
    assert settings.calibration_fraction == props[spec.CALIBRATION_FRACTION_KEY] == 0.25


def test_bad_properties_are_named():
    props = spec.exec_properties(_settings())
    with pytest.raises(ConfigError, match="eval_fraction"):
        spec.settings_from_exec_properties({**props, spec.EVAL_FRACTION_KEY: 1.5})
    with pytest.raises(ConfigError, match=r"calibration_fraction: eval_fraction \+ calibration_fraction"):
        spec.settings_from_exec_properties({**props, spec.EVAL_FRACTION_KEY: 0.5, spec.CALIBRATION_FRACTION_KEY: 0.5})
    with pytest.raises(ConfigError, match="calibration_fraction"):
        spec.settings_from_exec_properties({**props, spec.CALIBRATION_FRACTION_KEY: 0.0})
    with pytest.raises(ConfigError, match="missing: jpeg_quality"):
        spec.settings_from_exec_properties({k: v for k, v in props.items() if k != spec.JPEG_QUALITY_KEY})


def test_component_from_settings():
    raw = tfx.dsl.Channel(type=RawImages)
    comp = ImageCleaner.from_settings(raw_images=raw, settings=_settings())
    assert comp.exec_properties == spec.exec_properties(_settings())
    assert set(comp.outputs) == {spec.EXAMPLES_KEY, spec.REPORT_KEY}
    assert comp.outputs[spec.EXAMPLES_KEY].type == tfx.types.standard_artifacts.Examples
    assert ImageCleaner(raw_images=raw, classes="b,a", jpeg_quality=80).exec_properties[spec.JPEG_QUALITY_KEY] == 80
    with pytest.raises(TypeError):
        ImageCleaner(raw_images=raw, classes=["a", "b"], no_such_setting=1)


def test_the_pipeline_gives_the_cleaner_the_trainers_backbone_and_the_curation_settings(tmp_path):
    """Curation embeds with exactly the backbone and weights training will freeze."""
    from keyclass.pipeline.config import load_config
    from keyclass.pipeline.local_runner import build_local_pipeline

    cfg = load_config(
        overrides={
            "crawl.classes": "cat,dog",
            "runner.home": str(tmp_path),
            "train.backbone": "efficientnet_lite0",
            "clean.near_duplicate_min_cosine": 0.9,
            "clean.max_label_issue_fraction": 0.25,
        }
    )
    cleaner = next(c for c in build_local_pipeline(cfg).components if c.id == "ImageCleaner")
    settings = spec.settings_from_exec_properties(cleaner.exec_properties)
    assert (settings.backbone, settings.weights) == ("efficientnet_lite0", cfg.train.weights)
    assert settings.near_duplicate_min_cosine == 0.9 and settings.max_label_issue_fraction == 0.25
    assert settings.curate is True and settings.label_issue_folds == 5
