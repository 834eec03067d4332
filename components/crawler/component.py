"""ImageCrawler: a custom TFX component with no inputs and one RawImages output."""

from __future__ import annotations

import dataclasses
from typing import Any

from tfx.dsl.components.base import base_component, executor_spec
from tfx.orchestration import data_types
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

    def __init__(self, classes: str | list[str], snapshot: str | data_types.RuntimeParameter = "", **settings: Any):
        runtime = snapshot if isinstance(snapshot, data_types.RuntimeParameter) else None
        cfg = CrawlConfig(classes=classes, snapshot=(runtime.default or "") if runtime else snapshot, **settings)
        props = spec.crawler_exec_properties(cfg)
        if runtime is not None:
            # Kubeflow: each run may set it; a new value means a new crawl (cache key).
            props[spec.SNAPSHOT_KEY] = runtime
        super().__init__(spec=spec.ImageCrawlerSpec(**{spec.RAW_IMAGES_KEY: channel.Channel(type=RawImages)}, **props))

    @classmethod
    def from_config(cls, cfg: CrawlConfig, snapshot: data_types.RuntimeParameter | None = None) -> ImageCrawler:
        """The component for a (validated or not) ``CrawlConfig``; it is validated here.
        ``snapshot``: a runtime parameter replacing ``cfg.snapshot`` (Kubeflow)."""
        settings = dataclasses.asdict(cfg)
        if snapshot is not None:
            settings["snapshot"] = snapshot
        return cls(**settings)
