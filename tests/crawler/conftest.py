"""Crawler test fixtures: a loopback demo engine, a tiny-timeout CrawlConfig, a Do() runner."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from keyclass.components import layout
from keyclass.components.artifacts import RawImages
from keyclass.components.crawler import executor, spec
from keyclass.components.crawler.fetch import FetchSettings
from keyclass.pipeline import demo_images
from keyclass.pipeline.config import CrawlConfig
from tests.fixtures.engine import FaultEngine as DemoSearchEngine

# Downloader settings for tests: loopback allowed, tiny timeouts and backoff.
FAST = FetchSettings(
    allow_loopback=True,
    max_bytes=100_000,
    connect_timeout_s=1.0,
    read_timeout_s=0.3,
    total_timeout_s=1.0,
    retries=2,
    backoff_s=0.01,
)
SMALL = 64  # demo image side in tests: a few KB each, fast to render


def small_render(keyword: str, index: int) -> bytes:
    return demo_images.render(keyword, index, size=SMALL)


@pytest.fixture
def engine():
    with DemoSearchEngine(
        classes=demo_images.DEMO_CLASSES, images_per_class=12, provider=small_render, page_size=5
    ) as e:
        yield e


def make_cfg(engine: DemoSearchEngine | None = None, **overrides) -> CrawlConfig:
    """Two classes from the loopback engine, small quota, tiny timeouts."""
    base = dict(
        classes=["circle", "square"],
        sources=["bing"],
        search_url={"bing": engine.search_url} if engine else {},
        max_images_per_class=4,
        min_images_per_class=1,
        allow_loopback=True,
        max_bytes=200_000,
        connect_timeout_s=1.0,
        read_timeout_s=0.3,
        total_timeout_s=1.0,
        retries=2,
        backoff_s=0.01,
        per_host_delay_s=0.0,
        download_threads=4,
        snapshot="test",
    )
    base.update(overrides)
    return CrawlConfig(**base)


@dataclasses.dataclass
class CrawlOutput:
    uri: str
    artifact: RawImages
    manifest: list[dict]
    report: dict

    def lines(self, **match) -> list[dict]:
        return [r for r in self.manifest if all(r.get(k) == v for k, v in match.items())]


def read_output(uri: str, artifact: RawImages) -> CrawlOutput:
    with open(os.path.join(uri, layout.MANIFEST)) as f:
        manifest = [json.loads(line) for line in f if line.strip()]
    with open(os.path.join(uri, layout.CRAWL_REPORT)) as f:
        report = json.load(f)
    return CrawlOutput(uri, artifact, manifest, report)


def run_do(cfg: CrawlConfig, out_dir) -> CrawlOutput:
    """The real executor's Do() on a fresh RawImages artifact under ``out_dir``."""
    artifact = RawImages()
    artifact.uri = os.path.join(str(out_dir), "raw_images")
    os.makedirs(artifact.uri, exist_ok=True)
    executor.Executor().Do({}, {spec.RAW_IMAGES_KEY: [artifact]}, spec.crawler_exec_properties(cfg))
    return read_output(artifact.uri, artifact)
