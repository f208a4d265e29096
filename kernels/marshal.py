"""Marshalling of step outputs: a registry of serialisers chosen by the type of each value.

Built-ins, in priority order: numpy arrays → ``.npy``, pandas frames and series → Parquet,
scikit-learn estimators → joblib, everything else → cloudpickle. Plug-ins registered under the
entry-point group ``nbscale.marshallers`` are tried before the built-ins.
"""

from __future__ import annotations

import json
import pickle
import shutil
import sys
import tempfile
import warnings
from typing import IO, Any

import cloudpickle

from ..registry import Registry
from . import array_views, pickling  # noqa: F401 - (pickling: lru_cache'd functions of a step's pickle too)
from .errors import MarshalError, NbscaleRuntimeError, PluginError

ENTRY_POINT_GROUP = "nbscale.marshallers"
WRITE_CHUNK = 16 * 2**20  # bytes per write from a value's buffer

__all__ = [
    "ENTRY_POINT_GROUP",
    "CannotMarshal",
    "Marshaller",
    "NumpyMarshaller",
    "PandasMarshaller",
    "SklearnMarshaller",
    "CloudpickleMarshaller",
    "marshallers",
    "registry",
    "reload_marshallers",
    "get_marshaller",
    "type_name",
    "dump_value",
    "load_value",
    "dump_group",
    "load_group",
]


class CannotMarshal(NbscaleRuntimeError):
    """Raised by `Marshaller.dump` *before writing anything* to pass the value to the next one."""


class Marshaller:
    """Base class (duck typing is enough for plug-ins): a named serialiser for some values."""

    name: str = ""
    suffix: str = ""

    def can_handle(self, value: Any) -> bool:
        raise NotImplementedError

    def dump(self, value: Any, fileobj: IO[bytes]) -> None:
        raise NotImplementedError

    def load(self, fileobj: IO[bytes]) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


# A value can only be an instance of a numpy/pandas/sklearn class if that library is already
# imported, so looking in sys.modules keeps marshalling a plain dict from importing any of them.
def loaded_module(module: str) -> Any:
    """`module` if it is imported, else None; also None while another thread is still importing it
    (a step's first `import pandas` while a store write runs: its classes are not there yet)."""
    found = sys.modules.get(module)
    if found is None or getattr(getattr(found, "__spec__", None), "_initializing", False):
        return None
    return found


class NumpyMarshaller(Marshaller):
    name = "numpy"
    suffix = ".npy"

    def can_handle(self, value: Any) -> bool:
        np = loaded_module("numpy")
        # Exact types only: subclasses such as masked arrays would lose data in a .npy file.
        if np is None or type(value) not in (np.ndarray, np.memmap):
            return False
        return not value.dtype.hasobject

    def dump(self, value: Any, fileobj: IO[bytes]) -> None:
        import numpy as np

        if value.dtype.names is not None or not (value.flags.c_contiguous or value.flags.f_contiguous):
            np.save(fileobj, value, allow_pickle=False)
            return
        # np.save copies every 16 MB into a new bytes object unless `fileobj` is a real file (the
        # store's is a hashing writer): the same bytes, written from the array's own buffer
        header = np.lib.format.header_data_from_array_1_0(value)
        try:
            np.lib.format.write_array_header_1_0(fileobj, header)
        except ValueError:  # a header too long for format 1.0, as np.save decides
            np.lib.format.write_array_header_2_0(fileobj, header)
        data = value.T if header["fortran_order"] else value
        buffer = memoryview(np.ascontiguousarray(data).reshape(-1).view(np.uint8))
        for start in range(0, buffer.nbytes, WRITE_CHUNK):
            fileobj.write(buffer[start:start + WRITE_CHUNK])

    def load(self, fileobj: IO[bytes]) -> Any:
        import numpy as np

        return np.load(fileobj, allow_pickle=False)


_SERIES_COLUMN = "__nbscale_series__"
_META_KEY = b"nbscale"
_JSON_SCALARS = (str, int, float, bool, type(None))


class PandasMarshaller(Marshaller):
    name = "parquet"
    suffix = ".parquet"

    def can_handle(self, value: Any) -> bool:
        pd = loaded_module("pandas")
        # Exact types only: subclasses (e.g. GeoDataFrame) would come back as plain frames.
        return pd is not None and type(value) in (pd.DataFrame, pd.Series)

    def dump(self, value: Any, fileobj: IO[bytes]) -> None:
        import pyarrow.parquet as pq

        table = _to_arrow(value)  # raises CannotMarshal before anything is written
        pq.write_table(table, fileobj)

    def load(self, fileobj: IO[bytes]) -> Any:
        import pyarrow.parquet as pq

        table = pq.read_table(fileobj)
        meta = json.loads((table.schema.metadata or {}).get(_META_KEY, b"{}"))
        return _from_arrow(table, meta)


def _to_arrow(value: Any) -> Any:
    import pandas as pd
    import pyarrow as pa

    is_series = isinstance(value, pd.Series)
    if is_series and type(value.name) not in _JSON_SCALARS:
        raise CannotMarshal(f"series name of type {type(value.name).__name__}")
    frame = value.to_frame(_SERIES_COLUMN) if is_series else value
    try:
        with warnings.catch_warnings():
            # pyarrow only warns when it stringifies labels it cannot restore.
            warnings.filterwarnings("error", message=".*not roundtrip", category=UserWarning)
            table = pa.Table.from_pandas(frame)
    except Exception as exc:  # pyarrow raises many types for values Parquet cannot hold
        raise CannotMarshal(str(exc)) from exc
    is_object = pd.api.types.is_object_dtype
    object_columns = [i for i, dtype in enumerate(frame.dtypes) if is_object(dtype)]
    _reject_nested(table, object_columns)
    meta = {
        "kind": "series" if is_series else "frame",
        "name": value.name if is_series else None,
        "object_columns": object_columns,
        "object_index": is_object(frame.index.dtype) and frame.index.nlevels == 1,
        "attrs": value.attrs,
    }
    try:
        encoded = json.dumps(meta).encode()
    except (TypeError, ValueError) as exc:
        raise CannotMarshal(f"attrs are not JSON: {exc}") from exc
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), _META_KEY: encoded})
    problem = _lossy(frame, table, meta)
    if problem:  # the next marshaller (a pickle) keeps it as it is
        raise CannotMarshal(f"a Parquet copy would change {problem}")
    return table


def _lossy(frame: Any, table: Any, meta: dict) -> str | None:
    """What a Parquet copy of `frame` would not give back as it was, or None. A cached step's
    readers get the copy where a fresh run hands on the frame itself, so they must see the same
    frame: its dtypes (a datetime64[s] comes back as [ms]), column and index types, names and
    freq, its flags, the Python objects in object columns (NaN would come back as None, an
    np.int64 as an int, 1 beside 2.5 as 1.0), a MultiIndex's levels and its attrs (through JSON a
    tuple comes back a list). Found on a one-row slice written and read as the store does, plus a
    look at object columns' values, the levels and the attrs."""
    import io

    import pandas as pd
    import pyarrow.parquet as pq

    if not _same_json(meta["attrs"], json.loads(table.schema.metadata[_META_KEY])["attrs"]):
        return "the attrs"
    for i in meta["object_columns"]:
        if not _plain_objects(frame.iloc[:, i]):
            return f"the Python objects in column {str(frame.columns[i])[:80]!r}"
    if meta["object_index"] and not _plain_objects(frame.index):
        return "the Python objects in the index"
    buffer = io.BytesIO()
    try:
        pq.write_table(table.slice(0, 1), buffer)  # one row: a categorical's dictionary goes with it
        buffer.seek(0)
        back = _from_arrow(pq.read_table(buffer), meta)
    except Exception as exc:  # noqa: BLE001 - pyarrow cannot read back categorical column labels, lists of
        return f"everything: it does not read back ({type(exc).__name__}: {exc})"  # arrow dtypes...
    back = back.to_frame(_SERIES_COLUMN) if isinstance(back, pd.Series) else back
    for what, before, after in (("the column dtypes", _dtypes(frame), _dtypes(back)),
                                ("the column labels", (*_axis(frame.columns), list(frame.columns)),
                                 (*_axis(back.columns), list(back.columns))),
                                ("the index", _axis(frame.index), _axis(back.index)),
                                ("the frame's flags", frame.flags.allows_duplicate_labels,
                                 back.flags.allows_duplicate_labels)):
        if before != after:
            return what
    for what, labels, again in (("the index", frame.index, back.index),
                                ("the column labels", frame.columns, back.columns)):
        if labels.nlevels > 1 and not _same_levels(labels, again):
            return f"the levels of {what}"
    return None


def _same_levels(index: Any, again: Any) -> bool:
    """Whether a MultiIndex comes back with its levels. Parquet keeps each row's values, from which
    pandas makes the levels again (`from_arrays`): sorted, only the values in use, of the dtype the
    values come back as (which `again`, the one-row slice's, shows), without a freq, an object
    level's values as plain Python objects. The levels are small; their codes one small int a row."""
    return all(level.dtype == level_again.dtype and _level_made_again(level, codes)
               for level, codes, level_again in zip(index.levels, index.codes, again.levels))


def _level_made_again(level: Any, codes: Any) -> bool:
    import numpy as np
    import pandas as pd

    if isinstance(level.dtype, pd.CategoricalDtype):  # made from the categories, used or not
        return level.equals(pd.CategoricalIndex(level.categories, dtype=level.dtype))
    if getattr(level, "freq", None) is not None:  # a date_range's: Parquet keeps no freq
        return False
    if not level.is_monotonic_increasing or (level.dtype == object and not _plain_objects(level)):
        return False
    used = np.zeros(len(level) + 1, dtype=bool)
    used[codes] = True  # a missing value's code, -1, marks the extra last one
    return bool(used[:-1].all())  # not so when no row uses a value any more (`df[df.x < 2]`)


def _same_json(value: Any, again: Any) -> bool:
    """Whether `again`, `value` after a JSON round trip, is `value`: the same types all the way
    down (a tuple comes back a list, a key 2024 as "2024", an np.float64 as a float)."""
    if type(value) is not type(again):
        return False
    if isinstance(value, dict):
        return (len(value) == len(again)
                and all(type(k) is type(j) and k == j for k, j in zip(value, again))
                and all(_same_json(value[k], again[k]) for k in value))
    if isinstance(value, list):
        return len(value) == len(again) and all(map(_same_json, value, again))
    return value == again or (value != value and again != again)  # NaN is NaN


_EXACT_OBJECTS = {"string": str, "bytes": bytes, "integer": int, "floating": float, "boolean": bool, "empty": None}


def _plain_objects(values: Any) -> bool:
    """Objects of one plain Python type (str, bytes, int, float or bool; not numpy's scalars) and
    None for missing values: what Parquet gives back as the same Python objects."""
    import pandas as pd

    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind not in _EXACT_OBJECTS:
        return False
    present = pd.notna(values)
    exact = _EXACT_OBJECTS[kind]
    return (all(type(value) is exact for value in values[present])
            and all(value is None for value in values[~present]))


def _axis(index: Any) -> tuple:
    """An index's type, dtype (its time zone's type too), level names and freq."""
    return (type(index).__name__, str(index.dtype), _tz_type(index.dtype), list(index.names),
            getattr(index, "freq", None))


def _dtypes(frame: Any) -> list:
    """The columns' dtypes, with their time zones' types: `datetime.timezone.utc` and
    `ZoneInfo("UTC")` make equal dtypes, but a step may test `tz is timezone.utc`."""
    return [(dtype, _tz_type(dtype)) for dtype in frame.dtypes]


def _tz_type(dtype: Any) -> str | None:
    tz = getattr(dtype, "tz", None)
    return None if tz is None else f"{type(tz).__module__}.{type(tz).__qualname__}"


def _reject_nested(table: Any, object_columns: list[int]) -> None:
    import pyarrow as pa

    # Lists and dicts in object columns come back as arrays and padded structs: not the same data.
    for i in object_columns:
        if pa.types.is_nested(table.schema.field(i).type):
            raise CannotMarshal(f"object column {table.schema.field(i).name!r} holds containers")


def _from_arrow(table: Any, meta: dict) -> Any:
    import pandas as pd

    frame = table.to_pandas()
    # to_pandas turns object columns into str or float dtypes (ints with a null); rebuild them
    # as the Python objects they held. Parquet has one null, so a missing value is None.
    for i in meta.get("object_columns", []):
        values = table.column(i).to_pylist()
        frame.isetitem(i, pd.Series(values, index=frame.index, dtype=object))
    if meta.get("object_index"):
        frame.index = frame.index.astype(object)
    frame.attrs = meta.get("attrs", {})
    if meta.get("kind") != "series":
        return frame
    series = frame[_SERIES_COLUMN]
    series.name = meta["name"]
    series.attrs = frame.attrs
    return series


class SklearnMarshaller(Marshaller):
    name = "joblib"
    suffix = ".joblib"
    spool_bytes = 64 * 2**20

    def can_handle(self, value: Any) -> bool:
        base = loaded_module("sklearn.base")
        return base is not None and isinstance(value, base.BaseEstimator)

    def dump(self, value: Any, fileobj: IO[bytes]) -> None:
        import joblib

        # joblib fails mid-stream on e.g. lambdas; stage it so a failure leaves fileobj untouched.
        with tempfile.SpooledTemporaryFile(max_size=self.spool_bytes) as staged:
            try:
                joblib.dump(value, staged)
            except OSError:
                raise
            except Exception as exc:
                raise CannotMarshal(str(exc)) from exc
            staged.seek(0)
            shutil.copyfileobj(staged, fileobj)

    def load(self, fileobj: IO[bytes]) -> Any:
        import joblib

        return joblib.load(fileobj)


class CloudpickleMarshaller(Marshaller):
    name = "cloudpickle"
    suffix = ".pkl"

    def can_handle(self, value: Any) -> bool:
        return True

    def dump(self, value: Any, fileobj: IO[bytes]) -> None:
        cloudpickle.dump(value, fileobj, protocol=pickle.HIGHEST_PROTOCOL)

    def load(self, fileobj: IO[bytes]) -> Any:
        return pickle.load(fileobj)


BUILTINS: tuple[Marshaller, ...] = (
    NumpyMarshaller(),
    PandasMarshaller(),
    SklearnMarshaller(),
    CloudpickleMarshaller(),
)

registry = Registry("marshaller", ENTRY_POINT_GROUP, lambda: {m.name: m for m in BUILTINS})
_ordered: list[Marshaller] | None = None  # plug-ins, then built-ins: the order values are offered


def _load_plugins() -> list[Marshaller]:
    plugins = []
    for name in registry.entry_point_names():
        try:
            obj = registry.get(name)
        except PluginError as exc:
            # One broken plug-in must not stop every pipeline from running.
            warnings.warn(f"nbscale: {exc}", stacklevel=3)
            continue
        plugins.append(obj() if isinstance(obj, type) else obj)
    return plugins


def marshallers() -> list[Marshaller]:
    """Every marshaller in the order they are tried: plug-ins first, then the built-ins."""
    global _ordered
    if _ordered is None:
        _ordered = _load_plugins() + list(BUILTINS)
    return list(_ordered)


def reload_marshallers() -> list[Marshaller]:
    """Forget the loaded plug-ins and scan the entry points again."""
    global _ordered, registry
    registry = Registry("marshaller", ENTRY_POINT_GROUP, lambda: {m.name: m for m in BUILTINS})
    _ordered = None
    return marshallers()


def get_marshaller(name: str) -> Marshaller:
    for marshaller in BUILTINS if _ordered is None else ():  # a built-in's name needs no plug-in scan
        if marshaller.name == name:
            return marshaller
    for marshaller in marshallers():
        if marshaller.name == name:
            return marshaller
    known = ", ".join(m.name for m in marshallers())
    raise PluginError(f"no marshaller named {name!r} is installed (is the plug-in that wrote it missing?); "
                      f"installed: {known}")


def type_name(value: Any) -> str:
    cls = type(value)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def dump_value(value: Any, fileobj: IO[bytes], *, variable: str, step: str | None) -> str:
    """Serialise one value with the first marshaller that takes it; return that marshaller's name."""
    reasons = []
    for marshaller in marshallers():
        if not marshaller.can_handle(value):
            continue
        try:
            marshaller.dump(value, fileobj)
            return marshaller.name
        except CannotMarshal as exc:
            reasons.append(f"{marshaller.name}: {exc}")
        except OSError:
            raise  # a storage failure, not a property of the value
        except Exception as exc:
            raise MarshalError(variable, type_name(value), step, _reason(exc)) from exc
    raise MarshalError(variable, type_name(value), step, "; ".join(reasons) or "no marshaller")


def load_value(fileobj: IO[bytes], marshaller_name: str) -> Any:
    return get_marshaller(marshaller_name).load(fileobj)


def dump_group(values: dict[str, Any], fileobj: IO[bytes], *, step: str | None) -> str:
    """Serialise several names in one pickle pass, so objects they share stay shared."""
    try:
        array_views.dump(dict(values), fileobj, protocol=pickle.HIGHEST_PROTOCOL)  # numpy views stay views
    except OSError:
        raise
    except Exception as exc:
        variable, value = _culprit(values)
        raise MarshalError(variable, type_name(value), step, _reason(exc)) from exc
    return CloudpickleMarshaller.name


def load_group(fileobj: IO[bytes]) -> dict[str, Any]:
    return pickle.load(fileobj)


def _culprit(values: dict[str, Any]) -> tuple[str, Any]:
    # The group failed as a whole; name the first member that fails on its own.
    for name, value in values.items():
        try:
            cloudpickle.dumps(value)
        except Exception:
            return name, value
    return ", ".join(values), values


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
