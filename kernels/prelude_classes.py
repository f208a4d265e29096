"""The classes the functions cell defines are one class in every step a process runs.

Top to bottom, the functions cell runs once and `class Clip` is one object: an instance made in one
cell is a `Clip` in the next. nbscale runs the cell again before each step, in a fresh namespace,
so each step has a `Clip` of its own; an instance handed on from an earlier step was of another
one. `isinstance(t, Clip)` was False, a dataclass's `==` and an Enum's `is` compared unequal (the
wrong branch taken, silently), and `pickle.dump(t)` (joblib's of a fitted pipeline holding a
custom transformer) failed: "not the same object as __main__.Clip".

`shared_classes` gives each such class a name of its definition, the functions cell's text and the
class's name, under which cloudpickle tracks it (`_lookup_class_or_track`, the registry it
rebuilds classes pickled by value through): the first class of that definition a process meets,
made by the cell or rebuilt from a value another process pickled, is the one its later steps use.
A value handed on in memory keeps its class, and one pickled elsewhere is rebuilt as that class.

The registry holds classes weakly: one nothing refers to any more (no value of it is left) is
forgotten, and the next step's own is taken. What a step changes on such a class (`Clip.count += 1`)
is seen by the later steps of the same process only, as with any process-wide setting.
"""

from __future__ import annotations

import enum
import hashlib

from cloudpickle import cloudpickle as _cloudpickle

__all__ = ["shared_classes"]


def shared_classes(ns: dict, prelude_source: list[str]) -> list[type]:
    """Put in `ns`, in place of each class the prelude (`prelude_source`, its cells' text) just
    defined there, the class of that definition this process has met first; the classes taken
    so, whose methods must read this step's names (the caller rebinds them)."""
    track = getattr(_cloudpickle, "_lookup_class_or_track", None)
    if track is None or not prelude_source:
        return []
    definition = hashlib.sha256("\0".join(prelude_source).encode("utf-8", "surrogatepass")).hexdigest()[:32]
    made = {name: value for name, value in ns.items() if _defined_here(name, value, ns)}
    shared = {cls: track(f"nbscale:{definition}:{name}", cls) for name, cls in made.items()}
    replaced = {fresh: first for fresh, first in shared.items() if first is not fresh}
    if not replaced:
        return []
    for fresh in shared:  # a class of its own now whose base was replaced: based on the one taken
        if fresh not in replaced and any(base in replaced for base in fresh.__bases__):
            _rebase(fresh, replaced)
    for name, value in list(ns.items()):
        if isinstance(value, type) and value in replaced:
            ns[name] = replaced[value]
        elif type(value) in replaced:  # an instance the cell made (`DEFAULT = Clip(3)`)
            ns[name] = _as_instance_of(value, replaced[type(value)])
    return list(replaced.values())


def _defined_here(name: str, value, ns: dict) -> bool:
    return isinstance(value, type) and value.__module__ == ns.get("__name__") and value.__qualname__ == name


def _rebase(cls: type, replaced: dict) -> None:
    try:
        cls.__bases__ = tuple(replaced.get(base, base) for base in cls.__bases__)
    except TypeError:  # layouts that differ: left as it is
        pass


def _as_instance_of(value, cls: type):
    try:
        if isinstance(value, enum.Enum):
            return cls[value.name]
        value.__class__ = cls
    except (TypeError, KeyError):  # layouts that differ, a member of its own: left as it is
        pass
    return value
