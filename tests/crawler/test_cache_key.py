"""TFX's cache key covers what a crawl or clean would read and run: the content of the
``folder:`` and ``urls:`` sources and the keyclass version. A changed local folder, or
an upgrade, crawls and cleans again instead of silently reusing the old outputs."""

from __future__ import annotations

import hashlib
import json
from unittest import mock

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from keyclass.components.artifacts import RawImages
from keyclass.components.cleaner import spec as cleaner_spec
from keyclass.components.cleaner.settings import CleanerSettings
from keyclass.components.crawler import spec
from keyclass.components.crawler.component import ImageCrawler
from tests.crawler.conftest import make_cfg
from tests.fixtures import images as fx


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "photos"
    for i, cls in enumerate(("circle", "square")):
        (root / cls).mkdir(parents=True)
        (root / cls / "a.jpg").write_bytes(fx.rgb_jpeg(i, 64, 48))
    (root / "unrelated").mkdir()
    return root


def _props(**kw):
    return spec.crawler_exec_properties(make_cfg(**kw))


def test_the_digest_follows_folder_content(folder):
    source = [f"folder:{folder}"]
    first = _props(sources=source)
    assert first[spec.SOURCES_DIGEST_KEY] and first == _props(sources=source)  # stable when unchanged
    (folder / "unrelated" / "x.jpg").write_bytes(b"not a class folder")
    assert _props(sources=source) == first  # only the classes' folders count
    (folder / "circle" / "a.jpg").write_bytes(fx.rgb_jpeg(9, 64, 48))  # same name, new bytes
    changed = _props(sources=source)
    assert changed[spec.SOURCES_DIGEST_KEY] != first[spec.SOURCES_DIGEST_KEY]
    (folder / "square" / "b.jpg").write_bytes(fx.rgb_jpeg(10, 64, 48))  # one more file
    assert _props(sources=source)[spec.SOURCES_DIGEST_KEY] != changed[spec.SOURCES_DIGEST_KEY]


def test_the_digest_follows_url_lists(tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "circle.txt").write_text("http://a/1.jpg\n")
    per_keyword = [f"urls:{lists}/{{keyword}}.txt"]
    before = _props(sources=per_keyword)[spec.SOURCES_DIGEST_KEY]
    (lists / "Square.txt").write_text("http://a/2.png\n")
    assert _props(sources=per_keyword)[spec.SOURCES_DIGEST_KEY] != before
    one_file = tmp_path / "urls.txt"
    one_file.write_text("circle\thttp://a/1.jpg\n")
    before = _props(sources=[f"urls:{one_file}"])[spec.SOURCES_DIGEST_KEY]
    one_file.write_text("circle\thttp://a/1.jpg\nsquare\thttp://a/3.jpg\n")
    assert _props(sources=[f"urls:{one_file}"])[spec.SOURCES_DIGEST_KEY] != before
    assert _props(sources=["bing"])[spec.SOURCES_DIGEST_KEY] == ""  # engines: crawl.snapshot decides


def test_the_keyclass_version_is_in_the_crawler_cleaner_and_trainer_cache_keys(tmp_path):
    import json

    from keyclass.pipeline.config import KeyclassConfig
    from keyclass.pipeline.pipeline import create_pipeline

    settings = CleanerSettings(classes=("a", "b"))

    def trainer_config() -> dict:
        cfg = KeyclassConfig()
        cfg.crawl.classes = ["a", "b"]
        built = create_pipeline(
            pipeline_name="p",
            pipeline_root=str(tmp_path),
            serving_model_dir=str(tmp_path / "serving"),
            config=cfg,
            beam_pipeline_args=[],
        )
        (trainer,) = [c for c in built.components if c.id == "Trainer"]
        return json.loads(trainer.exec_properties["custom_config"])

    with mock.patch("keyclass.components.version.importlib.metadata.version", return_value="9.9.9"):
        assert _props(sources=["bing"])[spec.KEYCLASS_VERSION_KEY] == "9.9.9"
        assert cleaner_spec.exec_properties(settings)[cleaner_spec.KEYCLASS_VERSION_KEY] == "9.9.9"
        assert trainer_config()["keyclass_version"] == "9.9.9"
    assert _props(sources=["bing"])[spec.KEYCLASS_VERSION_KEY] != "9.9.9"
    assert trainer_config()["keyclass_version"] != "9.9.9"


def _run(folder, root, metadata):
    crawler = ImageCrawler.from_config(
        make_cfg(sources=[f"folder:{folder}"], max_images_per_class=5, min_images_per_class=1)
    )
    tfx.orchestration.LocalDagRunner().run(
        tfx.dsl.Pipeline(
            pipeline_name="crawl-cache",
            pipeline_root=str(root),
            components=[crawler],
            enable_cache=True,
            metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(str(metadata)),
        )
    )
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = str(metadata)
    return metadata_store.MetadataStore(config).get_artifacts_by_type(RawImages.TYPE_NAME)


@pytest.mark.e2e
def test_a_changed_folder_is_crawled_again_and_an_unchanged_one_is_cached(folder, tmp_path):
    root, metadata = tmp_path / "root", tmp_path / "metadata.sqlite"
    assert len(_run(folder, root, metadata)) == 1
    assert len(_run(folder, root, metadata)) == 1, "unchanged sources: the cached crawl is reused"
    new = fx.rgb_jpeg(42, 64, 48)
    (folder / "circle" / "a.jpg").write_bytes(new)
    artifacts = _run(folder, root, metadata)
    assert len(artifacts) == 2, "a changed folder must be crawled again"
    latest = max(artifacts, key=lambda a: a.id)
    with open(f"{latest.uri}/manifest.jsonl") as f:
        shas = {json.loads(line)["sha256"] for line in f}
    assert hashlib.sha256(new).hexdigest() in shas
