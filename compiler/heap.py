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
`m.fit(X, y)`) that nothing but an explicit reach-through changes. A container made of known
objects (`{"n": 5}`, `[train, test]`) is *exact*: it owns no placeholder until something of
unknown origin goes in (`spoil`), so `Model(**params)` owns the values alone.

A big cell binds tens of thousands of names, so the tables stay small per name: every object
`fresh` makes owns its placeholder, so that link is implied, not stored (`_implied`: 25 MB for a
cell binding 40,000 names); a name that may be one object points at it alone, not at a set of
one; an object's few names are a tuple (`named`); a name's history is one epoch (none for the
first) until it changes in a second one (`_remember`); an immutable object says so by its name, in
no set of them (`immutable`).

A few objects change when they are only read: an iterator (`iter(xs)`, `zip(a, b)`, a generator)
advances when a loop, a call or an unpacking draws from it, and a `defaultdict` inserts the key a
subscript misses. They are noted in `kinds` (`fresh_kind`), so that such a read is a change
(`drawn`, `of_kind`). An iterator is given what it draws on (`zip(a, b)`: a and b), as a lazy
view is what it views (`df.groupby(k)`: df), so that a change of that reaches them; an iterator
owns what it yields (what a and b hold), and that alone is what a loop over it, or `list(it)`,
gets (`held`); a loop over a view gets new objects (a group is a copy).

A class the notebook defines is pickled by value with its instances and subclasses, so they depend
on it: an instance made by calling it is linked to it (`instance_of`), and a subclass is given its
bases. `reach` and `reaching` follow the link, so a change of the class changes its instances; what
a change through an instance reaches (`held`, `owned_reach`) does not, so `a.items.append(x)` changes
no other instance.
"""

from __future__ import annotations

_FEW = 8  # names of one object, or objects one holds, kept in a tuple; more go in a set

ITERATOR = "iterator"  # drawing from it (a loop, `list(it)`, unpacking) advances it
FILLING = "filling"  # reading a missing key inserts it (a `defaultdict`)
VIEW = "view"  # a lazy view (`df.groupby(k)`): it reads what it views when used
IN_PLACE = "in_place"  # its methods change their first argument (`StandardScaler(copy=False)`)
GENERATOR = "generator"  # a random generator: every method call draws from it (`rr.sample(xs, 3)` too)
# a process-wide object pickled by its name (`logging.getLogger("exp")`): handed on, it is the
# receiving process's own, so nothing it is given (`addHandler(h)`) travels with it
BY_NAME = "by_name"
# what `effects` names a literal container, or a comprehension's, after
LITERAL_LABELS = frozenset({"list", "dict", "set", "tuple", "listcomp", "setcomp", "dictcomp"})
_LAZY = frozenset({ITERATOR, VIEW})  # given what they draw on, which is no element of theirs


def _each(objects) -> tuple | frozenset:
    """The objects of a `points` or `history` entry (one object alone, or a frozenset)."""
    return (objects,) if type(objects) is str else objects


def _add(table: dict, key: str, objects) -> None:
    """`table[key]` holds `objects` too. A few are kept in a tuple, more in a set: most objects hold
    or are held by one or two, and a set costs 200 bytes (a big cell's lists, each holding the
    value before, took 20 MB in sets)."""
    found = table.get(key)
    if type(found) is set:
        found.update(objects)
        return
    found = found or ()
    more = tuple(obj for obj in dict.fromkeys(objects) if obj not in found)
    if more:
        joined = found + more
        table[key] = joined if len(joined) <= _FEW else set(joined)


def contents(obj: str) -> str:
    """The placeholder for the unknown contents of `obj`."""
    return obj + ".*"


_IMMUTABLE = "!"  # the last character of an immutable object (`fresh` ends its others with a digit)
_EXACT = "~"  # the last character of an object whose contents are all known (`fresh_exact`)


def immutable(obj: str) -> bool:
    """`obj` is the value of a literal number, string, bytes, boolean or None, or of a parameter
    declared as one: nothing changes it in place. (Said by its name, not kept in a set: a big
    cell's literal arguments made 20,000 objects that the set alone kept alive, 3 MB.)"""
    return obj[-1] == _IMMUTABLE


class Heap:
    """Names → objects they may be; objects → objects they may hold (owned or given)."""

    def __init__(self):
        # name → what it may be: one object alone (most names), or a frozenset of them (200 bytes)
        self.points: dict[str, str | frozenset[str]] = {}
        # object → objects it holds, and the reverse (`_add`: a tuple of a few, or a set)
        self.owned: dict[str, tuple | set[str]] = {}
        self.given: dict[str, tuple | set[str]] = {}
        self.initial: dict[str, str] = {}  # name → the object it had before the analysis saw it bound
        # reverse indexes, so that what a change reaches is found by walking up from it
        self.holders: dict[str, tuple | set[str]] = {}  # object → objects holding it (owned or given)
        self.named: dict[str, str | tuple | set[str]] = {}  # object → names that may be it now
        # name → [(epoch, objects)], every change of what it may be, when `history` is turned on
        # (or the one epoch it changed in, or nothing for epoch 0: `_remember`): what a name was
        # after step k, without copying every name's entry after every step. It is turned on
        # (`{}`) in epoch 0, before any name points at anything.
        self.history: dict[str, int | list[tuple[int, str | frozenset[str]]]] | None = None
        self.epoch = 0
        self.spoiled: set[str] = set()  # exact objects that came to hold something unknown
        self.kinds: dict[str, str] = {}  # the few objects a read changes, and views → their kind
        self.made_kinds: set[str] = set()  # the kinds of those (most cells make no FILLING one)
        # a callable value → (objects a call of it changes, and whether what they own too): a bound
        # method taken as a value (`app = data.append`: its object), a `partial`, a closure (`on_call`)
        self.calls_change: dict[str, tuple[frozenset[str], bool]] = {}
        # those surely callable (a partial, a closure): given to a call, they may be called by it
        self.sure_callables: set[str] = set()
        # names bound to a changing method's bound method (`push = log.append`): its object is the
        # receiver's, so the name, not the object, says that giving it away gives a callable
        # (`best = grid.best_estimator_` may be no method at all)
        self.method_names: set[str] = set()
        self.functions: dict = {}  # the object of a function the notebook defines → its `Callable`
        self.classes: set[str] = set()  # the objects of the classes the notebook defines
        # an instance → its class (`instance_of`): part of its value (a notebook class is pickled by
        # value with its instance), but no part of it that `s.items.append(…)` reaches
        self.instances: dict[str, tuple | set[str]] = {}
        self.class_attributes: dict[str, frozenset[str]] = {}  # a class → the names its body binds
        self.generators: set[str] = set()  # generator objects: no copy or pickle of one can be made
        self.held_functions: set[str] = set()  # those of `functions` (not classes) that something holds
        self._made = 0
        self._results: dict[int, tuple[object, frozenset[str]]] = {}

    # --- objects and names -----------------------------------------------------------------
    def fresh(self, label: str) -> str:
        """A new object of unknown contents, named after `label` (a name or a literal kind)."""
        self._made += 1
        return f"{label}#{self._made}"  # (it owns contents(obj): see `_implied`)

    def fresh_kind(self, label: str, kind: str) -> str:
        """A new object of a `kind`: one a read changes (ITERATOR, FILLING), or a VIEW."""
        obj = self.fresh(label)
        self.mark([obj], kind)
        return obj

    def mark(self, objects, kind: str) -> None:
        """`objects` are of a `kind` (ITERATOR, FILLING, VIEW)."""
        self.kinds.update(dict.fromkeys(objects, kind))
        self.made_kinds.add(kind)

    def on_call(self, objects, changed, deep=False, sure=True) -> None:
        """Calling any of `objects` (callable values) changes `changed` (`deep`: and what they own,
        as they are when it is called); `sure`: they are callables (`sure_callables`)."""
        if sure:
            self.sure_callables.update(objects)
        if changed:
            for obj in objects:
                before, was_deep = self.calls_change.get(obj, (frozenset(), False))
                self.calls_change[obj] = (before | frozenset(changed), was_deep or deep)

    def changed_by_calling(self, objects) -> set[str]:
        found = set()
        for obj in objects if self.calls_change else ():
            changed, deep = self.calls_change.get(obj, ((), False))
            found |= self.owned_reach(changed) if deep else set(changed)
        return found

    def may_be_instances(self, objects) -> set[str]:
        """Those of `objects` that may be instances of a class of the notebook: not a literal's
        value, an exact container, an iterator or view the analysis made, nor the object of a name
        bound outside the steps (an import, a builtin, a parameter)."""
        return {obj for obj in objects
                if obj[-1] not in (_IMMUTABLE, _EXACT) and obj not in self.kinds
                and obj.rsplit("#", 1)[0] not in LITERAL_LABELS
                and self.initial.get(obj.rsplit("#", 1)[0]) != obj}

    def of_kind(self, objects, kind: str) -> set[str]:
        if kind not in self.made_kinds:
            return set()
        return {obj for obj in objects if self.kinds.get(obj) == kind}

    def drawn(self, objects) -> set[str]:
        """The iterators drawing from `objects` advances: those of them that are iterators, and
        the iterators those draw from in turn (`zip(it, xs)`, `(x for x in it)`); not the ones a
        list holds (`list(its)` advances none)."""
        found, todo = set(), self.of_kind(objects, ITERATOR)
        while todo:
            obj = todo.pop()
            found.add(obj)
            todo |= self.of_kind(self.given.get(obj, ()), ITERATOR) - found
        return found

    def fresh_immutable(self, label: str) -> str:
        """A new object that cannot change (the value of a literal number, string, ...): holding
        one (`Model(random_state=seed)`) makes no path for a change to travel (`immutable`)."""
        self._made += 1
        return f"{label}#{self._made}{_IMMUTABLE}"

    def fresh_exact(self, label: str) -> str:
        """A new container whose every element is a known object (`{"n": 5}`, `[train, test]`):
        it owns no placeholder, so what it holds is all a change through it reaches (`**params`
        gives a constructor its values, not the dict), until `spoil` says otherwise."""
        self._made += 1
        return f"{label}#{self._made}{_EXACT}"

    def spoil(self, objects) -> None:
        """`objects` may now hold something of unknown origin (`d["k"] = load()`): exact ones
        own their placeholder from now on."""
        for obj in objects:
            if obj[-1] == _EXACT:
                self.spoiled.add(obj)

    def declare_immutable(self, name: str) -> None:
        """`name` is bound before the analysis to a value nothing changes in place (a parameter
        declared as a number, string or boolean)."""
        self.initial[name] = self.fresh_immutable(name)
        self._point(name, frozenset({self.initial[name]}))

    def new_container(self, label: str, elements, exact=False) -> str:
        """A literal (`[a, b]`, `{"k": v}`) or a constructed object owning `elements` (`exact`:
        and nothing else)."""
        obj = self.fresh_exact(label) if exact else self.fresh(label)
        self.hold([obj], elements)
        return obj

    def objects(self, name: str) -> frozenset[str]:
        """What `name` may be now; a name not seen bound gets an object of its own."""
        found = self.points.get(name)
        if found is None:
            self.initial[name] = self.fresh(name)
            found = self._point(name, frozenset({self.initial[name]}))
        return frozenset((found,)) if type(found) is str else found

    def bind(self, name: str, objects=frozenset()):
        """`name = …`: it is now one of `objects`, or a new object when they are unknown."""
        if self.method_names:
            self.method_names.discard(name)
        self._point(name, frozenset(objects) or frozenset({self.fresh(name)}))

    # (`named` holds one name alone and a few in a tuple: most objects have one or two, and a set
    # costs 200 bytes)
    def _point(self, name, objects):
        named, old = self.named, self.points.get(name)
        for obj in () if old is None else _each(old):
            names = named[obj]
            if type(names) is set:
                names.discard(name)
            elif type(names) is tuple:
                rest = tuple(n for n in names if n != name)
                named[obj] = rest[0] if len(rest) == 1 else rest
            elif names == name:
                del named[obj]
        for obj in objects:
            names = named.get(obj)
            if names is None:
                named[obj] = name
            elif type(names) is str:
                if names != name:
                    named[obj] = (names, name)
            elif type(names) is tuple:
                if name not in names:
                    named[obj] = names + (name,) if len(names) < _FEW else {*names, name}
            else:
                names.add(name)
        kept = next(iter(objects)) if len(objects) == 1 else objects
        if self.history is not None:
            self._remember(name, old, kept)
        self.points[name] = kept
        return objects

    def _remember(self, name, old, kept):
        """Note in `history` that `name` is now `kept` (it was `old`). A name that changed in one
        epoch only has just that epoch there (its value is `points`'), and a name that changed in
        epoch 0 only has nothing: a tuple per name took 3 MB for a big cell, an epoch per name
        2 MB (a notebook of one cell is one step, epoch 0). Once it changes in a second epoch, it
        has a list of (epoch, objects), the last of each epoch (what the name was at its end)."""
        history, epoch = self.history, self.epoch
        past = history.get(name)
        if past is None:
            if old is None:  # a new name
                if epoch:
                    history[name] = epoch
                return
            past = 0  # (no entry, yet it pointed at something: in epoch 0 alone)
        if type(past) is int:
            if past != epoch:
                history[name] = [(past, old), (epoch, kept)]
        elif past[-1][0] == epoch:
            past[-1] = (epoch, kept)
        else:
            past.append((epoch, kept))

    def points_at(self, name: str, epoch: int) -> frozenset[str] | None:
        """What `name` might be at the end of `epoch` (None: not seen by then); needs `history`."""
        past = self.history.get(name)
        if past is None and name in self.points:  # (changed in epoch 0 alone: `_remember`)
            past = 0
        if type(past) is int:
            past = [(past, self.points[name])]
        for when, objects in reversed(past or ()):
            if when <= epoch:
                return frozenset((objects,)) if type(objects) is str else objects
        return None

    def result(self, node, make) -> frozenset[str]:
        """The objects an expression node (a literal, a call) evaluates to, made once."""
        key = id(node)
        if key not in self._results:
            self._results[key] = (node, make())  # keeping the node keeps its id unique
        return self._results[key][1]

    def forget_results(self) -> None:
        """Drop the objects made for expression nodes (and the nodes): after a top-level statement,
        whose nodes no other statement evaluates, so that its tree need not outlive it."""
        self._results.clear()

    def hold(self, holders, objects, owned=True):
        table = self.owned if owned else self.given
        objects = {obj for obj in objects if not immutable(obj)}
        if not objects:
            return
        for holder in holders:
            _add(table, holder, objects)
        for obj in objects:
            _add(self.holders, obj, holders)
        functions = self.functions
        if functions and not functions.keys().isdisjoint(objects):
            self.held_functions.update(obj for obj in objects if obj in functions and obj not in self.classes)

    def instance_of(self, instances, classes) -> None:
        """`instances` were made by calling one of `classes` (objects of the notebook's classes): a
        change of the class (`Scaler.k = 10`) changes them, as it changes what they are pickled with.
        Kept apart from what they hold, so that a change through one instance (`a.items.append(x)`)
        is none of its class, nor of the class's other instances."""
        for obj in instances:
            _add(self.instances, obj, classes)
        for cls in classes:
            _add(self.holders, cls, instances)

    def classes_binding(self, instances, attribute: str) -> set[str]:
        """The classes `instances` may be instances of (or their notebook bases) whose body binds
        `attribute`: `b.registry` may be the class's list, which all its instances share."""
        found, seen = set(), set()
        todo = set().union(*(self.instances.get(obj, ()) for obj in instances))
        while todo:
            cls = todo.pop()
            seen.add(cls)
            if attribute in self.class_attributes.get(cls, ()):
                found.add(cls)
            todo |= self.classes.intersection(self.given.get(cls, ())) - seen  # (a class is given its bases)
        return found

    def function_holders(self) -> set[str]:
        """The objects that may hold a function of the notebook (not a class), at any depth: a
        `partial` of it, a `FunctionTransformer`, a pipeline holding that, a dict of lambdas."""
        held = self.held_functions
        return self.reaching(held) - held if held else set()  # (none in most notebooks)

    # --- what a reference reaches ----------------------------------------------------------
    def held(self, objects) -> set[str]:
        """Objects directly held (owned or given) by any of `objects`: for an iterator, what it
        yields, not what it draws on (nor for a view what it views)."""
        found, kinds = set(), self.kinds
        for obj in objects:
            owned, given = self.owned.get(obj), self.given.get(obj)
            if kinds and kinds.get(obj) in _LAZY:
                given = None
            if owned:
                found.update(owned)
            if given:
                found.update(given)
            implied = self._implied(obj)
            if implied is not None:
                found.add(implied)
        return found

    def _implied(self, obj: str, up: bool = False) -> str | None:
        """The placeholder an object `fresh` made owns (every object but placeholders, immutables
        and unspoiled exact ones), or with `up`, the object owning a placeholder."""
        if obj.endswith(".*"):
            return obj[:-2] if up else None
        if up or immutable(obj) or (obj[-1] == _EXACT and obj not in self.spoiled):
            return None
        return contents(obj)

    def elements(self, objects, depth: int = 1) -> frozenset[str]:
        """What `x[i]`, `x.attr` or a loop over `x` may be, `depth` levels down: a part of x
        (the same abstract object, unless x is an iterator) or something x holds."""
        found = set(objects)
        for _ in range(depth):
            found |= self.held(found)
        return frozenset(found - self.of_kind(objects, ITERATOR))  # (an iterator yields no part of itself)

    def yielded(self, objects) -> set[str]:
        """`objects`, each iterator among them replaced by what it yields: what a call given them
        keeps (`Counter(str(x) for x in xs)` keeps none of xs, and no generator)."""
        drawn = self.of_kind(objects, ITERATOR)
        return (set(objects) - drawn) | self.held(drawn) if drawn else set(objects)

    def owned_reach(self, objects) -> set[str]:
        """`objects` and everything they own, at any depth: what their own methods may change."""
        return self._closure(objects, (self.owned,))

    def reach(self, objects) -> set[str]:
        """`objects` and everything they hold, at any depth, and the classes of the notebook they are
        instances of: what their value depends on."""
        tables = (self.owned, self.given, self.instances) if self.instances else (self.owned, self.given)
        return self._closure(objects, tables)

    def _closure(self, objects, tables, up=False):
        seen, todo = set(objects), list(objects)
        while todo:
            obj = todo.pop()
            implied = self._implied(obj, up)
            if implied is not None and implied not in seen:
                seen.add(implied)
                todo.append(implied)
            for table in tables:
                for other in table.get(obj, ()):
                    if other not in seen:
                        seen.add(other)
                        todo.append(other)
        return seen

    def reaching(self, objects) -> set[str]:
        """`objects` and every object that holds one of them at any depth: the objects whose
        `reach` meets `objects` (`holders` is the reverse of `owned`, `given` and `instances`)."""
        return self._closure(objects, (self.holders,), up=True)

    def names_reaching(self, changed, names=None) -> set[str]:
        """Names (of `names`, default all) whose value may have changed with the objects `changed`."""
        if not changed:
            return set()
        found = set()
        for obj in self.reaching(changed):
            named = self.named.get(obj)
            if type(named) is str:
                found.add(named)
            elif named:
                found.update(named)
        return found if names is None else found & set(names)

    def share(self, a, b) -> bool:
        """Whether two sets of objects may share an object at any depth."""
        return not self.reach(a).isdisjoint(self.reach(b))
