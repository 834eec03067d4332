"""The trainer's settings section (``train.*`` in the configuration): plain and
validated, with no TensorFlow import. The pipeline factory hands it to the Trainer in
``custom_config``; ``run_fn`` rebuilds it from there."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from keyclass.components.errors import ConfigError, check_choice, check_int, check_range

# "tiny" is a small CNN on the same code path, for tests and smoke runs.
BACKBONES = ("resnet50", "efficientnet_lite0", "tiny")


@dataclasses.dataclass
class TrainConfig:
    """Trainer settings: backbone, weights and the two training phases."""

    backbone: str = "resnet50"
    # "imagenet", "none" or a path to a weights file.
    weights: str = "imagenet"
    batch_size: int = 32
    max_epochs: int = 100
    early_stopping_patience: int = 5
    learning_rate: float = 1e-3
    fine_tune_epochs: int = 10
    fine_tune_learning_rate: float = 1e-5
    augment: bool = True
    # With augmentation off, phase 1 can train the head on cached backbone features.
    cache_features: bool = False
    seed: int = 42
    # Test hook: permute training labels to make a deliberately worse model.
    shuffle_labels: bool = False

    def validate(self) -> None:
        """Refuse training settings that cannot work, naming each."""
        check_choice(self.backbone, BACKBONES, "train.backbone")
        if self.weights not in ("imagenet", "none") and not Path(self.weights).expanduser().is_file():
            raise ConfigError(f"train.weights: {self.weights!r} is neither imagenet, none nor an existing file")
        check_int(self.batch_size, 1, 4096, "train.batch_size")
        check_int(self.max_epochs, 1, 100_000, "train.max_epochs")
        check_int(self.early_stopping_patience, 0, 100_000, "train.early_stopping_patience")
        check_int(self.fine_tune_epochs, 0, 100_000, "train.fine_tune_epochs")
        for name in ("learning_rate", "fine_tune_learning_rate"):
            check_range(getattr(self, name), 0, 10, f"train.{name}", open_low=True)
        check_int(self.seed, 0, 2**31 - 1, "train.seed")
        if self.cache_features and self.augment:
            raise ConfigError("train.cache_features: needs train.augment off (cached features cannot be augmented)")
