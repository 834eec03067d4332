"""The ImageCrawler's ComponentSpec, its keys, and the CrawlConfig <-> exec properties mapping.

Execution parameters are exactly the ``CrawlConfig`` fields: scalars under the field's
own name, ``allow_loopback`` as 0/1, and the list/dict fields JSON-encoded under
``<field>_json`` (plain types compile to Kubeflow and show up readably in ML Metadata).
Two more properties are not settings but part of TFX's cache key: a digest of the
``urls:``/``folder:`` sources' content and the keyclass version, so a changed local
folder or an upgrade crawls again instead of reusing the old output.
Nothing secret goes here: everything is recorded in ML Metadata.
"""

from __future__ import annotations

import json
from typing import Any

from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from keyclass.components.artifacts import RawImages
from keyclass.components.crawler.settings import CrawlConfig
from keyclass.components.crawler.sources import local_sources_digest
from keyclass.components.errors import ConfigError
from keyclass.components.version import VERSION_KEY, keyclass_version

# Output.
RAW_IMAGES_KEY = "raw_images"

# Execution parameters.
CLASSES_KEY = "classes_json"
SOURCES_KEY = "sources_json"
SEARCH_URL_KEY = "search_url_json"
MAX_IMAGES_KEY = "max_images_per_class"
MIN_IMAGES_KEY = "min_images_per_class"
ALLOW_LOOPBACK_KEY = "allow_loopback"
MAX_BYTES_KEY = "max_bytes"
CONNECT_TIMEOUT_KEY = "connect_timeout_s"
READ_TIMEOUT_KEY = "read_timeout_s"
TOTAL_TIMEOUT_KEY = "total_timeout_s"
RETRIES_KEY = "retries"
BACKOFF_KEY = "backoff_s"
PER_HOST_DELAY_KEY = "per_host_delay_s"
DOWNLOAD_THREADS_KEY = "download_threads"
SNAPSHOT_KEY = "snapshot"
# Not settings: they make TFX's cache key change with what a run would read and run.
SOURCES_DIGEST_KEY = "local_sources_digest"  # content of the urls: and folder: sources
KEYCLASS_VERSION_KEY = VERSION_KEY  # the installed keyclass
CACHE_KEYS: dict[str, type] = {SOURCES_DIGEST_KEY: str, KEYCLASS_VERSION_KEY: str}

# CrawlConfig field -> (exec property key, exec property type).
FIELD_KEYS: dict[str, tuple[str, type]] = {
    "classes": (CLASSES_KEY, str),
    "sources": (SOURCES_KEY, str),
    "search_url": (SEARCH_URL_KEY, str),
    "max_images_per_class": (MAX_IMAGES_KEY, int),
    "min_images_per_class": (MIN_IMAGES_KEY, int),
    "allow_loopback": (ALLOW_LOOPBACK_KEY, int),
    "max_bytes": (MAX_BYTES_KEY, int),
    "connect_timeout_s": (CONNECT_TIMEOUT_KEY, float),
    "read_timeout_s": (READ_TIMEOUT_KEY, float),
    "total_timeout_s": (TOTAL_TIMEOUT_KEY, float),
    "retries": (RETRIES_KEY, int),
    "backoff_s": (BACKOFF_KEY, float),
    "per_host_delay_s": (PER_HOST_DELAY_KEY, float),
    "download_threads": (DOWNLOAD_THREADS_KEY, int),
    "snapshot": (SNAPSHOT_KEY, str),
}
_JSON_FIELDS = ("classes", "sources", "search_url")


class ImageCrawlerSpec(ComponentSpec):
    """No inputs; the crawl settings; one RawImages output."""

    PARAMETERS = {
        **{key: ExecutionParameter(type=tp) for key, tp in FIELD_KEYS.values()},
        **{key: ExecutionParameter(type=tp) for key, tp in CACHE_KEYS.items()},
    }
    INPUTS: dict = {}
    OUTPUTS = {RAW_IMAGES_KEY: ChannelParameter(type=RawImages)}


def validate_crawl_config(cfg: CrawlConfig) -> CrawlConfig:
    """Validate ``cfg`` with the project's one validator; classes become canonical and sorted."""
    if not cfg.classes:
        raise ConfigError("crawl.classes: give at least two classes to crawl")
    cfg.validate()
    return cfg


def crawler_exec_properties(cfg: CrawlConfig) -> dict[str, Any]:
    """The ImageCrawler's execution parameters for ``cfg`` (validated first), with the
    cache-key properties: the local sources' content digest and the keyclass version."""
    validate_crawl_config(cfg)
    props: dict[str, Any] = {}
    for field, (key, tp) in FIELD_KEYS.items():
        value = getattr(cfg, field)
        props[key] = json.dumps(value, sort_keys=True) if field in _JSON_FIELDS else tp(value)
    props[SOURCES_DIGEST_KEY] = local_sources_digest(cfg.sources, cfg.classes)
    props[KEYCLASS_VERSION_KEY] = keyclass_version()
    return props


def crawl_config_from_exec_properties(props: dict[str, Any]) -> CrawlConfig:
    """The inverse of :func:`crawler_exec_properties`, validated; names the bad property."""
    kwargs: dict[str, Any] = {}
    for field, (key, tp) in FIELD_KEYS.items():
        if key not in props:
            raise ConfigError(f"ImageCrawler: execution property {key!r} is missing")
        value = props[key]
        if field in _JSON_FIELDS:
            try:
                value = json.loads(value)
            except (TypeError, ValueError):
                raise ConfigError(f"ImageCrawler: execution property {key!r} is not JSON: {value!r}") from None
        elif field == "allow_loopback":
            value = bool(value)
        else:
            value = tp(value)
        kwargs[field] = value
    return validate_crawl_config(CrawlConfig(**kwargs))
