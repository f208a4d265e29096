"""numpy views among values handed on together, kept views of the same array.

`v = a[1:]` in one step and `v[:] = 0` in the next change `a` top to bottom. A step that may change
either name gets both, copied as one group (`handoff`), stored as one pickle (`marshal`) or sent as
one outcome (Dask): but a copy or a pickle of each array holds its own memory, and the change to
`v` did not reach `a`. `views_as_references` writes each top-level array that is a view into
another value of the group as where it lies in that array (`ViewOf`); `views_restored`, after the
copy, makes it a view of the copy again. Only views into a C-contiguous array that owns its memory
are kept (what slicing, `ravel`, `reshape` and `T` of a fresh array give); any other array is
copied as before. numpy is not imported here: a group without arrays costs a type check per value.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class ViewOf:
    """Where a view lies in the array named `base`: byte offset, shape, strides, dtype."""

    base: str
    offset: int
    shape: tuple
    strides: tuple
    dtype: object
    writeable: bool


def views_as_references(values: dict) -> dict:
    """`values`, each array that is a view into another value of it replaced by its `ViewOf`."""
    numpy = sys.modules.get("numpy")
    if numpy is None or len(values) < 2:
        return values
    owners = {id(v): name for name, v in values.items() if _owns_c_memory(numpy, v)}
    if not owners:
        return values
    out = dict(values)
    for name, value in values.items():
        base = _owner(numpy, value)
        if base is not None and base is not value and id(base) in owners and not value.dtype.hasobject:
            out[name] = ViewOf(owners[id(base)], _address(value) - _address(base), value.shape, value.strides,
                               value.dtype, value.flags.writeable)
    return out


def views_restored(values: dict) -> dict:
    """`values` with each `ViewOf` made a view of its (copied) base again."""
    if not any(type(v) is ViewOf for v in values.values()):
        return values
    import numpy

    out = dict(values)
    for name, value in values.items():
        if type(value) is ViewOf:
            view = numpy.ndarray(value.shape, value.dtype, buffer=values[value.base], offset=value.offset,
                                 strides=value.strides)
            view.flags.writeable = value.writeable and values[value.base].flags.writeable
            out[name] = view
    return out


def _owns_c_memory(numpy, value) -> bool:
    return type(value) is numpy.ndarray and value.base is None and value.flags.c_contiguous \
        and not value.dtype.hasobject and value.size > 0


def _owner(numpy, value):
    """The array whose memory `value` (a plain array) lies in: itself, or the end of its `base` chain."""
    if type(value) is not numpy.ndarray:
        return None
    while type(value.base) is numpy.ndarray:
        value = value.base
    return value


def _address(array) -> int:
    return array.__array_interface__["data"][0]
