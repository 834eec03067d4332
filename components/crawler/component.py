"""ImageCrawler: a custom TFX component with no inputs and one RawImages output."""

from __future__ import annotations

import dataclasses
from typing import Any

from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import channel

from keyclass.components.artifacts import RawImages
from keyclass.components.crawler import executor, spec
from keyclass.components.crawler.settings import CrawlConfig


class ImageCrawler(base_component.BaseComponent):
    """Collects up to ``max_images_per_class`` images per class from the configured sources.

    ``ImageCrawler(classes=["cat", "dog"], sources=["bing"], max_images_per_class=200)``:
    keyword arguments are the ``CrawlConfig`` fields (defaults from there; an unknown name
    is a TypeError). ``ImageCrawler.from_config(cfg.crawl)`` is what the pipeline uses.
    """

    SPEC_CLASS = spec.ImageCrawlerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, classes: str | list[str], **settings: Any):
        cfg = CrawlConfig(classes=classes, **settings)
        super().__init__(
            spec=spec.ImageCrawlerSpec(
                **{spec.RAW_IMAGES_KEY: channel.Channel(type=RawImages)},
                **spec.crawler_exec_properties(cfg),
            )
        )

    @classmethod
    def from_config(cls, cfg: CrawlConfig) -> ImageCrawler:
        """The component for a (validated or not) ``CrawlConfig``; it is validated here."""
        return cls(**dataclasses.asdict(cfg))
