"""The cleaner's settings as one validated, plain dataclass (no TFX import: Beam workers load it)."""

from __future__ import annotations

import dataclasses
from typing import Any

from pipeline.config import CleanConfig, ConfigError, KeyclassConfig, parse_classes


@dataclasses.dataclass(frozen=True)
class CleanerSettings:
    """The cleaner's settings as plain, validated values."""

    # Defaults are the configuration's own (pipeline/config.py), never restated here.
    classes: tuple[str, ...]
    image_size: int = KeyclassConfig.image_size
    min_width: int = CleanConfig.min_width
    min_height: int = CleanConfig.min_height
    near_duplicate_distance: int = CleanConfig.near_duplicate_distance
    balance: bool = CleanConfig.balance
    eval_fraction: float = CleanConfig.eval_fraction
    jpeg_quality: int = CleanConfig.jpeg_quality
    max_image_pixels: int = CleanConfig.max_image_pixels

    def __post_init__(self):
        object.__setattr__(self, "classes", tuple(parse_classes(list(self.classes))))
        checks = [
            (self.image_size >= 32, f"image_size: must be at least 32, got {self.image_size}"),
            (self.min_width > 0 and self.min_height > 0, "min_width/min_height: must be positive"),
            (0 <= self.near_duplicate_distance <= 32, "near_duplicate_distance: must be between 0 and 32 bits"),
            (0 < self.eval_fraction < 1, f"eval_fraction: must be between 0 and 1, got {self.eval_fraction}"),
            (1 <= self.jpeg_quality <= 100, f"jpeg_quality: must be between 1 and 100, got {self.jpeg_quality}"),
            (self.max_image_pixels > 0, "max_image_pixels: must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"ImageCleaner: {message}")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["classes"] = list(self.classes)
        return out


def settings_from_config(cfg: KeyclassConfig) -> CleanerSettings:
    """The cleaner's settings from the one config (classes from ``crawl.classes``)."""
    c = cfg.clean
    return CleanerSettings(
        classes=tuple(cfg.crawl.classes),
        image_size=cfg.image_size,
        min_width=c.min_width,
        min_height=c.min_height,
        near_duplicate_distance=c.near_duplicate_distance,
        balance=c.balance,
        eval_fraction=c.eval_fraction,
        jpeg_quality=c.jpeg_quality,
        max_image_pixels=c.max_image_pixels,
    )
