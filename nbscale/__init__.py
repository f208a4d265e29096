"""nbscale: tagged notebook cells as pipeline steps.

The public API is imported lazily so that `nbscale check` stays a fast, light process.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "compile_notebook"]


def compile_notebook(path, parameters=None):
    """Compile a notebook file into a `Pipeline` IR (diagnostics included, never raises on them)."""
    from nbscale.compiler import compile_notebook as _compile

    return _compile(path)
