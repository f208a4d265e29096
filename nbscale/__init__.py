"""nbscale: tagged notebook cells as pipeline steps.

The public API is imported lazily so that `nbscale check` stays a fast, light process.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "compile_notebook", "run"]


def compile_notebook(path):
    """Compile a notebook file into a `Pipeline` IR (diagnostics included, never raises on them)."""
    from nbscale import compiler

    return compiler.compile_notebook(path)


def run(path, parameters=None, engine="dask", display=False, **options):
    """Run a notebook as a pipeline; returns a RunResult (status, steps, metrics, `load`).

    `parameters`: a dict of parameter names to values (ParameterError otherwise).
    Options: use_cache (True or False), store_url, scheduler, scheduler_file, workers — as `nbscale run`.
    `display=True`: in a kernel, the live view of `%nbscale run` until the run ends (an interrupt
    cancels it); elsewhere the final state printed as text (nbscale/run_display.py).
    """
    from nbscale.kernels.runner import RunOptions, run_notebook

    _check_arguments(parameters, options)
    if display:
        from nbscale.run_display import run_displayed

        return run_displayed(path, parameters, RunOptions(engine=engine, **options))
    return run_notebook(path, parameters, RunOptions(engine=engine, **options))


def _check_arguments(parameters, options) -> None:
    """ParameterError for arguments of the wrong shape, which would otherwise be misread: a str
    of parameters read character by character (RunOptions checks the options)."""
    from collections.abc import Mapping

    from nbscale.kernels.errors import ParameterError

    if parameters is not None and not isinstance(parameters, Mapping):
        raise ParameterError("parameters must be a dict of parameter names to values, "
                             f"got {type(parameters).__name__}")
    bad_name = next((name for name in parameters or {} if not isinstance(name, str)), None)
    if bad_name is not None:
        raise ParameterError("parameters must be a dict of parameter names to values, "
                             f"got the name {bad_name!r} ({type(bad_name).__name__})")


def load_ipython_extension(ip):
    """`%load_ext nbscale`: the `%nbscale` line magic (nbscale/magic.py)."""
    from nbscale.magic import load_ipython_extension as load

    load(ip)


def _jupyter_labextension_paths():
    """Where `jupyter labextension develop .` finds the built front end (an absolute path)."""
    from pathlib import Path

    return [{"src": str(Path(__file__).resolve().parent / "labextension"), "dest": "nbscale"}]
