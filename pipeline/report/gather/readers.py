"""Small readers shared by the sections: JSON and JSON Lines files, the git commit of
this checkout, config differences from the defaults, and a model's identity and
``assets.extra/keyclass.json`` (:class:`ModelInfo`).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from keyclass.pipeline.report.gather.model import ModelInfo
from keyclass.serving import model_layout


def read_json(path: str | os.PathLike) -> Any:
    """The parsed JSON file, or None when it does not exist."""
    p = Path(path)
    if not p.is_file():
        return None
    return json.loads(p.read_text())


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    p = Path(path)
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def git_commit(path: str | os.PathLike | None = None) -> str:
    """The commit of the keyclass checkout this code runs from (an editable install), or
    "" when it is not one (an installed wheel, even inside some other repository)."""
    here = Path(__file__).resolve()
    where = Path(path) if path else here.parent

    def git(*args: str) -> subprocess.CompletedProcess | None:
        try:
            return subprocess.run(
                ["git", "-C", str(where), *args], capture_output=True, text=True, timeout=5, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None

    tracked = git("ls-files", "--error-unmatch", str(here))  # this very file is in that repository
    head = git("rev-parse", "--short=12", "HEAD")
    if not tracked or tracked.returncode != 0 or not head or head.returncode != 0:
        return ""
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return head.stdout.strip() + (" (with uncommitted changes)" if dirty and dirty.stdout.strip() else "")


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_differences(config: dict, defaults: dict) -> dict[str, Any]:
    """Settings whose value differs from the default (from a file, a flag or --set)."""
    flat, base = flatten(config), flatten(defaults)
    return {k: v for k, v in flat.items() if base.get(k, object()) != v}


def model_info(path: str, source: str, name: str = "", version: str = "") -> ModelInfo:
    meta = model_layout.read_metadata(path) or {}
    if not version:
        base = os.path.basename(os.path.normpath(path))
        version = base if base.isdigit() else ""
    if not name and version:
        name = os.path.basename(os.path.dirname(os.path.normpath(path)))
    return ModelInfo(name=name, version=version, path=path, source=source, metadata=meta)


def trainer_model_dir(model_uri: str) -> str:
    """The SavedModel directory inside a Trainer ``model`` artifact (TFX's Format-Serving)."""
    from tfx.utils import path_utils

    return path_utils.serving_model_path(model_uri)
