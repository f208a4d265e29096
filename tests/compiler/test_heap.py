"""The abstract objects: what names may be, what objects may hold, and what a change reaches."""

from nbscale.compiler.heap import Heap, contents, immutable


def test_a_name_read_before_any_binding_gets_an_object_of_unknown_contents():
    heap = Heap()
    (obj,) = heap.objects("df")
    assert heap.objects("df") == {obj} and heap.initial == {"df": obj}
    assert heap.elements({obj}) == {obj, contents(obj)}


def test_binding_to_nothing_known_makes_a_new_object():
    heap = Heap()
    heap.bind("a")
    heap.bind("b", heap.objects("a"))
    assert heap.objects("a") == heap.objects("b")
    heap.bind("b")
    assert heap.objects("a") != heap.objects("b")


def test_held_objects_change_their_holders_but_not_the_other_way_round():
    heap = Heap()
    (x,) = heap.objects("X")
    (m,) = heap.objects("m")
    heap.hold({m}, {x}, owned=False)
    assert heap.names_reaching({x}) == {"X", "m"}
    assert heap.names_reaching({m}) == {"m"}
    assert x in heap.reach({m}) and x not in heap.owned_reach({m})  # given, not owned
    assert heap.share({m}, {x}) and not heap.share({m}, heap.objects("other"))


def test_owned_objects_are_reached_by_their_owners_methods():
    heap = Heap()
    scaler = heap.fresh("scaler")
    pipe = heap.new_container("Pipeline", {scaler})
    assert scaler in heap.owned_reach({pipe}) and contents(scaler) in heap.owned_reach({pipe})


def test_a_literal_evaluated_twice_is_one_object():
    import ast

    heap = Heap()
    node = ast.parse("[a]").body[0].value
    first = heap.result(node, lambda: frozenset({heap.fresh("list")}))
    assert heap.result(node, lambda: frozenset({heap.fresh("list")})) == first


def test_the_history_says_what_a_name_was_after_each_epoch():
    heap = Heap()
    heap.history = {}
    heap.epoch = 0
    heap.bind("a")
    first = heap.objects("a")
    heap.epoch = 2
    heap.bind("a", heap.objects("b"))
    assert heap.points_at("a", 0) == heap.points_at("a", 1) == first
    assert heap.points_at("a", 2) == heap.points_at("a", 9) == heap.objects("b")
    assert heap.points_at("b", 1) is None  # not seen by then
    assert heap.points_at("never", 5) is None


def test_a_fresh_objects_contents_are_implied_not_stored():
    heap = Heap()
    for i in range(100):
        heap.bind(f"v{i}")
    (obj,) = heap.objects("v7")
    assert not heap.owned and not heap.holders
    assert heap.held({obj}) == {contents(obj)} and heap.owned_reach({obj}) == {obj, contents(obj)}
    assert heap.reaching({contents(obj)}) == {obj, contents(obj)}
    assert heap.names_reaching({contents(obj)}) == {"v7"}
    heap.declare_immutable("seed")
    assert heap.elements(heap.objects("seed")) == heap.objects("seed")  # an immutable holds nothing


def test_names_sharing_an_object_are_all_found_and_forgotten_when_bound_again():
    heap = Heap()
    heap.bind("a")
    heap.bind("b", heap.objects("a"))
    heap.bind("c", heap.objects("a"))
    assert heap.names_reaching(heap.objects("a")) == {"a", "b", "c"}
    heap.bind("b")
    heap.bind("c")
    assert heap.names_reaching(heap.objects("a")) == {"a"}
    assert heap.names_reaching(heap.objects("a"), names=["b"]) == set()


def test_the_history_keeps_the_last_value_of_each_epoch():
    heap = Heap()
    heap.history = {}
    heap.bind("a")
    heap.bind("a")  # epoch 0 again: only the last counts
    at_0 = heap.objects("a")
    heap.epoch = 3
    heap.bind("a", heap.objects("b"))
    heap.bind("a")
    at_3 = heap.objects("a")
    heap.epoch = 4
    heap.bind("a", heap.objects("b") | at_0)
    assert heap.points_at("a", 0) == heap.points_at("a", 2) == at_0
    assert heap.points_at("a", 3) == at_3 and heap.points_at("a", 4) == heap.objects("b") | at_0


def _strings_in(value, found):
    """Every string `value` holds, at any depth of its dicts, sets, lists and tuples."""
    if isinstance(value, str):
        found.add(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _strings_in(key, found)
            _strings_in(item, found)
    elif isinstance(value, (set, frozenset, list, tuple)):
        for item in value:
            _strings_in(item, found)
    return found


def test_an_immutable_is_told_by_its_name_and_no_table_keeps_it():
    heap = Heap()
    heap.bind("m")
    (obj,) = heap.objects("m")
    literal = heap.fresh_immutable("literal")  # `m.fit(3)`: the object of the 3
    heap.hold([obj], {literal}, owned=False)
    assert immutable(literal) and not immutable(obj) and not immutable(contents(obj))
    assert heap.given == {} and heap.held({obj}) == {contents(obj)}  # holding it makes no path
    assert literal not in _strings_in(vars(heap), set())  # it lives no longer than its expression


def test_what_an_object_holds_is_kept_small_and_whole():
    # a tuple for a few (a set costs 200 bytes: a big cell's 40,000 lists, each holding the value
    # before, took 20 MB), a set past that; each object once, whichever way it came
    heap = Heap()
    parts = [heap.fresh(f"p{i}") for i in range(12)]
    holder = heap.new_container("list", parts[:2])
    heap.hold([holder], parts[:3])
    assert type(heap.owned[holder]) is tuple and sorted(heap.owned[holder]) == sorted(parts[:3])
    assert heap.holders[parts[0]] == (holder,)
    heap.hold([holder], parts)
    assert type(heap.owned[holder]) is set and heap.owned[holder] == set(parts)
    assert heap.held({holder}) == set(parts) | {contents(holder)}
    assert heap.reaching({parts[11]}) >= {holder} and heap.reach({holder}) >= set(parts)
    heap.instance_of([holder], [parts[0]])
    heap.instance_of([holder], [parts[0]])
    assert heap.instances[holder] == (parts[0],) and heap.holders[parts[0]] == (holder,)


def test_a_name_changed_in_epoch_0_alone_has_no_history_entry():
    heap = Heap()
    heap.history = {}
    heap.bind("a")
    heap.bind("b")
    heap.bind("a")  # epoch 0 again
    at_0 = {name: heap.objects(name) for name in ("a", "b")}
    heap.epoch = 1
    heap.bind("c")
    heap.bind("b", heap.objects("c"))
    assert set(heap.history) == {"b", "c"}  # (a big cell is one step: epoch 0, no entry for any name)
    assert heap.points_at("a", 0) == heap.points_at("a", 5) == at_0["a"]
    assert heap.points_at("b", 0) == at_0["b"] and heap.points_at("b", 1) == heap.objects("c")
    assert heap.points_at("c", 0) is None and heap.points_at("c", 1) == heap.objects("c")


def test_an_exact_container_owns_only_what_it_was_given_until_it_is_spoiled():
    heap = Heap()
    (base,) = heap.objects("base")
    params = heap.new_container("dict", {base}, exact=True)
    assert heap.held({params}) == {base}  # no placeholder: `**params` gives base alone
    heap.spoil({params})  # `params["x"] = load()`: something unknown is in it now
    assert heap.held({params}) == {base, contents(params)}
    assert heap.names_reaching({contents(params)}) == set() and params in heap.reaching({contents(params)})
