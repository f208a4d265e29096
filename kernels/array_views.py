"""numpy views among values handed on together, kept views of the same array.

`v = a[1:]` or `d = {'head': a[:2]}` in one step and `v[:] = 0` or `d['head'][:] = 3` in the next
change `a` top to bottom. A step that may change either name gets both, copied as one group
(`handoff`), stored as one pickle (`marshal`) or sent as one outcome (Dask): but a copy or a pickle of
each array holds its own memory, and the change through the view did not reach `a`. Here an array
that is a view into an *owner* of the group is copied or pickled as where it lies in that owner, and
made again as a view of the owner's copy:

- an owner is a plain C-contiguous array that owns its memory (what `np.zeros`, `np.arange`, `copy`
  give; slicing, `ravel`, `reshape`, `T`, `np.split`, `list(X)` of one give its views), a value of the
  group or one found in its containers (below). A view of an array that is not in the group is
  copied as before, its own items only: the 10-item head of a gigabyte array stays 10 items (so two
  such views that overlap are two copies, as before). Arrays of objects, subclasses, and arrays over
  memory numpy does not own (`frombuffer`, `memmap`) are never owners: their views are copied as before.
- which owners a group holds is found by a walk through its dicts, lists and tuples (and their
  subclasses; not through other objects' attributes), breadth first and bounded: it looks at no
  more than `WALK_LIMIT` values in all, however long a list or deep a nesting, so a list of a
  million floats costs 10,000 type checks, not a million. Only a group with an array among its
  values is walked: one whose arrays all lie in containers (`d = {'a': a, 'h': a[:2]}` alone) is
  copied as before, so that a group without arrays costs one type check per value.
- a copy (`copied`: deepcopy) keeps the views that walk found: it copies their owners first and
  seeds deepcopy's memo with views of the copies. A view further than the walk looked, or inside
  another object (an attribute), is copied on its own, as before.
- a pickle (`dump`, `sendable`) keeps every view of an owner wherever it lies, also inside other
  objects: the pickler reduces it to `_view_of(owner, where)`, and the owner, memoised, is pickled
  once however many views share it. An outcome sent by Dask pickles its values in one such pickle
  whose array buffers are handed out of band to Dask's own pickler: no array is pickled twice or
  copied once more than before.

numpy is not imported here: a group without it loaded costs one dictionary lookup, and a group
without owners is copied and pickled as any value (`cloudpickle`, `copy.deepcopy`).
"""

from __future__ import annotations

import copy
import io
import pickle
import sys
import weakref
from collections import deque
from itertools import islice

import cloudpickle

WALK_LIMIT = 10_000  # values the walk for owners and views looks at, in all
_CONTAINERS = (dict, list, tuple)


class _Found:
    """The owners of a group (id → array) and the views of them its walk found (id → (view, owner))."""

    __slots__ = ("owners", "views")

    def __init__(self, owners: dict, views: dict):
        self.owners, self.views = owners, views


def _found(values: dict) -> _Found | None:
    """The group's owners and their views within `WALK_LIMIT` values; None when it has no owner."""
    from .marshal import loaded_module  # (marshal imports this module)

    numpy = loaded_module("numpy")  # (not while a thread imports it: a worker's background import)
    if numpy is None:
        return None
    ndarray = numpy.ndarray
    if not any(type(value) is ndarray for value in values.values()):
        return None  # a group with no array of its own: not walked
    owners, arrays = {}, []
    for value in walked(values):
        if type(value) is ndarray:
            if _owns_c_memory(value):
                owners[id(value)] = value
            elif value.base is not None:
                arrays.append(value)
                owner = _owner(ndarray, value)
                # all of an array's memory, as an array a pickle gave back is of the buffer it read
                if owner is not value and _whole(value, owner) and _plain_c_memory(owner):
                    owners[id(owner)] = owner
    if not owners:
        return None
    views = {}
    for array in arrays:
        owner = _owner(ndarray, array)
        if id(owner) in owners and not array.dtype.hasobject:
            views[id(array)] = (array, owner)
    return _Found(owners, views)


def owners(values: dict) -> set[int]:
    """The ids of the arrays whose memory the plain arrays among `values` (and in their containers,
    as far as `walked` looks) lie in: two groups with one in common hold views of one array."""
    from .marshal import loaded_module  # (marshal imports this module)

    numpy = loaded_module("numpy")
    if numpy is None:
        return set()
    ndarray = numpy.ndarray
    return {id(_owner(ndarray, value)) for value in walked(values) if type(value) is ndarray}


def walked(values: dict):
    """The values and what their dicts, lists and tuples hold, breadth first, `WALK_LIMIT` in all."""
    queue, left, seen = deque(values.values()), WALK_LIMIT, set()
    while queue and left > 0:
        value = queue.popleft()
        left -= 1
        yield value
        if isinstance(value, _CONTAINERS) and id(value) not in seen:
            seen.add(id(value))
            items = dict.values(value) if isinstance(value, dict) else (list.__iter__(value) if isinstance(
                value, list) else tuple.__iter__(value))
            queue.extend(islice(items, left))  # never more than the walk may still look at


# --- a copy -----------------------------------------------------------------------------------------


def copied(values: dict, kept: dict | None = None) -> dict:
    """A deep copy of `values` in which each view the walk found is a view of its owner's copy.
    `kept`: id → what stands for that object in the copy, not copied (`handoff.step_inputs`)."""
    found = _found(values)
    memo: dict = dict(kept or {})
    _copied_flat(values, memo)
    if found is None or not found.views:
        return copy.deepcopy(values, memo)
    for view, owner in found.views.values():
        if id(view) not in memo:
            memo[id(view)] = _view_of(copy.deepcopy(owner, memo), *_where(view, owner))  # the owner's copy: memoised
    return copy.deepcopy(values, memo)


_ATOMS = frozenset({int, float, complex, str, bytes, bool, type(None)})  # deepcopy gives each itself
FLAT_MIN = 1000  # items from which a list, dict or set of atoms is copied whole


def _copied_flat(values: dict, memo: dict) -> None:
    """The lists, dicts, sets and tuples of atoms (numbers, strings, None) the walk finds, and its
    lists of records (dicts of atoms), copied into deepcopy's `memo`: the copy deepcopy makes (new
    containers of the same atoms; a tuple of atoms itself; one copy of a record listed twice),
    without its look at each item in Python (0.9 s for a list of five million numbers, 0.04 s so;
    3.1 s for 1.5 million records, 1.7 s so)."""
    for value in walked(values):
        kind = type(value)
        if kind not in (list, dict, set, tuple) or len(value) < FLAT_MIN or id(value) in memo:
            continue
        if _atoms_only(value):
            memo[id(value)] = kind(value)
        elif kind is list:
            _copied_records(value, memo)


def _atoms_only(container) -> bool:
    parts = (container.keys(), container.values()) if type(container) is dict else (container,)
    return all(set(map(type, part)) <= _ATOMS for part in parts)


def _copied_records(rows: list, memo: dict) -> None:
    """`rows` copied into `memo` when it is a list of dicts of atoms (JSON records), its dicts too;
    nothing when one of them holds anything else (deepcopy then copies it all, as before)."""
    if set(map(type, rows)) != {dict}:
        return
    copies: dict[int, dict] = {}
    copied = []
    for row in rows:
        copy_ = copies.get(id(row))
        if copy_ is None:
            if not (set(map(type, row.values())) <= _ATOMS and set(map(type, row)) <= _ATOMS):  # (`_atoms_only`,
                return  # inline: a call per record costs a third of the copy)
            copy_ = copies[id(row)] = row.copy()
        copied.append(copy_)
    memo.update(copies)  # (a record named elsewhere in the group is the same copy there)
    memo[id(rows)] = copied


# --- a pickle ---------------------------------------------------------------------------------------


class _Pickler(cloudpickle.Pickler):
    """cloudpickle, with each array that lies in one of `owners` pickled as a view of it."""

    def __init__(self, file, owners: dict, **kwargs):
        super().__init__(file, **kwargs)
        self._owners = owners
        self._ndarray = sys.modules["numpy"].ndarray if "numpy" in sys.modules else None

    def reducer_override(self, obj):
        if type(obj) is self._ndarray and obj.base is not None and not obj.dtype.hasobject:
            owner = _owner(self._ndarray, obj)
            if owner is not obj and id(owner) in self._owners:
                return _view_of, (owner, *_where(obj, owner))
        return super().reducer_override(obj)


def dump(values: dict, fileobj, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
    """Pickle `values` into `fileobj` (read back by `pickle.load`), views of the group's owners kept views."""
    found = _found(values)
    if found is None:
        cloudpickle.dump(values, fileobj, protocol=protocol)
    else:
        _Pickler(fileobj, found.owners, protocol=protocol).dump(values)


def dumps(values: dict, protocol: int = pickle.HIGHEST_PROTOCOL) -> bytes:
    with io.BytesIO() as file:
        dump(values, file, protocol)
        return file.getvalue()


class _Keeping(_Pickler):
    """`_Pickler`, each object of `kept` (id → what stands for it) pickled as a reference to that."""

    def __init__(self, file, owners: dict, kept: dict, **kwargs):
        super().__init__(file, owners, **kwargs)
        self._kept = kept

    def persistent_id(self, obj):
        return id(obj) if id(obj) in self._kept else None


def pickled_copy(values: dict, kept: dict | None = None) -> dict:
    """A copy of `values` through a pickle (as `dumps`), the objects of `kept` not copied but
    replaced by what stands for them there."""
    if not kept:
        return cloudpickle.loads(dumps(values))
    found = _found(values)
    with io.BytesIO() as file:
        _Keeping(file, found.owners if found is not None else {}, kept, protocol=pickle.HIGHEST_PROTOCOL).dump(values)
        file.seek(0)
        unpickler = pickle.Unpickler(file)
        unpickler.persistent_load = kept.__getitem__
        return unpickler.load()


class _Sent:
    """Values sent in a pickle of their own (Dask pickles an outcome with its pickler, not `_Pickler`):
    their arrays' buffers are passed out to the outer pickler, out of band when it takes them."""

    __slots__ = ("values", "owners")

    def __init__(self, values: dict, owners: dict):
        self.values, self.owners = values, owners

    def __reduce_ex__(self, protocol):
        buffers = []
        with io.BytesIO() as file:
            _Pickler(file, self.owners, protocol=5, buffer_callback=buffers.append).dump(self.values)
            data = file.getvalue()
        if protocol < 5:  # the outer pickle takes no buffer: each as a byte array, pickled as any array
            numpy = sys.modules["numpy"]
            buffers = [numpy.frombuffer(b.raw(), numpy.uint8) for b in buffers]
        return _received, (data, *buffers)


def sendable(values: dict):
    """What to pickle for `values` sent to another process (`received` undoes it): itself when the group
    has no owner, else a `_Sent`, in whose one pickle the views of its owners stay views."""
    found = _found(values)
    return values if found is None else _Sent(values, found.owners)


def received(values):
    """The values `sendable` wrapped (only when not pickled: a `copy.copy` of an outcome)."""
    return values.values if type(values) is _Sent else values


def _received(data: bytes, *buffers) -> dict:
    return pickle.loads(data, buffers=buffers)


# --- where a view lies ------------------------------------------------------------------------------


def _where(view, owner) -> tuple:
    """Byte offset, shape, strides, dtype and writeability of `view` in `owner`."""
    offset = view.__array_interface__["data"][0] - owner.__array_interface__["data"][0]
    return offset, view.shape, view.strides, view.dtype, _writeable(view, owner)


def read_only_view(array):
    """A read-only view of `array` for a step that only reads it (`handoff`). What such a step hands
    on of that memory (the view itself, `y = x[2:5]` of it) is read-only only for that reason, and
    writeable again in its readers, as top to bottom: the memory is noted (`_writeable`)."""
    view = array.view()
    view.flags.writeable = False
    memory = _owner(type(array), array)
    _READ_ONLY_FOR_A_STEP[id(memory)] = memory
    return view


# the arrays whose memory a step was handed read-only views of: id → array (numpy joins a view's
# base chain, so a view of such a view names the memory, not the view)
_READ_ONLY_FOR_A_STEP: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def _writeable(view, owner) -> bool:
    """Whether `view`, made again, is writeable: as it is, unless it is read-only only because it
    lies in memory a step was handed read-only (a view the notebook made read-only stays so)."""
    if view.flags.writeable:
        return True
    memory = _owner(type(view), view)
    return _READ_ONLY_FOR_A_STEP.get(id(memory)) is memory


def _view_of(owner, offset: int, shape: tuple, strides: tuple, dtype, writeable: bool):
    """The view of `owner` at `offset` (module level: a pickle names it)."""
    view = sys.modules["numpy"].ndarray(shape, dtype, buffer=owner, offset=offset, strides=strides)
    view.flags.writeable = writeable and owner.flags.writeable
    return view


def _owns_c_memory(value) -> bool:
    return value.base is None and _plain_c_memory(value)


def _plain_c_memory(value) -> bool:
    return value.flags.c_contiguous and not value.dtype.hasobject and value.size > 0


def _whole(view, owner) -> bool:
    """`view` is all of `owner`'s memory, in order: copying the owner costs no more than the view."""
    return view.flags.c_contiguous and view.nbytes == owner.nbytes and \
        view.__array_interface__["data"][0] == owner.__array_interface__["data"][0]


def _owner(ndarray, value):
    """The array whose memory `value` (a plain array) lies in: the end of its `base` chain."""
    while type(value.base) is ndarray:
        value = value.base
    return value
