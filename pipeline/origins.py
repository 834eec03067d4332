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


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted leaf keys of a configuration dataclass (or nested mapping) -> values."""
    if dataclasses.is_dataclass(node):
        items = [(f.name, getattr(node, f.name)) for f in dataclasses.fields(node)]
    elif isinstance(node, Mapping) and prefix == "":
        items = list(node.items())
    else:
        return {prefix.rstrip("."): node}
    out: dict[str, Any] = {}
    for name, value in items:
        if dataclasses.is_dataclass(value):
            out.update(flatten(value, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = value
    return out


def file_keys(path: str | os.PathLike | None) -> set[str]:
    """The dotted keys a YAML/JSON config file sets (a mapping's leaves; a section given
    as a mapping counts for each key in it)."""
    if not path:
        return set()
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    keys: set[str] = set()

    def walk(prefix: str, node: Any) -> None:
        for k, v in node.items():
            if isinstance(v, Mapping) and v and not _is_mapping_setting(f"{prefix}{k}"):
                walk(f"{prefix}{k}.", v)
            else:
                keys.add(f"{prefix}{k}")

    if isinstance(data, Mapping):
        walk("", data)
    return keys


# Settings whose value is itself a mapping (a file gives them as one).
_MAPPING_SETTINGS = ("crawl.search_url",)


def _is_mapping_setting(key: str) -> bool:
    return key in _MAPPING_SETTINGS


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
    in_file = file_keys(config_path)
    rows = []
    for key, value in settings.items():
        if key in set_keys:
            origin = f"--set {key}"
        elif key in flags:
            origin = f"flag {flags[key]}"
        elif key in in_file:
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
