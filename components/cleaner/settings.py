"""The cleaner's settings: the ``clean.*`` configuration section and the validated
values the executor runs with (no TFX import: Beam workers load this module).

Curation settings (see docs/curation.md for why each default is what it is):

- ``curate``: use the configured backbone's embeddings to confirm near duplicates and to
  find label issues, when the backbone has pretrained weights (``train.backbone`` and
  ``train.weights``); off, or without pretrained weights, the cleaner falls back to the
  pHash rule alone (``near_duplicate_distance``) and prunes no label issues, and says so.
- ``near_duplicate_candidate_distance``: pHash (64-bit) candidates for confirmation are
  found by multi-index hashing within this many bits;
- ``near_duplicate_min_cosine``: a candidate pair within ``near_duplicate_close_distance``
  bits is a near copy when the cosine of the two images' duplicate embeddings (pooled and
  spatial layout features) reaches this;
- ``near_duplicate_far_min_cosine``: the cosine a candidate farther apart than that needs
  (hashes that agree less need embeddings that agree more);
- ``label_issue_folds``: out-of-fold probabilities from this many stratified folds;
- ``off_topic_p_value``: an image is off-topic when its class-conditional Mahalanobis
  distance (out of fold) is one a clean image of its class reaches with at most this
  probability, were the class Gaussian (Hotelling's prediction bound), and the classifier
  finds it more likely not of its class;
- ``max_label_issue_fraction``: at most this share of a class is pruned as label issues
  (the lowest label quality first), so a poor backbone cannot empty a class.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from keyclass.components.classes import parse_classes
from keyclass.components.errors import ConfigError, check_int, check_range
from keyclass.components.trainer.settings import TrainConfig

MIN_IMAGE_SIZE = 32
MAX_IMAGE_SIDE = 10_000  # a minimum side above this would drop every photo
MAX_PIXELS_CAP = 1_000_000_000  # a gigapixel: larger caps only invite decompression bombs
DIRECT_THREADS_CAP = 100_000_000  # files: beyond any local job
MAX_HASH_DISTANCE = 32  # of 64 bits: beyond this, two pHashes say nothing about each other
MAX_FOLDS = 20
MAX_EMBEDDING_BATCH = 4096


@dataclasses.dataclass
class CleanConfig:
    """What the ImageCleaner keeps (the ``clean`` section of the configuration)."""

    min_width: int = 224
    min_height: int = 224
    # pHash-only rule (no pretrained backbone, or curate off): Hamming distance in bits.
    near_duplicate_distance: int = 4
    balance: bool = True
    eval_fraction: float = 0.2
    # Held out from training, early stopping and model choice: ECE and certified
    # thresholds are measured on it (see components/calibration/).
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
    # Curation with the backbone's embeddings (module docstring; docs/curation.md).
    curate: bool = True
    near_duplicate_candidate_distance: int = 20
    near_duplicate_close_distance: int = 12
    near_duplicate_min_cosine: float = 0.86
    near_duplicate_far_min_cosine: float = 0.92
    label_issue_folds: int = 5
    off_topic_p_value: float = 0.03
    max_label_issue_fraction: float = 0.3
    embedding_batch_size: int = 32

    def validate(self, prefix: str = "clean.") -> None:
        """Refuse cleaning settings that cannot work, naming each."""
        check_int(self.min_width, 1, MAX_IMAGE_SIDE, f"{prefix}min_width")
        check_int(self.min_height, 1, MAX_IMAGE_SIDE, f"{prefix}min_height")
        check_int(self.near_duplicate_distance, 0, MAX_HASH_DISTANCE, f"{prefix}near_duplicate_distance")
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
        if not isinstance(self.curate, bool):
            raise ConfigError(f"{prefix}curate: expected true or false, got {self.curate!r}")
        check_int(
            self.near_duplicate_candidate_distance, 0, MAX_HASH_DISTANCE, f"{prefix}near_duplicate_candidate_distance"
        )
        check_int(self.near_duplicate_close_distance, 0, MAX_HASH_DISTANCE, f"{prefix}near_duplicate_close_distance")
        if self.near_duplicate_close_distance > self.near_duplicate_candidate_distance:
            raise ConfigError(
                f"{prefix}near_duplicate_close_distance: must not exceed {prefix}near_duplicate_candidate_distance "
                f"(only candidates are confirmed), got {self.near_duplicate_close_distance} > "
                f"{self.near_duplicate_candidate_distance}"
            )
        # A cosine of 0 or below confirms every candidate: the embeddings would decide nothing.
        check_range(self.near_duplicate_min_cosine, 0, 1, f"{prefix}near_duplicate_min_cosine", open_low=True)
        check_range(self.near_duplicate_far_min_cosine, 0, 1, f"{prefix}near_duplicate_far_min_cosine", open_low=True)
        check_int(self.label_issue_folds, 2, MAX_FOLDS, f"{prefix}label_issue_folds")
        check_range(self.off_topic_p_value, 0, 1, f"{prefix}off_topic_p_value", open_low=True)
        if self.off_topic_p_value >= 1:
            raise ConfigError(f"{prefix}off_topic_p_value: must be below 1, got {self.off_topic_p_value}")
        check_range(self.max_label_issue_fraction, 0, 1, f"{prefix}max_label_issue_fraction")
        check_int(self.embedding_batch_size, 1, MAX_EMBEDDING_BATCH, f"{prefix}embedding_batch_size")


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
    "curate",
    "near_duplicate_candidate_distance",
    "near_duplicate_close_distance",
    "near_duplicate_min_cosine",
    "near_duplicate_far_min_cosine",
    "label_issue_folds",
    "off_topic_p_value",
    "max_label_issue_fraction",
    "embedding_batch_size",
)


@dataclasses.dataclass(frozen=True)
class CleanerSettings:
    """What one ImageCleaner run uses: the class list, the model input size, the backbone
    and weights training will use (curation embeds with exactly those), and the ``clean``
    fields it needs. Defaults are CleanConfig's, never restated here."""

    classes: tuple[str, ...]
    image_size: int = 224
    backbone: str = TrainConfig.backbone
    weights: str = TrainConfig.weights
    min_width: int = CleanConfig.min_width
    min_height: int = CleanConfig.min_height
    near_duplicate_distance: int = CleanConfig.near_duplicate_distance
    balance: bool = CleanConfig.balance
    eval_fraction: float = CleanConfig.eval_fraction
    calibration_fraction: float = CleanConfig.calibration_fraction
    jpeg_quality: int = CleanConfig.jpeg_quality
    max_image_pixels: int = CleanConfig.max_image_pixels
    direct_threads_up_to: int = CleanConfig.direct_threads_up_to
    curate: bool = CleanConfig.curate
    near_duplicate_candidate_distance: int = CleanConfig.near_duplicate_candidate_distance
    near_duplicate_close_distance: int = CleanConfig.near_duplicate_close_distance
    near_duplicate_min_cosine: float = CleanConfig.near_duplicate_min_cosine
    near_duplicate_far_min_cosine: float = CleanConfig.near_duplicate_far_min_cosine
    label_issue_folds: int = CleanConfig.label_issue_folds
    off_topic_p_value: float = CleanConfig.off_topic_p_value
    max_label_issue_fraction: float = CleanConfig.max_label_issue_fraction
    embedding_batch_size: int = CleanConfig.embedding_batch_size

    def __post_init__(self):
        object.__setattr__(self, "classes", tuple(parse_classes(list(self.classes))))
        if not isinstance(self.image_size, int) or self.image_size < MIN_IMAGE_SIZE:
            raise ConfigError(f"ImageCleaner: image_size: must be at least {MIN_IMAGE_SIZE}, got {self.image_size}")
        if not self.backbone or not self.weights:
            raise ConfigError("ImageCleaner: backbone and weights: name the backbone training uses")
        CleanConfig(**{f: getattr(self, f) for f in CLEANER_FIELDS}).validate(prefix="ImageCleaner: ")

    @classmethod
    def create(
        cls,
        classes: Iterable[str],
        image_size: int,
        clean: CleanConfig,
        backbone: str = TrainConfig.backbone,
        weights: str = TrainConfig.weights,
    ) -> CleanerSettings:
        """From the configuration's class list, model input size, ``clean`` section and the
        trainer's backbone and weights."""
        return cls(
            classes=tuple(classes),
            image_size=image_size,
            backbone=backbone,
            weights=weights,
            **{f: getattr(clean, f) for f in CLEANER_FIELDS},
        )

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["classes"] = list(self.classes)
        return out
