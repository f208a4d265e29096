"""Handing large values on at memory speed: no copy of an array a step only reads, digests taken
in memory, and the artifact store written off the critical path.

A 1 GB array cost three passes before the next step could use it: the store write (serialise,
hash, write), then a deep copy for the reader (a fresh gigabyte of page faults). Now:

- An array the reader does not change (by the dataflow analysis) is handed on as a read-only view.
  If the analysis missed a write (a library that writes in place), numpy raises on it; the step
  then runs again on copies, with a warning (`wrote_into_read_only`).
- A step whose numeric arrays and frames reach `ASYNC_MIN_BYTES` hands its values on at once: the
  cache key of each reader chains on digests taken from the values in memory (xxh3 over the
  buffers, at memory speed), and the store is written by a background thread (`start_write`),
  atomically and verified as every write. The manifest keeps those digests, so a cached run
  chains on the same keys. The engine waits for the writes before it ends the run
  (`wait_for_writes`); a write that fails costs only the cache entry, with a warning.
- A Dask collection (a lazy DataFrame or Array) is handed on as it is, a graph, and never written
  to the store: building it is cheap, computing it is the work. Its digest is new in every run,
  because its inputs are read only when it is computed (maybe on other workers), where no
  fingerprint of the reading step sees them: a step that reads one runs every time, and caches
  what it computes.
"""

from __future__ import annotations

import asyncio
import functools
import os
import pickle
import threading
import types
import uuid
from concurrent.futures import Future, ThreadPoolExecutor

import cloudpickle

from . import array_views
from .digest import CHUNK, DIGEST, new_hash
from .errors import MarshalError
from .marshal import loaded_module, type_name

ASYNC_MIN_BYTES = 32 * 2**20  # below this a write costs little next to scheduling the next step
VALUE_DIGEST = f"value-{DIGEST}"  # a digest of a value in memory, never of a file
READ_ONLY_ERRORS = ("read-only", "readonly", "not writeable", "not writable")


def _new_write_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="nbscale-store-write")


_pool = _new_write_pool()
_pending: dict[str, dict[str, Future]] = {}  # run id → step → its store write
_lock = threading.Lock()


def _fresh_after_fork() -> None:
    """A forked process (a Dask worker) gets a pool of its own: the copied one counts the parent's
    threads, which did not come along, and would never run a write. The parent's writes are not its."""
    global _pool, _pending, _lock
    _pool, _pending, _lock = _new_write_pool(), {}, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fresh_after_fork)


# --- what a reader gets -----------------------------------------------------------------------------


def step_inputs(grouped: dict[str, dict], changed: set[str], views: bool = True) -> tuple[dict, list[str]]:
    """The values a step works on, from its inputs grouped by producer: its own copies, except
    numpy arrays it does not change (read-only views) and pandas objects (copy-on-write).

    One copy per producer keeps objects shared between its values shared: two names of one array
    get one view, and a list holding a frame holds the frame the step gets (`frames[0] is df`), as
    top to bottom. Returns the values and the names handed on as read-only views.
    """
    values, viewed = {}, []
    kept: dict[int, object] = {}  # id of a value not copied → what the step gets for it
    for producer, names in grouped.items():
        rest = {}
        changing = {id(value) for name, value in names.items() if name in changed}
        for name, value in names.items():
            made = kept.get(id(value))
            if made is None:
                made = _not_copied(value, views and name not in changed and id(value) not in changing)
            if made is None:
                rest[name] = value
                continue
            kept[id(value)] = values[name] = made
            if _plain_array(made):  # (a numpy array made here is a read-only view)
                viewed.append(name)
        values.update(_copied(rest, producer, kept))
    return values, viewed


def _not_copied(value, only_read: bool):
    """What a step gets for `value` without a copy, or None: a Dask collection itself (a lazy graph:
    computing it never changes it), and for a value it only reads, a pandas object's shallow copy
    (copy-on-write) or a numpy array's read-only view."""
    if is_dask_collection(value):
        return value
    if only_read and _copy_on_write(value):
        return value.copy(deep=False)
    if only_read and _plain_array(value):
        return array_views.read_only_view(value)
    return None


def _deepcopy_would_share(values: dict) -> bool:
    """Whether deepcopy would get this group wrong where a pickle does not. It keeps functions and
    builtin methods as they are: a closure (`add = make(log)`) or a bound method (`app = log.append`)
    in the group would change the producer's object, not the step's copy of it, when called. And
    pandas' deepcopy shares the Python objects of an object column (a list in a cell) with the
    original, so a step's change to one reached its producer's value; and it gives a frame's copy a
    new index and columns, so a name bound to them (`idx = df.index`) no longer was."""
    if _holds_bound_callable(values):
        return True
    pandas = loaded_module("pandas")  # (not while a thread imports it: a worker's background import)
    if pandas is None:
        return False
    frames = [v for v in values.values() if isinstance(v, (pandas.DataFrame, pandas.Series))]
    if not frames:
        return False
    parts = {id(part) for frame in frames for part in (frame.index, getattr(frame, "columns", None))}
    dtypes = [dtype for frame in frames for dtype in (frame.dtypes if frame.ndim == 2 else [frame.dtype])]
    return any(id(v) in parts for v in values.values()) or any(dtype.kind == "O" for dtype in dtypes)


def _holds_bound_callable(values: dict) -> bool:
    """A function with closure cells or a default that is not a plain constant (`def add(x,
    into=log)`), a builtin method bound to an object, or a `partial` over one, among the values or in
    their dicts, lists and tuples (`array_views.walked`: bounded)."""
    for value in array_views.walked(values):
        kind = type(value)
        if kind is functools.partial:
            value, kind = value.func, type(value.func)
        if kind is types.FunctionType and (value.__closure__ or _holding_defaults(value)) \
                or kind is types.BuiltinMethodType and not isinstance(value.__self__, (types.ModuleType, type(None))):
            return True
    return False


_CONSTANTS = (int, float, complex, str, bytes, bool, type(None))


def _holding_defaults(function) -> bool:
    defaults = [*(function.__defaults__ or ()), *(function.__kwdefaults__ or {}).values()]
    return any(type(default) not in _CONSTANTS for default in defaults)


def _copied(values: dict, producer: str, kept: dict | None = None) -> dict:
    """A copy of one producer's values (objects they share stay shared; those of `kept` are what
    stands for them there); MarshalError naming the value that cannot be copied, e.g. an exception
    whose `__init__` takes other arguments than it hands to `Exception.__init__`: it pickles, and
    fails to be made again."""
    if not values:
        return {}
    if not _deepcopy_would_share(values):
        try:
            return array_views.copied(values, kept)  # (numpy views of the group's arrays: views of their copies)
        except Exception:  # noqa: BLE001 - some objects refuse deepcopy but pickle fine
            pass
    try:
        return array_views.pickled_copy(values, kept)
    except Exception as exc:  # noqa: BLE001 - said with the value's name, not as nbscale's own failure
        name = next((n for n, v in values.items() if not _round_trips(v)), next(iter(values)))
        raise MarshalError(name, type_name(values[name]), producer, f"{type(exc).__name__}: {exc} (an object that "
                           "pickles but cannot be made again from its pickle; give its class a __reduce__, or hand "
                           "on plain data)", doing="handed on") from None


def _round_trips(value) -> bool:
    try:
        cloudpickle.loads(cloudpickle.dumps(value))
    except Exception:  # noqa: BLE001
        return False
    return True


def wrote_into_read_only(error) -> bool:
    """Whether a step's error is numpy refusing a write into a read-only array."""
    if error is None or error.ename not in ("ValueError", "TypeError", "BufferError"):
        return False
    return any(text in error.evalue for text in READ_ONLY_ERRORS)


def read_only_message(viewed: list[str]) -> str:
    return (f"the step wrote into an array it received ({', '.join(viewed)}), which the analysis saw only "
            "read (a function it cannot see into changed it) and nbscale handed on without a copy; the step "
            "ran again on copies, and later steps read the array as it was before this step: the change does "
            "not reach them. Assign the name in the step (e.g. `x = x.copy()` before the call, or `x = x` after "
            "it) to say that it changes it")


def _plain_array(value) -> bool:
    numpy = loaded_module("numpy")
    return numpy is not None and type(value) is numpy.ndarray and not value.dtype.hasobject


def _copy_on_write(value) -> bool:
    pandas = loaded_module("pandas")
    if pandas is None or not isinstance(value, (pandas.DataFrame, pandas.Series)):
        return False
    return int(pandas.__version__.split(".")[0]) >= 3 or pandas.options.mode.copy_on_write is True


def is_dask_collection(value) -> bool:
    base = loaded_module("dask.base")
    return base is not None and not isinstance(value, type) and base.is_dask_collection(value)


def collection_digests(outputs: dict) -> dict[str, str]:
    """A digest new in every run for each Dask collection among `outputs` (see the module's note)."""
    return {name: f"dask-collection:{uuid.uuid4().hex}" for name, value in outputs.items() if is_dask_collection(value)}


# --- digests of values in memory -------------------------------------------------------------------


def memory_digests(outputs: dict) -> dict[str, str] | None:
    """Each output's digest taken in memory, when the step hands on enough numeric data for a
    background write to pay; None when it does not (the store is then written before the step
    ends, as for any value) or when a value does not pickle (the write reports it)."""
    sizes = [_numeric_bytes(v) for v in outputs.values()]
    if sum(s for s in sizes if s) < ASYNC_MIN_BYTES:
        return None
    return value_digests(outputs, sizes)


def value_digests(outputs: dict, sizes: list | None = None) -> dict[str, str] | None:
    """Each output's digest taken in memory (as the store would record it); None when a value
    does not pickle (the write reports it)."""
    sizes = sizes if sizes is not None else [_numeric_bytes(v) for v in outputs.values()]
    digests = {}
    for (name, value), size in zip(outputs.items(), sizes):
        try:
            digests[name] = (_numeric_digest(value) if size is not None
                             else _digest_of(cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)))
        except Exception:  # noqa: BLE001 - the synchronous write gives the clear error
            return None
    return digests


def _numeric_bytes(value) -> int | None:
    """The bytes of a value digested from its buffers, or None for any other value."""
    if _plain_array(value):
        return value.nbytes
    frame = _numeric_frame(value)
    return None if frame is None else int(sum(column.nbytes for column in _columns(frame)))


def _numeric_frame(value):
    """A pandas frame or series whose columns and index are plain numpy arrays, as a frame."""
    pandas = loaded_module("pandas")
    if pandas is None or not isinstance(value, (pandas.DataFrame, pandas.Series)):
        return None
    frame = value.to_frame() if isinstance(value, pandas.Series) else value
    index = frame.index
    if not (isinstance(index, pandas.RangeIndex) or (type(index) is pandas.Index and _numpy_dtype(index.dtype))):
        return None
    if not all(_numpy_dtype(dtype) or isinstance(dtype, pandas.CategoricalDtype) for dtype in frame.dtypes):
        return None
    return frame


def _numpy_dtype(dtype) -> bool:
    numpy = loaded_module("numpy")
    return isinstance(dtype, numpy.dtype) and not dtype.hasobject


def _columns(frame):
    """Each column's buffer: its values, or a categorical's codes (its categories: `_categories`)."""
    pandas = loaded_module("pandas")
    columns = (frame.iloc[:, i] for i in range(frame.shape[1]))
    return [column.cat.codes.to_numpy(copy=False) if isinstance(column.dtype, pandas.CategoricalDtype)
            else column.to_numpy(copy=False) for column in columns]


def _categories(frame) -> list:
    """What the codes of categorical columns stand for (labels, order): part of the value."""
    pandas = loaded_module("pandas")
    return [(i, list(dtype.categories), str(dtype.categories.dtype), bool(dtype.ordered))
            for i, dtype in enumerate(frame.dtypes) if isinstance(dtype, pandas.CategoricalDtype)]


def _numeric_digest(value) -> str:
    numpy = loaded_module("numpy")
    digest = new_hash()
    if _plain_array(value):
        # the dtype itself: its `str` is "|V16" for every 16-byte record, whatever its fields' names and types
        digest.update(pickle.dumps(("ndarray", value.dtype, value.shape)))
        _update(digest, value, numpy)
        return f"{VALUE_DIGEST}:{digest.hexdigest()}"
    frame = _numeric_frame(value)
    index = frame.index
    series = value is not frame
    digest.update(pickle.dumps(("series" if series else "frame", list(frame.columns), [str(d) for d in frame.dtypes],
                                value.name if series else None, dict(value.attrs), type(index).__name__,
                                (index.start, index.stop, index.step) if hasattr(index, "start") else str(index.dtype),
                                index.name, len(index), _categories(frame), _labels(frame.columns),
                                value.flags.allows_duplicate_labels)))
    if not hasattr(index, "start"):
        _update(digest, index.to_numpy(copy=False), numpy)
    for column in _columns(frame):
        _update(digest, column, numpy)
    return f"{VALUE_DIGEST}:{digest.hexdigest()}"


def _labels(columns) -> tuple:
    """What a frame's column labels are besides their values: their index's type, dtype and level names."""
    return type(columns).__name__, str(columns.dtype), list(columns.names)


def _update(digest, array, numpy):
    """Hash the array's items in C order, copying at most CHUNK bytes at a time (a strided view)."""
    if array.flags.c_contiguous:
        parts = [array]
    elif array.flags.f_contiguous:  # the transpose is C-contiguous: the layout goes into the header
        digest.update(b"F")
        parts = [array.T]
    else:
        rows = max(1, CHUNK // max(1, array[:1].nbytes))
        parts = (numpy.ascontiguousarray(array[i:i + rows]) for i in range(0, len(array), rows))
    for part in parts:
        flat = part.reshape(-1)
        digest.update(flat.view(numpy.uint8) if flat.size else b"")


def _digest_of(data: bytes) -> str:
    digest = new_hash()
    digest.update(data)
    return f"{VALUE_DIGEST}:{digest.hexdigest()}"


# --- writes off the critical path -------------------------------------------------------------------


def start_write(run_id: str, step: str, write) -> None:
    """Run `write()` (a store write) in the background; `wait_for_writes(run_id)` waits for it."""
    future = _pool.submit(write)
    with _lock:
        _pending.setdefault(run_id, {})[step] = future


def wait_for_writes(run_id: str) -> dict[str, str]:
    """Wait for the run's background writes in this process; step → why its write failed."""
    with _lock:
        futures = _pending.pop(run_id, {})
    return {step: error for step, future in futures.items() if (error := _error_of(future))}


async def await_writes(run_id: str, dask_worker=None) -> dict[str, str]:
    """`wait_for_writes` on a Dask worker's event loop (through `client.run`): no worker thread held."""
    with _lock:
        futures = _pending.pop(run_id, {})
    if futures:
        # gathered, not waited: a failed write's error is taken from its asyncio wrapper too (left
        # there, asyncio logs "Future exception was never retrieved" and its traceback)
        await asyncio.gather(*(asyncio.wrap_future(f) for f in futures.values()), return_exceptions=True)
    return {step: error for step, future in futures.items() if (error := _error_of(future))}


def forget_writes(run_id: str, dask_worker=None) -> None:
    """Forget a cancelled run's writes (they still end: atomic, and then free their values)."""
    with _lock:
        _pending.pop(run_id, None)


def _error_of(future: Future) -> str | None:
    try:
        future.result()
    except BaseException as exc:  # noqa: BLE001 - reported as a warning: only the cache entry is lost
        return f"{type(exc).__name__}: {exc}"
    return None


def write_failed_message(error: str) -> str:
    return (f"the step's values could not be stored for the cache ({error}); this run used them from memory, "
            "and the step runs again next time")
