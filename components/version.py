"""The installed keyclass version: part of the ImageCrawler's and the ImageCleaner's
execution properties and of the Trainer's ``custom_config``. TFX's cache key covers
those, so after an upgrade (which may fix the crawler, the cleaner or training) a run
crawls, cleans and trains again instead of reusing outputs the old code made. Also what
``keyclass --version`` and the report print."""

from __future__ import annotations

import importlib.metadata

VERSION_KEY = "keyclass_version"  # the execution property both components carry


def keyclass_version() -> str:
    """``keyclass``'s distribution version, or ``"unknown"`` when it is not installed."""
    try:
        return importlib.metadata.version("keyclass")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
