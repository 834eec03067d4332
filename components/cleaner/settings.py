"""The cleaner's settings: the ``clean.*`` configuration section and the validated
values the executor runs with (no TFX import: Beam workers load this module)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from keyclass.components.classes import parse_classes
from keyclass.components.errors import ConfigError, check_int, check_range

MIN_IMAGE_SIZE = 32
MAX_IMAGE_SIDE = 10_000  # a minimum side above this would drop every photo
MAX_PIXELS_CAP = 1_000_000_000  # a gigapixel: larger caps only invite decompression bombs
DIRECT_THREADS_CAP = 100_000_000  # files: beyond any local job


@dataclasses.dataclass
class CleanConfig:
    """What the ImageCleaner keeps (the ``clean`` section of the configuration)."""

    min_width: int = 224
    min_height: int = 224
    near_duplicate_distance: int = 4
    balance: bool = True
    eval_fraction: float = 0.2
    # Held out from training, early stopping and model choice: ECE and certified
    # thresholds are measured on it (see components/calibration.py).
    calibration_fraction: float = 0.25
    jpeg_quality: int = 95
    max_image_pixels: int = 64_000_000
    # Allowed relative deviation of a class's share from 1/K in the validation gate.
    balance_tolerance: float = 0.2
    # On Beam's DirectRunner, jobs of up to this many stored files decode in threads of
    # the executor's process (Pillow releases the GIL), larger ones in the configured
    # running mode (worker processes: seconds to start each, paid back only on large
    # jobs). 0: always the configured mode. See running.direct_running_args.
    direct_threads_up_to: int = 20_000

    def validate(self, prefix: str = "clean.") -> None:
        """Refuse cleaning settings that cannot work, naming each."""
        check_int(self.min_width, 1, MAX_IMAGE_SIDE, f"{prefix}min_width")
        check_int(self.min_height, 1, MAX_IMAGE_SIDE, f"{prefix}min_height")
        check_int(self.near_duplicate_distance, 0, 32, f"{prefix}near_duplicate_distance")
        check_range(self.eval_fraction, 0, 1, f"{prefix}eval_fraction", open_low=True)
        if self.eval_fraction >= 1:
            raise ConfigError(f"{prefix}eval_fraction: must be below 1, got {self.eval_fraction}")
        check_range(self.calibration_fraction, 0, 1, f"{prefix}calibration_fraction", open_low=True)
        if self.eval_fraction + self.calibration_fraction >= 1:
            raise ConfigError(
                f"{prefix}calibration_fraction: eval_fraction + calibration_fraction must stay below 1 "
                f"(leaving images to train on), got {self.eval_fraction} + {self.calibration_fraction}"
            )
        check_int(self.jpeg_quality, 1, 100, f"{prefix}jpeg_quality")
        check_int(self.max_image_pixels, 1, MAX_PIXELS_CAP, f"{prefix}max_image_pixels")
        # A class's share may deviate from 1/K by this fraction of 1/K: above 1 it has no lower bound.
        check_range(self.balance_tolerance, 0, 1, f"{prefix}balance_tolerance")
        check_int(self.direct_threads_up_to, 0, DIRECT_THREADS_CAP, f"{prefix}direct_threads_up_to")


# The CleanConfig fields the cleaner itself uses (balance_tolerance is the gate's).
CLEANER_FIELDS = (
    "min_width",
    "min_height",
    "near_duplicate_distance",
    "balance",
    "eval_fraction",
    "calibration_fraction",
    "jpeg_quality",
    "max_image_pixels",
    "direct_threads_up_to",
)


@dataclasses.dataclass(frozen=True)
class CleanerSettings:
    """What one ImageCleaner run uses: the class list, the model input size and the
    ``clean`` fields it needs. Defaults are CleanConfig's, never restated here."""

    classes: tuple[str, ...]
    image_size: int = 224
    min_width: int = CleanConfig.min_width
    min_height: int = CleanConfig.min_height
    near_duplicate_distance: int = CleanConfig.near_duplicate_distance
    balance: bool = CleanConfig.balance
    eval_fraction: float = CleanConfig.eval_fraction
    calibration_fraction: float = CleanConfig.calibration_fraction
    jpeg_quality: int = CleanConfig.jpeg_quality
    max_image_pixels: int = CleanConfig.max_image_pixels
    direct_threads_up_to: int = CleanConfig.direct_threads_up_to

    def __post_init__(self):
        object.__setattr__(self, "classes", tuple(parse_classes(list(self.classes))))
        if not isinstance(self.image_size, int) or self.image_size < MIN_IMAGE_SIZE:
            raise ConfigError(f"ImageCleaner: image_size: must be at least {MIN_IMAGE_SIZE}, got {self.image_size}")
        CleanConfig(**{f: getattr(self, f) for f in CLEANER_FIELDS}).validate(prefix="ImageCleaner: ")

    @classmethod
    def create(cls, classes: Iterable[str], image_size: int, clean: CleanConfig) -> CleanerSettings:
        """From the configuration's class list, model input size and ``clean`` section."""
        return cls(classes=tuple(classes), image_size=image_size, **{f: getattr(clean, f) for f in CLEANER_FIELDS})

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["classes"] = list(self.classes)
        return out
