"""The root of every exception nbscale raises.

Each layer has its own errors module (`nbscale.compiler.errors`, `nbscale.kernels.errors`,
`nbscale.jupyter_ext.errors`) whose classes derive from `NbscaleError`, so a caller catches one
class for "nbscale said no" and the CLI maps classes to exit codes in one place. This module
imports nothing: every layer may import it.
"""


class NbscaleError(Exception):
    """Base class of every error nbscale raises on purpose."""


class PluginError(NbscaleError, LookupError):
    """An unknown plug-in name (engine, marshaller, target) or a plug-in that fails to load."""
