"""The crawler's settings section (``crawl.*`` in the configuration): plain, validated,
with no TFX import, so the command line validates them before loading anything heavy."""

from __future__ import annotations

import dataclasses
import re

from keyclass.components.classes import parse_classes
from keyclass.components.errors import ConfigError, check_non_negative, check_positive

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
            self.classes = parse_classes(self.classes)
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
        check_positive(self.max_images_per_class, "crawl.max_images_per_class")
        check_positive(self.max_bytes, "crawl.max_bytes")
        check_positive(self.download_threads, "crawl.download_threads")
        if not 1 <= self.min_images_per_class <= self.max_images_per_class:
            raise ConfigError("crawl.min_images_per_class: must be between 1 and crawl.max_images_per_class")
        for name in ("connect_timeout_s", "read_timeout_s", "total_timeout_s"):
            check_positive(getattr(self, name), f"crawl.{name}")
        for name in ("retries", "backoff_s", "per_host_delay_s"):
            check_non_negative(getattr(self, name), f"crawl.{name}")
