"""Every exception class nbscale defines (warnings aside) derives from one root, NbscaleError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import papermill  # noqa: F401 - first, as papermill's CLI does: its import loads our engine entry point
import pytest

import nbscale
from nbscale.errors import NbscaleError

PACKAGES = ["nbscale", "nbscale.compiler", "nbscale.kernels", "nbscale.jupyter_ext"]
# Not importable on their own: run as a script, or needs a server extension context at import.
SKIP = {"nbscale.__main__", "nbscale.jupyter_ext.runproc"}


def nbscale_modules():
    names = set()
    for package in PACKAGES:
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, prefix=f"{package}."):
            names.add(info.name)
    return sorted(names - SKIP)


@pytest.mark.parametrize("name", nbscale_modules())
def test_exception_classes_derive_from_nbscale_error(name):
    module = importlib.import_module(name)
    for _, cls in inspect.getmembers(module, inspect.isclass):
        if cls.__module__ == name and issubclass(cls, BaseException) and not issubclass(cls, Warning):
            if not issubclass(cls, Exception):  # an interrupt (SIGTERM as Ctrl-C), a step's timeout: raised
                continue  # into the user's code, where `except Exception` must miss them
            assert issubclass(cls, NbscaleError), f"{name}.{cls.__name__} does not derive from NbscaleError"


def test_the_walk_finds_the_layers():
    names = nbscale_modules()
    assert {"nbscale.compiler.errors", "nbscale.kernels.errors", "nbscale.kernels.contract"} <= set(names)
    assert nbscale.errors.NbscaleError is NbscaleError
