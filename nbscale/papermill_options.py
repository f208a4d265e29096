"""How a `papermill --engine nbscale` call becomes nbscale's run options and notebook path.

Options (Python API keyword → environment variable for the CLI): `nbscale_engine` →
NBSCALE_ENGINE (dask, local, papermill), `scheduler` → NBSCALE_SCHEDULER (else Dask's
`scheduler-address` config), `scheduler_file` → NBSCALE_SCHEDULER_FILE, `workers` →
NBSCALE_WORKERS, `use_cache` → NBSCALE_NO_CACHE=1 turns it off, `store_url` → NBSCALE_STORE;
`fail_on_regression` → NBSCALE_FAIL_ON_REGRESSION=1 (the execution fails with `MetricRegression` when a
metric regressed, after the output notebook is written), `regression_threshold` →
NBSCALE_REGRESSION_THRESHOLD (a relative threshold for every metric).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

ENV = {"nbscale_engine": "NBSCALE_ENGINE", "scheduler": "NBSCALE_SCHEDULER",
       "scheduler_file": "NBSCALE_SCHEDULER_FILE", "workers": "NBSCALE_WORKERS", "store_url": "NBSCALE_STORE"}
TRUE = ("1", "true", "yes", "on")


def run_options(**given):
    """RunOptions from keyword arguments, else NBSCALE_* environment variables, else defaults."""
    from nbscale.kernels.runner import RunOptions

    values = {key: given[key] if given.get(key) is not None else os.environ.get(env) or None
              for key, env in ENV.items()}
    engine = values.pop("nbscale_engine") or "dask"
    values["workers"] = _whole_number(values["workers"])
    use_cache = given.get("use_cache")
    if use_cache is None:
        use_cache = os.environ.get("NBSCALE_NO_CACHE", "").strip().lower() not in TRUE
    if engine == "dask" and not (values["scheduler"] or values["scheduler_file"]):
        import dask

        values["scheduler"] = dask.config.get("scheduler-address", None)
    return RunOptions(engine=engine, use_cache=use_cache, **values)  # (it refuses a use_cache not bool)


def _whole_number(value):
    """`value` as an int when it is the text of one (NBSCALE_WORKERS is text); anything else as
    given, so that RunOptions refuses it with the message it gives 0 ("workers: a whole number ...")."""
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return value
    return value


def regression_options(fail_on_regression=None, regression_threshold=None) -> tuple[bool, float | None]:
    """(fail on a regressed metric, the relative threshold or None) from the engine's keyword
    arguments, else NBSCALE_FAIL_ON_REGRESSION and NBSCALE_REGRESSION_THRESHOLD."""
    if fail_on_regression is None:
        fail_on_regression = os.environ.get("NBSCALE_FAIL_ON_REGRESSION", "").strip().lower() in TRUE
    elif type(fail_on_regression) is not bool:  # (`fail_on_regression="no"` would count as true)
        from nbscale.kernels.errors import ParameterError

        raise ParameterError(f"fail_on_regression must be True or False, not {fail_on_regression!r}")
    if regression_threshold is None:
        regression_threshold = os.environ.get("NBSCALE_REGRESSION_THRESHOLD", "").strip() or None
    return fail_on_regression, regression_threshold


def notebook_path(input_path, start_dir=None) -> Path:
    """Where the notebook lives, for the run store and the cache (.nbscale next to it).

    A relative `input_path` is relative to `start_dir`, the folder papermill was started in (as
    papermill reads it), not to the working folder of the steps (`--cwd`); a notebook that is not
    a local file is named in `start_dir` after its address (`_remote_name`). Default: the current folder.
    """
    start = Path(start_dir) if start_dir else Path.cwd()
    if isinstance(input_path, (str, os.PathLike)):
        text = str(input_path)
        if text not in ("", "-") and "://" not in text and (start / text).is_file():
            return (start / text).resolve()
        if text.endswith(".ipynb"):
            return start.resolve() / _remote_name(text)
    return start.resolve() / "notebook.ipynb"


def _remote_name(address: str) -> str:
    """`s3://bucket/train.ipynb` → `train.1b2c3d4e.ipynb`: its own name in the folder, so that its
    runs are never recorded in the history of a local `train.ipynb` there, nor of another
    address's `train.ipynb`."""
    digest = hashlib.sha256(address.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{Path(address).stem}.{digest}.ipynb"


def papermill_start_dir() -> str | None:
    """The folder papermill was started in, once it has changed to `--cwd`: its local file
    handler reads the input notebook relative to it (None when it keeps none)."""
    from papermill.iorw import papermill_io

    try:
        folder = getattr(papermill_io.get_handler("local"), "_cwd", None)
    except Exception:  # noqa: BLE001 - papermill without a local handler: the current folder
        return None
    return folder if isinstance(folder, str) and os.path.isdir(folder) else None
