"""The component and its spec: built from the one CrawlConfig, exec properties round-trip."""

from __future__ import annotations

import dataclasses
import json

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from keyclass.components.artifacts import RawImages
from keyclass.components.crawler import spec
from keyclass.components.crawler.component import ImageCrawler
from keyclass.pipeline.config import ConfigError, CrawlConfig, load_config
from tests.crawler.conftest import make_cfg


def test_every_crawl_setting_is_an_execution_parameter():
    assert set(spec.FIELD_KEYS) == {f.name for f in dataclasses.fields(CrawlConfig)}
    assert set(spec.ImageCrawlerSpec.PARAMETERS) == {key for key, _ in spec.FIELD_KEYS.values()} | set(spec.CACHE_KEYS)
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


@pytest.mark.e2e
def test_runs_in_a_local_tfx_pipeline(engine, tmp_path):
    """LocalDagRunner with the crawler alone: MLMD records the RawImages artifact and its counts."""
    crawler = ImageCrawler.from_config(make_cfg(engine, max_images_per_class=2, min_images_per_class=2))
    metadata = tmp_path / "metadata.sqlite"
    tfx.orchestration.LocalDagRunner().run(
        tfx.dsl.Pipeline(
            pipeline_name="crawl-only",
            pipeline_root=str(tmp_path / "root"),
            components=[crawler],
            metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(str(metadata)),
        )
    )
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(metadata)
    (artifact,) = metadata_store.MetadataStore(config).get_artifacts_by_type(RawImages.TYPE_NAME)
    assert artifact.custom_properties["num_images"].int_value == 4
    with open(f"{artifact.uri}/manifest.jsonl") as f:
        assert sum(1 for _ in f) == 4
