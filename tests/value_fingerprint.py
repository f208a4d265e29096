"""A plain, comparable form of a value, for tests that compare a pipeline's values with a
top-to-bottom run's (objects compare by content, not by identity or address)."""

from __future__ import annotations

import io
import types

import numpy as np
import pandas as pd


def fingerprint(value, seen=None):
    """A plain, comparable form of a value: arrays, frames, estimators, figures, plain objects."""
    seen = set() if seen is None else seen
    if isinstance(value, (int, float, str, bool, bytes, type(None))):
        return repr(value)
    if isinstance(value, np.generic):
        return repr(value.item())
    if isinstance(value, np.ndarray):
        if value.dtype == object:  # the bytes of an object array are addresses
            return ("ndarray", "object", value.shape, fingerprint(value.tolist(), seen))
        return ("ndarray", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, (pd.DataFrame, pd.Series)):
        return (type(value).__name__, str(value.dtypes), value.to_csv())
    if isinstance(value, np.random.Generator):
        return repr(value.bit_generator.state)
    if type(value).__name__ == "Figure" and hasattr(value, "axes"):  # matplotlib, when installed
        return ("figure", [fingerprint(ax) for ax in value.axes])
    if type(value).__name__ == "Axes" and hasattr(value, "get_title"):
        return ("axes", value.get_title(), len(value.lines), len(value.patches))
    if isinstance(value, io.BytesIO):
        return ("bytes", len(value.getvalue()) > 0)
    if id(value) in seen:
        return "<cycle>"
    seen = seen | {id(value)}
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [fingerprint(v, seen) for v in value])
    if isinstance(value, dict):
        # fit and score timings (GridSearchCV's cv_results_, refit_time_) differ from run to run
        return ("dict", sorted((repr(k), fingerprint(v, seen)) for k, v in value.items()
                               if not str(k).endswith(("_time", "time_"))))
    if isinstance(value, (types.ModuleType, types.FunctionType, type)):
        return getattr(value, "__name__", repr(value))
    if hasattr(value, "__dict__"):
        return (type(value).__name__, fingerprint(vars(value), seen))
    return type(value).__name__
