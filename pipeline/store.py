"""The pushed-model store: ``<home>/models/<model_name>/<version>/``, TF Serving's layout.

Reads model metadata through :mod:`keyclass.serving.model_layout` only, so listing and
finding models never imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import os

from keyclass.components.classes import ClassList
from keyclass.serving import model_layout


@dataclasses.dataclass
class StoredModel:
    """One pushed version of a model."""

    model_name: str
    version: int
    path: str
    metadata: dict

    @property
    def classes(self) -> list[str]:
        return list(self.metadata.get("classes", []))


def list_models(models_dir: str | os.PathLike) -> list[StoredModel]:
    """Every complete pushed version (hidden temp dirs of pushes in flight are skipped)."""
    return [StoredModel(*row) for row in model_layout.complete_versions(str(models_dir))]


def find_model(models_dir: str | os.PathLike, classes: ClassList, version: int = 0) -> StoredModel | None:
    """The newest (or the given) pushed version trained on exactly ``classes``. The
    model's own class list is checked, not just its directory name."""
    wanted = ClassList(classes)
    candidates = [
        m
        for m in list_models(models_dir)
        if m.model_name == wanted.model_name
        and sorted(m.classes) == wanted.names
        and (not version or m.version == version)
    ]
    return max(candidates, key=lambda m: m.version) if candidates else None
