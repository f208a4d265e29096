"""What a pickle cannot carry of a notebook's own code, made so that it can.

A function a step decorates with `functools.lru_cache` (or `cache`) pickles by its name, which the
step's namespace does not hold for the process that loads it ("attribute lookup fib on __main__
failed"); a class of a step's with a `functools.cached_property` holds a lock on Python 3.11. Both
are registered with `copyreg` as nbscale's run time is imported, so that the store's cloudpickle,
Dask's hand-offs and `copy.deepcopy` use them. A function found by its name is pickled by name, as
before; the other is pickled as its undecorated function (its cache starts empty, as a fresh
process's would).
"""

from __future__ import annotations

import copyreg
import functools
import sys


def install() -> None:
    copyreg.pickle(functools._lru_cache_wrapper, _reduce_lru_cache)
    if sys.version_info < (3, 12):  # (3.12 dropped the lock: it pickles as it is)
        copyreg.pickle(functools.cached_property, _reduce_cached_property)


def _reduce_lru_cache(wrapper):
    if _found_by_name(wrapper):
        return wrapper.__qualname__  # (a string: pickle saves it by name, deepcopy keeps it)
    parameters = wrapper.cache_parameters()
    return _lru_cached, (wrapper.__wrapped__, parameters["maxsize"], parameters["typed"])


def _lru_cached(function, maxsize, typed):
    return functools.lru_cache(maxsize=maxsize, typed=typed)(function)


def _found_by_name(obj) -> bool:
    found = sys.modules.get(getattr(obj, "__module__", None) or "")
    for part in (getattr(obj, "__qualname__", None) or "<none>").split("."):
        found = getattr(found, part, None)
    return found is obj


def _reduce_cached_property(prop):
    return _cached_property, (prop.func, prop.attrname)


def _cached_property(function, name):
    prop = functools.cached_property(function)
    prop.attrname = name  # (`__set_name__` is not called when a pickled class is made again)
    return prop


install()
