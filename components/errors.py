"""The error every layer raises for a bad setting or argument (the CLI exits 2 on it),
and the small checks the settings sections validate themselves with."""

from __future__ import annotations

import math


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
