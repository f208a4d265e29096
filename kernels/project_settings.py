"""A `[tool.nbscale.NAME]` table of the pyproject.toml nearest above a notebook (the project's
settings for regressions, cost, …), and the error a bad one is.

Only reads: the nearest pyproject.toml wins, as for `[tool.nbscale.kfp]`; a missing file or table is
an empty table; an unreadable file or a table that is not a table is a `SettingsError` naming it.
"""

from __future__ import annotations

import math
import os

from ..compiler.pyproject import PyprojectError, find_pyproject, nbscale_table, shown
from .errors import NbscaleRuntimeError


class SettingsError(NbscaleRuntimeError):
    """A project setting (pyproject.toml, an NBSCALE_* variable, a flag) is unreadable or mistyped."""


def project_table(notebook, name: str, boundary=None) -> tuple[dict, str]:
    """`[tool.nbscale.<name>]` of the nearest pyproject.toml ({} when none; none read above
    `boundary`, the Jupyter server's root), and where it was read (for messages about its values)."""
    try:
        path = find_pyproject(notebook, boundary) if notebook is not None else None
        if path is None:
            return {}, f"[tool.nbscale.{name}]"
        return nbscale_table(path, name, boundary), f"{shown(path, boundary)} [tool.nbscale.{name}]"
    except PyprojectError as exc:
        raise SettingsError(str(exc)) from None


def non_negative(value, where: str) -> float:
    """`value` as a finite number ≥ 0, or a SettingsError that says where it was set and what to write."""
    given = value
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise SettingsError(f"{where} must be a number ≥ 0, got {given!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise SettingsError(f"{where} must be a number ≥ 0, got {given!r}")
    return float(value)


PROFILES_ENV = "NBSCALE_PROFILES"
_SWITCH = {"1": True, "true": True, "on": True, "yes": True, "0": False, "false": False, "off": False, "no": False}


def profiles_enabled(notebook) -> bool:
    """Whether a run's steps profile their values (`kernels.profiles`): NBSCALE_PROFILES (on/off),
    else `[tool.nbscale.profiles] enabled`, else yes. Off keeps values out of the run store (top
    categories, quantiles) where the data must not be copied there."""
    if os.environ.get(PROFILES_ENV, "").strip():
        return switch(os.environ[PROFILES_ENV], PROFILES_ENV)
    table, origin = project_table(notebook, "profiles")
    return switch(table.get("enabled", True), f"{origin} enabled")


def switch(value, where: str) -> bool:
    """`value` as on or off: a boolean, or one of 1/0, true/false, on/off, yes/no."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _SWITCH:
        return _SWITCH[value.strip().lower()]
    raise SettingsError(f"{where} must be on or off (true/false, 1/0), got {value!r}")
