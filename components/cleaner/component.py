"""ImageCleaner: RawImages in; cleaned, deduplicated, balanced train/eval Examples out."""

from __future__ import annotations

from typing import Any

from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import channel, standard_artifacts

from components.artifacts import CleaningReport
from components.cleaner import executor, spec
from pipeline.config import KeyclassConfig


class ImageCleaner(base_beam_component.BaseBeamComponent):
    """Decodes and normalises every crawled image; drops broken, small, duplicate and
    cross-class ones; balances the classes; writes gzipped TFRecords split by content hash,
    a ledger line per crawled URL and a per-class funnel report.

    ``ImageCleaner(raw_images=ch, classes=["cat", "dog"], min_width=128)``: keyword
    arguments are ``spec.CleanerSettings`` fields (defaults from there; an unknown name is
    a TypeError). ``ImageCleaner.from_config(cfg, raw_images=ch)`` is what the pipeline uses.
    """

    SPEC_CLASS = spec.ImageCleanerSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, raw_images: channel.BaseChannel, classes: str | list[str], **settings: Any):
        if isinstance(classes, str):
            classes = classes.split(",")
        cleaner_settings = spec.CleanerSettings(classes=tuple(classes), **settings)
        super().__init__(
            spec=spec.ImageCleanerSpec(
                **{
                    spec.RAW_IMAGES_KEY: raw_images,
                    spec.EXAMPLES_KEY: channel.Channel(type=standard_artifacts.Examples),
                    spec.REPORT_KEY: channel.Channel(type=CleaningReport),
                },
                **spec.exec_properties(cleaner_settings),
            )
        )

    @classmethod
    def from_config(cls, cfg: KeyclassConfig, raw_images: channel.BaseChannel) -> ImageCleaner:
        """The component for ``cfg``: ``crawl.classes``, ``image_size`` and ``clean.*``."""
        s = spec.settings_from_config(cfg)
        return cls(raw_images=raw_images, **s.to_dict())
