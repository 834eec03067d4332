"""Where each effective setting came from (``keyclass config``).

The configuration is built in layers (see :func:`keyclass.pipeline.config.load_config`):
the defaults, the environment (``KEYCLASS_HOME`` for ``runner.home``), the config file,
then the command line (flags, then ``--set``). This module lists every setting of the
result with the last layer that gave it a value. Standard library and YAML only.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import yaml

DEFAULT = "default"
ENVIRONMENT = "environment KEYCLASS_HOME"


def flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys of a configuration dataclass's settings -> values (sections opened)."""
    out: dict[str, Any] = {}
    for field in dataclasses.fields(cfg):
        value = getattr(cfg, field.name)
        if dataclasses.is_dataclass(value):
            out.update(flatten(value, f"{prefix}{field.name}."))
        else:
            out[f"{prefix}{field.name}"] = value
    return out


def _read(path: str | os.PathLike | None) -> Mapping[str, Any]:
    if not path:
        return {}
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    return data if isinstance(data, Mapping) else {}


def file_keys(path: str | os.PathLike | None) -> set[str]:
    """The dotted keys a YAML/JSON config file sets (every leaf of its mappings)."""
    keys: set[str] = set()

    def walk(prefix: str, node: Mapping[str, Any]) -> None:
        for k, v in node.items():
            if isinstance(v, Mapping) and v:
                walk(f"{prefix}{k}.", v)
            else:
                keys.add(f"{prefix}{k}")

    walk("", _read(path))
    return keys


def _given(data: Mapping[str, Any], key: str) -> bool:
    """Whether the file's tree holds a value at the dotted ``key``."""
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def origins(
    settings: Mapping[str, Any],
    *,
    config_path: str | None,
    flags: Mapping[str, str],
    set_keys: set[str],
    env_home: bool,
) -> list[tuple[str, Any, str]]:
    """``(key, value, origin)`` for every setting in ``settings`` (see :func:`flatten`).

    ``flags`` maps dotted keys to the flag that set them (``"--max-images"``);
    ``set_keys`` are the keys given with ``--set``; ``env_home`` whether
    ``KEYCLASS_HOME`` gave the home."""
    data = _read(config_path)
    rows = []
    for key, value in settings.items():
        if key in set_keys:
            origin = f"--set {key}"
        elif key in flags:
            origin = f"flag {flags[key]}"
        elif _given(data, key):
            origin = f"config file {config_path}"
        elif key == "runner.home" and env_home:
            origin = ENVIRONMENT
        else:
            origin = DEFAULT
        rows.append((key, value, origin))
    return rows


def format_rows(rows: list[tuple[str, Any, str]]) -> str:
    """A table: setting, value, where it came from."""
    width = max([len("setting")] + [len(k) for k, _, _ in rows])
    values = [_show(v) for _, v, _ in rows]
    vwidth = min(48, max([len("value")] + [len(v) for v in values]))
    lines = [f"{'setting':<{width}}  {'value':<{vwidth}}  from"]
    for (key, _, origin), shown in zip(rows, values, strict=True):
        lines.append(f"{key:<{width}}  {shown:<{vwidth}}  {origin}")
    return "\n".join(lines)


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value) if value == "" else value
    if isinstance(value, list):
        return ",".join(str(v) for v in value) if value else "[]"
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items()) if value else "{}"
    return str(value)
