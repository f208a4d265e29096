"""Abstract objects: which objects a name may *be*, and which objects an object may *hold*.

The alias model of the dataflow analysis. `df = train` makes `df` *be* train's object;
`data = [train, test]`, `Pipeline([...])` and `m.fit(X, y)` make `data`, the pipeline and `m`
*hold* references to other objects without being them. A mutation changes the objects it
reaches: `m.fit(...)` changes m's object, not X; `for d in data: d["x"] = 1` and
`m.data_[0] = 1` reach through the held references. A name is changed by a mutation when its
object, or anything its object holds at any depth, is changed: a list holding a mutated frame
hands on a changed value too.

Objects are strings. An object made by an opaque call, or read before the analysis saw it bound,
holds a placeholder `OBJ.*` for its unknown contents, so a mutation *through* it (deep) can be
told from a mutation *of* it (shallow). Held references come in two kinds: *owned* ones (the
elements of a literal, constructor arguments, stored items) that the holder's own methods may
change (`pipe.fit` fits its steps), and *given* ones (arguments of a method call such as
`m.fit(X, y)`) that nothing but an explicit reach-through changes.
"""

from __future__ import annotations


def contents(obj: str) -> str:
    """The placeholder for the unknown contents of `obj`."""
    return obj + ".*"


class Heap:
    """Names → objects they may be; objects → objects they may hold (owned or given)."""

    def __init__(self):
        self.points: dict[str, frozenset[str]] = {}
        self.owned: dict[str, set[str]] = {}
        self.given: dict[str, set[str]] = {}
        self.initial: dict[str, str] = {}  # name → the object it had before the analysis saw it bound
        # reverse indexes, so that what a change reaches is found by walking up from it
        self.holders: dict[str, set[str]] = {}  # object → objects holding it (owned or given)
        self.named: dict[str, set[str]] = {}  # object → names that may be it now
        # name → [(epoch, objects)], every change of what it may be, when `history` is turned on:
        # what a name was after step k, without copying every name's entry after every step
        self.history: dict[str, list[tuple[int, frozenset[str]]]] | None = None
        # objects of literal numbers, strings, bytes, booleans and None: nothing changes them in
        # place, so holding one (`Model(random_state=seed)`) makes no path for a change to travel
        self.immutable: set[str] = set()
        self.epoch = 0
        self._made = 0
        self._results: dict[int, tuple[object, frozenset[str]]] = {}

    # --- objects and names -----------------------------------------------------------------
    def fresh(self, label: str) -> str:
        """A new object of unknown contents, named after `label` (a name or a literal kind)."""
        self._made += 1
        obj = f"{label}#{self._made}"
        self.owned[obj] = {contents(obj)}
        self.holders[contents(obj)] = {obj}
        return obj

    def fresh_immutable(self, label: str) -> str:
        """A new object that cannot change (the value of a literal number, string, ...)."""
        self._made += 1
        obj = f"{label}#{self._made}"
        self.immutable.add(obj)
        return obj

    def declare_immutable(self, name: str) -> None:
        """`name` is bound before the analysis to a value nothing changes in place (a parameter
        declared as a number, string or boolean)."""
        self.initial[name] = self.fresh_immutable(name)
        self._point(name, frozenset({self.initial[name]}))

    def new_container(self, label: str, elements) -> str:
        """A literal (`[a, b]`, `{"k": v}`) or a constructed object owning `elements`."""
        obj = self.fresh(label)
        self.hold([obj], elements)
        return obj

    def objects(self, name: str) -> frozenset[str]:
        """What `name` may be now; a name not seen bound gets an object of its own."""
        found = self.points.get(name)
        if found is None:
            self.initial[name] = self.fresh(name)
            found = self._point(name, frozenset({self.initial[name]}))
        return found

    def bind(self, name: str, objects=frozenset()):
        """`name = …`: it is now one of `objects`, or a new object when they are unknown."""
        self._point(name, frozenset(objects) or frozenset({self.fresh(name)}))

    def _point(self, name, objects):
        for obj in self.points.get(name, ()):
            self.named[obj].discard(name)
        for obj in objects:
            self.named.setdefault(obj, set()).add(name)
        self.points[name] = objects
        if self.history is not None:
            self.history.setdefault(name, []).append((self.epoch, objects))
        return objects

    def points_at(self, name: str, epoch: int) -> frozenset[str] | None:
        """What `name` might be at the end of `epoch` (None: not seen by then); needs `history`."""
        found = None
        for when, objects in reversed(self.history.get(name, ())):
            if when <= epoch:
                found = objects
                break
        return found

    def result(self, node, make) -> frozenset[str]:
        """The objects an expression node (a literal, a call) evaluates to, made once."""
        key = id(node)
        if key not in self._results:
            self._results[key] = (node, make())  # keeping the node keeps its id unique
        return self._results[key][1]

    def hold(self, holders, objects, owned=True):
        table = self.owned if owned else self.given
        objects = set(objects) - self.immutable
        for holder in holders:
            table.setdefault(holder, set()).update(objects)
        for obj in objects:
            self.holders.setdefault(obj, set()).update(holders)

    # --- what a reference reaches ----------------------------------------------------------
    def held(self, objects) -> set[str]:
        """Objects directly held (owned or given) by any of `objects`."""
        found = set()
        for obj in objects:
            found |= self.owned.get(obj, set()) | self.given.get(obj, set())
        return found

    def elements(self, objects, depth: int = 1) -> frozenset[str]:
        """What `x[i]`, `x.attr` or a loop over `x` may be, `depth` levels down: a part of x
        (the same abstract object) or something x holds."""
        found = set(objects)
        for _ in range(depth):
            found |= self.held(found)
        return frozenset(found)

    def owned_reach(self, objects) -> set[str]:
        """`objects` and everything they own, at any depth: what their own methods may change."""
        return self._closure(objects, (self.owned,))

    def reach(self, objects) -> set[str]:
        """`objects` and everything they hold, at any depth: what their value depends on."""
        return self._closure(objects, (self.owned, self.given))

    def _closure(self, objects, tables):
        seen, todo = set(objects), list(objects)
        while todo:
            obj = todo.pop()
            for table in tables:
                for other in table.get(obj, ()):
                    if other not in seen:
                        seen.add(other)
                        todo.append(other)
        return seen

    def reaching(self, objects) -> set[str]:
        """`objects` and every object that holds one of them at any depth: the objects whose
        `reach` meets `objects` (`holders` is the reverse of `owned` and `given`)."""
        return self._closure(objects, (self.holders,))

    def names_reaching(self, changed, names=None) -> set[str]:
        """Names (of `names`, default all) whose value may have changed with the objects `changed`."""
        if not changed:
            return set()
        found = set()
        for obj in self.reaching(changed):
            found |= self.named.get(obj, set())
        return found if names is None else found & set(names)

    def share(self, a, b) -> bool:
        """Whether two sets of objects may share an object at any depth."""
        return not self.reach(a).isdisjoint(self.reach(b))
