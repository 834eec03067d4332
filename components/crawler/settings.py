"""The crawler's settings section (``crawl.*`` in the configuration): plain, validated,
with no TFX import, so the command line validates them before loading anything heavy."""

from __future__ import annotations

import dataclasses
import re

from keyclass.components.classes import parse_classes
from keyclass.components.errors import ConfigError, check_int, check_range

# Upper bounds: beyond these a setting is a typo, not a plan.
MAX_IMAGES_PER_CLASS = 100_000
MAX_BYTES_CAP = 1024**3
MAX_TIMEOUT_S = 86_400.0
MAX_WAIT_S = 3_600.0
MAX_RETRIES = 100
MAX_DOWNLOAD_THREADS = 256

KNOWN_ENGINES = ("bing", "google")
SOURCE_KINDS = ("bing", "google", "urls", "folder")


@dataclasses.dataclass
class CrawlConfig:
    """What the ImageCrawler collects and how it talks to the web."""

    classes: list[str] = dataclasses.field(default_factory=list)
    # In order, until the quota is met: "bing", "google", "urls:FILE", "folder:DIR".
    # A urls FILE holds "keyword<TAB>url" lines, or plain URLs when FILE names the
    # keyword's own file (urls:DIR/{keyword}.txt). A folder DIR has one subfolder per class.
    sources: list[str] = dataclasses.field(default_factory=lambda: ["bing", "google"])
    # Engine search endpoints; unset engines use their public address.
    search_url: dict[str, str] = dataclasses.field(default_factory=dict)
    max_images_per_class: int = 1000
    min_images_per_class: int = 20
    allow_loopback: bool = False
    max_bytes: int = 20 * 1024 * 1024
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    total_timeout_s: float = 30.0
    retries: int = 2
    backoff_s: float = 0.5
    per_host_delay_s: float = 0.0
    download_threads: int = 8
    # Changing it forces a new crawl (e.g. the date, for a weekly refresh); otherwise the
    # crawl is cached while classes and sources stay the same.
    snapshot: str = ""

    def validate(self) -> None:
        """Refuse crawl settings that cannot work, naming each, before any work starts."""
        if self.classes:
            try:
                self.classes = parse_classes(self.classes)
            except ConfigError as e:
                raise ConfigError(f"crawl.{e}") from None  # "crawl.classes: ..."
        if not self.sources:
            raise ConfigError("crawl.sources: give at least one source")
        for s in self.sources:
            kind, _, arg = s.partition(":")
            if kind not in SOURCE_KINDS:
                raise ConfigError(f"crawl.sources: unknown source {s!r}; use bing, google, urls:FILE or folder:DIR")
            if kind in KNOWN_ENGINES and arg:
                raise ConfigError(f"crawl.sources: {s!r}: set an engine's endpoint with search_url, not a suffix")
            if kind in ("urls", "folder") and not arg:
                raise ConfigError(f"crawl.sources: {kind} needs a path, as {kind}:PATH")
        for engine, url in self.search_url.items():
            if engine not in KNOWN_ENGINES:
                raise ConfigError(f"crawl.search_url: unknown engine {engine!r}")
            if not re.match(r"^https?://", url):
                raise ConfigError(f"crawl.search_url: {engine} endpoint must be http(s), got {url!r}")
        check_int(self.max_images_per_class, 1, MAX_IMAGES_PER_CLASS, "crawl.max_images_per_class")
        check_int(self.max_bytes, 1, MAX_BYTES_CAP, "crawl.max_bytes")
        check_int(self.download_threads, 1, MAX_DOWNLOAD_THREADS, "crawl.download_threads")
        check_int(self.min_images_per_class, 1, MAX_IMAGES_PER_CLASS, "crawl.min_images_per_class")
        if self.min_images_per_class > self.max_images_per_class:
            raise ConfigError("crawl.min_images_per_class: must be between 1 and crawl.max_images_per_class")
        for name in ("connect_timeout_s", "read_timeout_s", "total_timeout_s"):
            check_range(getattr(self, name), 0, MAX_TIMEOUT_S, f"crawl.{name}", open_low=True)
        check_int(self.retries, 0, MAX_RETRIES, "crawl.retries")
        for name in ("backoff_s", "per_host_delay_s"):
            check_range(getattr(self, name), 0, MAX_WAIT_S, f"crawl.{name}")
