"""Exceptions of the server extension: what went wrong, in the manager's terms, with no HTTP in them.

`handlers.py` maps each class to a status code in one place (`STATUS` there). Every class
carries a one-line `message` and an optional JSON `detail` (e.g. a notebook's error diagnostics).
"""

from __future__ import annotations

from ..errors import NbscaleError


class ExtensionError(NbscaleError):
    """Root of the extension's errors; raised as itself, an unexpected failure of the server's own."""

    def __init__(self, message: str, detail=None):
        super().__init__(message)
        self.message, self.detail = message, detail


class InvalidInput(ExtensionError):
    """The request names something wrong: a malformed value, unknown engine or parameter, a notebook
    with errors."""


class NotAllowed(ExtensionError):
    """The request reaches for something the server does not serve: outside its root, hidden files."""


class NotFound(ExtensionError):
    """No such notebook or run."""


class Conflict(ExtensionError):
    """Not in the current state: a run already finished or not started here, a second cluster, no cluster."""


class Unavailable(ExtensionError):
    """A feature this installation cannot serve (the KFP target or the kfp package is missing)."""


class UpstreamError(ExtensionError):
    """A service the server calls on the user's behalf (the KFP endpoint) failed or refused."""
