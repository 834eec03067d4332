"""ImageCrawler executor: unpack, validate, delegate to :mod:`components.crawler.crawl`."""

from __future__ import annotations

from typing import Any

from absl import logging
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from keyclass.components.crawler import crawl as crawl_lib
from keyclass.components.crawler import spec


class Executor(base_executor.BaseExecutor):
    """Crawls every class into the ``raw_images`` artifact; raises CrawlError (after writing
    the manifest and report) when a class ends below ``min_images_per_class``.

    No source needs credentials today; one that does must read them from the environment
    here, never from execution properties (those are recorded in ML Metadata)."""

    def Do(self, input_dict: dict[str, list], output_dict: dict[str, list], exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        cfg = spec.crawl_config_from_exec_properties(exec_properties)
        raw_images = artifact_utils.get_single_instance(output_dict[spec.RAW_IMAGES_KEY])
        report = crawl_lib.crawl(cfg, raw_images.uri)
        raw_images.set_int_custom_property("num_images", int(report["total_images"]))
        raw_images.set_string_custom_property("classes", ",".join(report["classes"]))
        raw_images.set_int_custom_property("engine_errors", len(report["engine_errors"]))
        logging.info(
            "ImageCrawler: %s",
            ", ".join(f"{k}={v['downloaded']}" for k, v in report["classes"].items()),
        )
        crawl_lib.check_minimums(report, cfg.min_images_per_class, raw_images.uri)
