"""Serving fixtures: the real export of a tiny model,
sample images, a two-version model directory and the TF Serving stand-in."""

from __future__ import annotations

import io
import os
import shutil
from typing import NamedTuple

import pytest
from PIL import Image

from tests.serving.standin_server import StandinServer

TEMPERATURE = 1.7  # the served model's temperature: every answer is softmax(logits / 1.7)


class ExportedModel(NamedTuple):
    models_dir: str  # TF Serving base: <models_dir>/<model_name>/<version>/
    model_name: str
    version: int

    @property
    def path(self) -> str:
        return os.path.join(self.models_dir, self.model_name, str(self.version))


@pytest.fixture(scope="session")
def exported_model(tmp_path_factory) -> ExportedModel:
    """The trainer's real export (``components.trainer.export.export_model``) of a
    ``tiny``-backbone classifier: the same signatures, decoder, class table and
    assets.extra the Pusher serves, at a size that exports in seconds."""
    from keyclass.components.trainer.export import export_model
    from keyclass.components.trainer.model import build_classifier

    classes, size, version = ["cat", "dog", "fish"], 32, 1700000000
    clf = build_classifier("tiny", size, classes, weights="none", seed=7)
    models_dir = str(tmp_path_factory.mktemp("models"))
    model_name = "cat-dog-fish-0123abcd"
    path = os.path.join(models_dir, model_name, str(version))
    export_model(clf, path, metadata={"calibration": {"temperature": TEMPERATURE}}, temperature=TEMPERATURE)
    return ExportedModel(models_dir, model_name, version)


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


@pytest.fixture(scope="session")
def images() -> list[bytes]:
    """Four small images, one per format the model decodes, of different sizes."""
    out = []
    for i, (fmt, size) in enumerate([("JPEG", (40, 30)), ("PNG", (32, 32)), ("GIF", (50, 64)), ("BMP", (20, 28))]):
        img = Image.new("RGB", size, (40 * i, 255 - 50 * i, 90))
        img.paste((255, 255, 255), (2 + i, 3, size[0] // 2, size[1] // 2))
        out.append(_encode(img, fmt))
    return out


class ServedModels(NamedTuple):
    models_dir: str
    model_name: str
    versions: list[int]  # ascending
    labels: dict[str, int]


@pytest.fixture(scope="session")
def served_models(exported_model, tmp_path_factory) -> ServedModels:
    """The exported model as two versions (v and v+1), labels stable=v, canary=v+1."""
    base = str(tmp_path_factory.mktemp("served"))
    versions = [exported_model.version, exported_model.version + 1]
    for v in versions:
        shutil.copytree(exported_model.path, os.path.join(base, exported_model.model_name, str(v)))
    return ServedModels(base, exported_model.model_name, versions, {"stable": versions[0], "canary": versions[1]})


@pytest.fixture(scope="session")
def standin(served_models):
    """The TF Serving stand-in serving ``served_models`` on loopback ports."""
    with StandinServer(served_models.models_dir, labels={served_models.model_name: served_models.labels}) as server:
        yield server
