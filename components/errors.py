"""The error every layer raises for a bad setting or argument (the CLI exits 2 on it),
and the small checks the settings sections validate themselves with."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable


class ConfigError(ValueError):
    """A setting is missing or wrong; the message names it and says what to fix."""


def check_positive(value: float, where: str) -> None:
    """``value`` must be a finite number above 0."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{where}: must be a positive number, got {value!r}")


def check_non_negative(value: float, where: str) -> None:
    """``value`` must be a finite number of at least 0."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{where}: must not be negative, got {value!r}")


def check_range(value: float, low: float, high: float, where: str, *, open_low: bool = False) -> None:
    """``low <= value <= high`` (``low < value`` with ``open_low``), finite."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if open_low else value >= low) and value <= high
    if not ok:
        bracket = "(" if open_low else "["
        raise ConfigError(f"{where}: must be in {bracket}{low}, {high}], got {value!r}")


def check_int(value: int, low: int, high: int, where: str) -> None:
    """``value`` must be a whole number with ``low <= value <= high``."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"{where}: must be a whole number from {low} to {high}, got {value!r}")


def check_choice(value: str, choices: Iterable[str], where: str) -> None:
    """``value`` must be one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"{where}: unknown {value!r}; use one of {', '.join(choices)}")


def check_pattern(value: str, pattern: str, what: str, where: str) -> None:
    """``value`` must match ``pattern`` (the whole of it); ``what`` says in words what that is."""
    if not isinstance(value, str) or re.fullmatch(pattern, value) is None:
        raise ConfigError(f"{where}: must be {what}, got {value!r}")


# A name that becomes one path component or URL segment: no separators, no "..".
SAFE_NAME = r"(?!\.\.?$)[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}"
HOST_PORT = r"[A-Za-z0-9_.\-]+:\d{1,5}|\[[0-9A-Fa-f:.]+\]:\d{1,5}"
