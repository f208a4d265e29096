"""KFP options and where they come from: built-in defaults < pyproject.toml [tool.nbscale.kfp]
< notebook metadata nbscale.kfp < command-line flags (only those that were given).

`load_options(notebook, overrides)` stacks them into a `KfpOptions`; an unknown key or a wrong
type is an `OptionsError` naming where it was set.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .... import __version__
from ...errors import NbscaleCompileError
from ...image_reference import image_problem
from ...pyproject import PyprojectError, find_pyproject, nbscale_table, shown

DEFAULT_BASE_IMAGE = "python:3.11-slim"
DEFAULT_ACCELERATOR = "nvidia.com/gpu"
DEFAULT_EXPERIMENT = "Default"


def default_packages() -> list[str]:
    """nbscale's run time, pinned to this version: what every step needs inside its container."""
    return [f"nbscale[run]=={__version__}"]


@dataclass
class KfpOptions:
    base_image: str = DEFAULT_BASE_IMAGE
    packages_to_install: list[str] = field(default_factory=default_packages)
    pipeline_name: str | None = None  # None: the IR's name (notebook metadata nbscale.name, or the stem)
    experiment: str = DEFAULT_EXPERIMENT
    install_kfp_package: bool = True
    accelerator: str = DEFAULT_ACCELERATOR
    host: str | None = None
    origin: dict[str, str] = field(default_factory=dict, compare=False)  # option → where it was set


_TYPES = {"base_image": str, "packages_to_install": list, "pipeline_name": str, "experiment": str,
          "install_kfp_package": bool, "accelerator": str, "host": str}
OPTION_NAMES = tuple(_TYPES)
# what a shell reads in a double-quoted word (or ends it with): never in a requirement
_SHELL_ACTIVE = re.compile(r"[\"'$`\\\x00-\x1f\x7f]")
# a Kubernetes extended-resource name, `[DOMAIN/]NAME` (a qualified name, as the API server checks
# it): written as the pod's resource type, so a line break or a quote must not get that far
_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
_RESOURCE_NAME = re.compile(rf"(?:(?=[^/]{{1,253}}/){_DNS_LABEL}(?:\.{_DNS_LABEL})*/)?"
                            r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", re.ASCII)


class OptionsError(NbscaleCompileError):
    """A project default in pyproject.toml or the notebook's metadata is unknown or mistyped."""


def load_options(notebook, overrides: dict | None = None, boundary=None) -> KfpOptions:
    """KFP options for `notebook`: defaults, then pyproject.toml `[tool.nbscale.kfp]` (the nearest
    one above the notebook, no higher than `boundary` when one is given: the Jupyter server's root,
    above which nothing is the server's to read), then the notebook's metadata `nbscale.kfp`, then
    `overrides` — the command-line flags that were given (None values are ignored)."""
    options = KfpOptions()
    notebook = Path(notebook)
    try:
        pyproject = find_pyproject(notebook, boundary)
        table = nbscale_table(pyproject, "kfp", boundary) if pyproject is not None else {}
    except PyprojectError as exc:
        raise OptionsError(str(exc)) from None
    if pyproject is not None:
        _apply(options, table, f"{shown(pyproject, boundary)} [tool.nbscale.kfp]")
    _apply(options, _metadata_table(notebook), f"{notebook.name} metadata nbscale.kfp")
    _apply(options, {k: v for k, v in (overrides or {}).items() if v is not None}, "command line")
    return options


def _apply(options: KfpOptions, table: dict, origin: str) -> None:
    for key, value in table.items():
        if key not in _TYPES:
            raise OptionsError(f"{origin}: unknown key {key!r}; known keys: {', '.join(OPTION_NAMES)}")
        expected = _TYPES[key]
        if expected is list:
            if isinstance(value, str):
                value = [value]
            if not (isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)):
                raise OptionsError(f"{origin}: {key} must be a list of strings, got {value!r}")
            value = list(value)
            quoted = next((v for v in value if _SHELL_ACTIVE.search(v) or not v.strip()), None)
            if quoted is not None:  # the kfp SDK puts each into a `pip install` shell command
                raise OptionsError(f"{origin}: {key} holds {quoted!r}: a requirement is not empty and has no "
                                   "quotes, $, backquotes, backslashes or line breaks")
        elif not isinstance(value, expected) or (expected is str and not value.strip()):
            raise OptionsError(f"{origin}: {key} must be a non-empty {expected.__name__}, got {value!r}")
        elif key == "base_image" and (problem := image_problem(value)) is not None:
            raise OptionsError(f"{origin}: base_image {value!r} is {problem}")
        elif key == "accelerator" and not _RESOURCE_NAME.fullmatch(value):
            raise OptionsError(f"{origin}: accelerator {value!r} is not a Kubernetes extended-resource name "
                               "([DOMAIN/]NAME of letters, digits, '-', '_', '.'; e.g. nvidia.com/gpu)")
        setattr(options, key, value)
        options.origin[key] = origin


def metadata_host(notebook) -> str | None:
    """The KFP host the notebook's own metadata names: notebook text, so never where credentials go
    unless the user names it too."""
    host = _metadata_table(Path(notebook)).get("host")
    return host if isinstance(host, str) and host else None


def _metadata_table(notebook: Path) -> dict:
    try:
        metadata = json.loads(notebook.read_text(encoding="utf-8")).get("metadata", {})
    except (OSError, ValueError, AttributeError):
        return {}  # the compiler reports unreadable notebooks
    table = metadata.get("nbscale", {}) if isinstance(metadata, dict) else {}
    table = table.get("kfp", {}) if isinstance(table, dict) else {}
    if not isinstance(table, dict):
        raise OptionsError(f"{notebook.name}: metadata nbscale.kfp must be a mapping")
    return table
