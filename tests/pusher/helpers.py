"""Model directories for the pusher tests, and reading them back."""

from __future__ import annotations

import random
from pathlib import Path

from keyclass.serving import model_layout


def make_model(root: Path, files: int = 4, size: int = 1000, seed: int = 0) -> Path:
    """A SavedModel-shaped directory: saved_model.pb, variables, assets.extra."""
    rng = random.Random(seed)
    (root / "variables").mkdir(parents=True)
    (root / "assets.extra").mkdir()
    for i in range(files):
        (root / "variables" / f"variables.data-{i:05d}-of-{files:05d}").write_bytes(rng.randbytes(size))
    (root / "variables" / "variables.index").write_bytes(rng.randbytes(64))
    # A sound calibration record, as every keyclass export carries (the Pusher refuses a model without).
    calibration = '{"temperature": 1.2, "ece_before": 0.04, "ece_after": 0.01}'
    (root / "assets.extra" / "keyclass.json").write_text(f'{{"classes": ["a", "b"], "calibration": {calibration}}}')
    (root / "saved_model.pb").write_bytes(rng.randbytes(256))
    return root


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def without_record(files: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in files.items() if k != f"assets.extra/{model_layout.PUSH_RECORD_FILE}"}
