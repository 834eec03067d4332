"""ImageCleaner: RawImages in; cleaned, deduplicated, balanced train/eval/calibration Examples out."""

from __future__ import annotations

from typing import Any

from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import channel, standard_artifacts

from keyclass.components.artifacts import CleaningReport
from keyclass.components.cleaner import executor, spec


class ImageCleaner(base_beam_component.BaseBeamComponent):
    """Decodes and normalises every crawled image; drops broken, small, duplicate and
    cross-class ones; balances the classes; writes gzipped TFRecords split by content hash,
    a ledger line per crawled URL and a per-class funnel report.

    ``ImageCleaner(raw_images=ch, classes=["cat", "dog"], min_width=128)``: keyword
    arguments are ``CleanerSettings`` fields (defaults from there; an unknown name is a
    TypeError). ``ImageCleaner.from_settings(raw_images=ch, settings=s)`` is what the
    pipeline factory uses.
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
    def from_settings(cls, raw_images: channel.BaseChannel, settings: spec.CleanerSettings) -> ImageCleaner:
        """The component for validated ``CleanerSettings``."""
        return cls(raw_images=raw_images, **settings.to_dict())
