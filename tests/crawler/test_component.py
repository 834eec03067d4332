"""The component and its spec: built from the one CrawlConfig, exec properties round-trip."""

from __future__ import annotations

import dataclasses
import json

import pytest

from components.artifacts import RawImages
from components.crawler import spec
from components.crawler.component import ImageCrawler
from pipeline.config import ConfigError, CrawlConfig, load_config


def test_every_crawl_setting_is_an_execution_parameter():
    assert set(spec.FIELD_KEYS) == {f.name for f in dataclasses.fields(CrawlConfig)}
    assert set(spec.ImageCrawlerSpec.PARAMETERS) == {key for key, _ in spec.FIELD_KEYS.values()}
    assert spec.ImageCrawlerSpec.INPUTS == {}


def test_from_config_builds_the_component_with_exec_properties():
    cfg = load_config(
        overrides={
            "crawl.classes": "Dog, cat",
            "crawl.sources": ["bing", "urls:/data/{keyword}.txt"],
            "crawl.search_url": {"bing": "http://127.0.0.1:8765/images/async"},
            "crawl.max_images_per_class": 50,
            "crawl.allow_loopback": True,
            "crawl.snapshot": "2024-06-01",
        }
    )
    crawler = ImageCrawler.from_config(cfg.crawl)
    props = crawler.exec_properties
    assert json.loads(props[spec.CLASSES_KEY]) == ["cat", "dog"]
    assert json.loads(props[spec.SEARCH_URL_KEY]) == {"bing": "http://127.0.0.1:8765/images/async"}
    assert props[spec.MAX_IMAGES_KEY] == 50 and props[spec.ALLOW_LOOPBACK_KEY] == 1
    assert props[spec.SNAPSHOT_KEY] == "2024-06-01"
    assert crawler.outputs[spec.RAW_IMAGES_KEY].type is RawImages
    assert spec.crawl_config_from_exec_properties(props) == cfg.crawl


def test_keyword_arguments_are_crawl_config_fields():
    crawler = ImageCrawler(classes="circle,square", max_images_per_class=70, sources=["bing"])
    assert crawler.exec_properties[spec.MAX_IMAGES_KEY] == 70
    assert crawler.exec_properties[spec.MIN_IMAGES_KEY] == CrawlConfig().min_images_per_class
    with pytest.raises(TypeError):
        ImageCrawler(classes="a,b", max_images=3)


@pytest.mark.parametrize(
    "settings, where",
    [
        ({"classes": []}, "crawl.classes"),
        ({"classes": ["cat"]}, "classes"),
        ({"sources": ["yahoo"]}, "crawl.sources"),
        ({"search_url": {"bing": "ftp://x"}}, "crawl.search_url"),
        ({"min_images_per_class": 0}, "crawl.min_images_per_class"),
        ({"read_timeout_s": 0}, "crawl.read_timeout_s"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(settings, where):
    kwargs = {"classes": ["cat", "dog"], **settings}
    with pytest.raises(ConfigError, match=where):
        ImageCrawler(**kwargs)


def test_executor_refuses_missing_or_bad_properties():
    props = spec.crawler_exec_properties(CrawlConfig(classes=["a", "b"]))
    with pytest.raises(ConfigError, match="'snapshot' is missing"):
        spec.crawl_config_from_exec_properties({k: v for k, v in props.items() if k != spec.SNAPSHOT_KEY})
    with pytest.raises(ConfigError, match="sources_json"):
        spec.crawl_config_from_exec_properties({**props, spec.SOURCES_KEY: "bing,google"})
