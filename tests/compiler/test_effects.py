import ast

import pytest

from nbscale.compiler import effects
from nbscale.compiler.heap import FILLING, Heap, immutable


def expr(text):
    return ast.parse(text).body[0].value


def stmt(text):
    return ast.parse(text).body[0]


def test_root_name_follows_attribute_and_subscript_chains():
    assert effects.root_name(expr("df['x'].loc[0].values")) == "df"
    assert effects.root_name(expr("make().x")) is None


def test_target_names_and_mutations():
    target = stmt("a, (b, *c), d.x, e[0] = v").targets[0]
    assert effects.target_names(target) == ["a", "b", "c"]
    assert effects.mutated_by_target(target) == {"d", "e"}


def test_method_calls_mutate_their_receiver_unless_read_only():
    assert effects.mutated_by_call(expr("model.fit(X, y)")) == {"model"}
    assert effects.mutated_by_call(expr("df.head()")) == set()
    assert effects.mutated_by_call(expr("df.fillna(0, inplace=True)")) == {"df"}
    assert effects.mutated_by_call(expr("df['a'].fillna(0, inplace=True)")) == {"df"}
    assert effects.mutated_by_call(expr("df.copy().fillna(0, inplace=True)")) == set()


def test_known_in_place_functions_mutate_their_arguments():
    assert effects.mutated_by_call(expr("np.random.shuffle(order)")) == {"order", "np"}
    assert effects.mutated_by_call(expr("random.shuffle(deck)")) == {"deck", "random"}
    assert effects.mutated_by_call(expr("train_test_split(X, y)")) == set()


def test_dynamic_calls():
    assert effects.is_dynamic_call(expr("exec(code)"))
    assert effects.is_dynamic_call(expr("globals()"))
    assert effects.is_dynamic_call(expr("vars()"))
    assert not effects.is_dynamic_call(expr("vars(obj)"))


def run(heap, text):
    """Apply the effects of simple statements (assignments to names, loops, calls) to `heap`."""
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign):
            heap.bind(node.targets[0].id, effects.objects_of(heap, node.value))
        elif isinstance(node, ast.For):
            for part, exprs in effects.loop_sources(node.target, node.iter):
                for name in effects.target_names(part):
                    heap.bind(name, effects.elements_of(heap, exprs))
        else:
            effects.call_changes(heap, node.value)
    return heap


def changed_with(heap, name, deep=False):
    """Names whose value changes when `name`'s object (and, `deep`, what it owns) changes."""
    objects = heap.objects(name)
    return heap.names_reaching(heap.owned_reach(objects) if deep else objects)


def test_containers_and_loop_targets_reach_the_objects_they_hold():
    heap = run(Heap(), "data = [train, test]\nfor df in data: pass\nbag.append(item)")
    assert changed_with(heap, "df") == {"df", "data", "train", "test"}
    assert changed_with(heap, "train") == {"train", "data", "df"}  # data holds train; df may be it
    assert changed_with(heap, "data") == {"data", "df"}  # data.append(…) changes no frame
    assert changed_with(heap, "bag") == {"bag"} and changed_with(heap, "item") == {"item", "bag"}
    assert changed_with(heap, "other") == {"other"}


def test_a_method_call_makes_its_receiver_hold_its_arguments_without_changing_them():
    heap = Heap()
    changed = effects.call_changes(heap, expr("m1.fit(X, y)"))
    assert heap.names_reaching(changed) == {"m1"}
    assert changed_with(heap, "X") == {"X", "m1"}  # m1 may hold X: a change of X changes m1
    changed = effects.store_changes(heap, stmt("m1.data_[0] = 1").targets[0], frozenset())
    assert heap.names_reaching(changed) == {"m1", "X", "y"}  # a change *through* m1


def test_constructors_own_their_arguments_and_their_methods_change_what_they_own():
    heap = run(Heap(), "pipe = Pipeline([('s', scaler), ('m', clf)])\ngrid = GridSearchCV(pipe, grid_params)")
    assert heap.names_reaching(effects.call_changes(heap, expr("pipe.fit(X, y)"))) == {"pipe", "scaler", "clf",
                                                                                      "grid"}
    # a search clones its estimator: fitting it changes the search only
    assert heap.names_reaching(effects.call_changes(heap, expr("grid.fit(X, y)"))) == {"grid"}
    run(heap, "opt = SGD(model.parameters(), lr=0.1)")
    assert "model" in heap.names_reaching(effects.call_changes(heap, expr("opt.step()")))


def test_loop_over_enumerate_and_items_reaches_the_container():
    heap = run(Heap(), "for i, df in enumerate(frames): pass\nfor k, v in tables.items(): pass")
    assert "frames" in changed_with(heap, "df") and "tables" in changed_with(heap, "v")
    assert changed_with(heap, "i") == {"i"} and changed_with(heap, "k") == {"k"}


def test_call_results_are_new_objects():
    heap = run(Heap(), "X = df.copy()\nZ = np.log(df)")
    assert changed_with(heap, "X") == {"X"} and changed_with(heap, "Z") == {"Z"}
    run(heap, "m2 = m1.fit(X, y)")
    assert changed_with(heap, "m2") == {"m1", "m2"}  # fit returns its receiver


def test_zip_enumerate_and_items_loops_pair_targets_with_their_own_containers():
    heap = run(Heap(), "for wi, xi in zip(w, x): pass\nfor i, v in enumerate(vals): pass\n"
                       "for k, t in tables.items(): pass\nfor j, (a, b) in enumerate(zip(p, q)): pass")
    assert changed_with(heap, "wi") == {"wi", "w"} and changed_with(heap, "xi") == {"xi", "x"}
    assert changed_with(heap, "v") == {"v", "vals"} and changed_with(heap, "t") == {"t", "tables"}
    assert changed_with(heap, "a") == {"a", "p"} and changed_with(heap, "b") == {"b", "q"}


def test_sizes_lengths_and_arithmetic_on_numbers_are_no_part_of_what_they_are_taken_from():
    # `k = X.shape[1]` then `Model(max_iter=k).fit(X, y)`: the model owns k, and k is no part of X
    heap = run(Heap(), "k = X.shape[1]\nn = len(X) * 2\nC = 1.0 / 4\nt = X.dtype\nlayers = (64, k)")
    for name in ("k", "n", "C", "t", "layers"):
        assert all(map(immutable, heap.objects(name))), name
    run(heap, "m = Model(max_iter=k, C=C, n=n, layers=layers)")
    assert heap.names_reaching(effects.call_changes(heap, expr("m.fit(X, y)"))) == {"m"}
    run(heap, "col = X.values[0]\nw = v * 2")  # a part of X; a new array, not immutable
    assert "X" in changed_with(heap, "col") and not all(map(immutable, heap.objects("w")))


def test_unpacked_keyword_arguments_give_a_constructor_the_values_not_the_dict():
    heap = run(Heap(), "params = dict(n_estimators=5)\nm1 = RF(**params)\nm2 = RF(**params)")
    assert heap.names_reaching(effects.call_changes(heap, expr("m1.fit(X, y)"))) == {"m1"}
    # a dict holding an estimator still gives it to the constructor, whose fit changes it
    heap = run(Heap(), "opts = {'estimator': base}\nw = Wrapper(**opts)")
    assert "base" in heap.names_reaching(effects.call_changes(heap, expr("w.fit(X, y)")))
    # a dict of unknown contents may hold anything: fitting may change what it holds
    heap = run(Heap(), "loaded = load()\nw = Wrapper(**loaded)")
    assert "loaded" in heap.names_reaching(effects.call_changes(heap, expr("w.fit(X, y)")))
    heap = run(Heap(), "cfg = {'a': 1}")
    effects.store_changes(heap, stmt("cfg['b'] = make()").targets[0], frozenset())
    run(heap, "w = Wrapper(**cfg)")
    assert "cfg" in heap.names_reaching(effects.call_changes(heap, expr("w.fit(X, y)")))


def test_pandas_methods_that_return_new_values_are_read_only():
    for text in ("df['a'].str.contains('x')", "df['a'].str.len()", "df.ffill()", "df.reindex([0, 1])",
                 "df.sub(1)", "s.dt.strftime('%Y')"):
        assert effects.mutated_by_call(expr(text)) == set(), text
    assert effects.mutated_by_call(expr("df.ffill(inplace=True)")) == {"df"}
    assert effects.mutated_by_call(expr("df.dropna(inplace=flag)")) == {"df"}  # may be true
    # `add` is pandas' when its value is used, a set's when it is called for its effect
    assert effects.mutated_by_call(expr("df.add(1)"), used=True) == set()
    assert effects.mutated_by_call(expr("seen.add(x)")) == {"seen"}


def test_drawing_changes_the_axes_drawn_on():
    assert effects.mutated_by_call(expr("ax.plot([1, 2])")) == {"ax"}
    assert effects.mutated_by_call(expr("ax.hist(v)")) == {"ax"}
    assert effects.mutated_by_call(expr("df.plot(ax=ax)")) == {"df", "ax"}
    assert effects.mutated_by_call(expr("sns.histplot(df, ax=ax)"), {"sns"}) == {"ax"}


def test_builtin_and_stdlib_functions_that_change_their_first_argument():
    modules = {"heapq", "bisect", "random", "np"}
    for text, changed in [("next(it)", {"it"}), ("setattr(o, 'v', x)", {"o"}), ("delattr(o, 'v')", {"o"}),
                          ("heapq.heappush(h, 3)", {"h"}), ("heapq.heapify(h)", {"h"}),
                          ("heappop(h)", {"h"}), ("bisect.insort(a, 3)", {"a"}),
                          ("random.shuffle(deck)", {"deck"}), ("rng.shuffle(deck)", {"rng", "deck"}),
                          ("dict.update(d, other)", {"d"}), ("np.add(a, b, out=a)", {"a"}),
                          ("np.add.at(a, [0], 1)", {"a"})]:
        assert effects.mutated_by_call(expr(text), modules) == changed, text
    assert effects.mutated_by_call(expr("queue.put(item)"), modules) == {"queue"}  # a method, not np.put
    heap = run(Heap(), "o = C()\nheappush(h, row)\nsetattr(o, 'v', row)")
    assert changed_with(heap, "row") == {"row", "h", "o"}  # both hold it now


def test_shallow_copies_hold_the_elements_of_what_they_copy():
    heap = run(Heap(), "c = list(rows)\ne = copy(rows)")
    heap.bind("d", effects.objects_of(heap, expr("copy.copy(rows)"), {"copy"}))
    for name in ("c", "d", "e"):
        changed = effects.store_changes(heap, stmt(f"{name}[0][0] = 9").targets[0], frozenset(), {"copy"})
        assert "rows" in heap.names_reaching(changed), name
    assert changed_with(heap, "c") == {"c"}  # `c.append(x)` changes the copy alone


def test_an_iterator_draws_on_what_it_is_given_and_yields_what_that_holds():
    heap = run(Heap(), "rows = [r1, r2]\nit = iter(rows)\nz = zip(it, other)\ng = (x for x in rows)\n"
                       "kept = list(it)\nc = Counter(x for x in rows)")
    # a change of rows reaches the lazy ones, not what was drawn out of them (a list, a Counter)
    assert changed_with(heap, "rows") == {"rows", "it", "z", "g"}
    for name in ("r1", "r2"):  # which keep what rows holds
        assert changed_with(heap, name) == {name, "rows", "it", "z", "g", "kept", "c"}
    assert "it" in heap.names_reaching(heap.drawn(heap.objects("z")))  # drawing from z advances it
    assert heap.drawn(heap.objects("rows")) == set()  # a list is no iterator


def test_lazy_views_defaultdicts_and_splits():
    heap = run(Heap(), "g = df.groupby('k')\nr = df['v'].rolling(2)\ncounts = defaultdict(int)\n"
                       "parts = np.split(a, 3)\nfor key, grp in g: pass")
    heap.bind("d2", effects.objects_of(heap, expr("collections.defaultdict(list)"), {"collections"}))
    heap.bind("p2", effects.objects_of(heap, expr("np.array_split(a, 3)"), {"np"}))
    # a change of df reaches its views (and what a loop over g may be: g itself, as `g['v']` may)
    assert changed_with(heap, "df") == {"df", "g", "r", "key", "grp"}
    assert "df" not in changed_with(heap, "g") | changed_with(heap, "grp")  # a view, a group change no df
    assert heap.of_kind(heap.objects("counts") | heap.objects("d2"), FILLING) == heap.objects("counts") | \
        heap.objects("d2")
    changed = effects.store_changes(heap, stmt("p2[0][:] = 5").targets[0], frozenset(), {"np"})
    assert "a" in heap.names_reaching(changed)


def test_partition_changes_a_numpy_array_and_only_reads_a_string():
    assert effects.mutated_by_call(expr("X.partition(3)")) == {"X"}  # sorts X in place
    assert effects.mutated_by_call(expr("X.partition(kth=k, axis=0)")) == {"X"}
    for text in ("line.partition(':')", "line.partition(f'{sep}')", "'a=b'.partition(sep)", "line.rpartition(':')",
                 "b.partition(b'=')", "X.argpartition(3)"):
        assert effects.mutated_by_call(expr(text)) == set(), text
    heap = run(Heap(), "X.partition(3)")
    assert effects.call_changes(heap, expr("X.partition(3)")) == set(heap.objects("X"))


def test_numpy_outputs_given_by_position_are_written():
    modules = {"np", "math", "torch"}
    for text, changed in [("np.multiply(X, 2, X)", {"X"}), ("np.add(a, b, a)", {"a"}), ("np.sqrt(X, X)", {"X"}),
                          ("np.clip(W, 0, 5, W)", {"W"}), ("np.round(a, 2, r)", {"r"}), ("np.dot(a, b, c)", {"c"}),
                          ("np.matmul(a, b, c)", {"c"}), ("np.sum(a, 0, None, s)", {"s"}),
                          ("np.cumsum(a, 0, None, s)", {"s"}), ("np.modf(x, f, i)", {"f", "i"}),
                          ("np.divmod(a, b, q, r)", {"q", "r"}), ("np.add.reduce(a, 0, None, s)", {"s"}),
                          ("np.add(a, b, out=(c,))", {"c"}), ("np.put_along_axis(a, i, 0, 1)", {"a"}),
                          ("np.copyto(dst, src)", {"dst"}), ("np.fill_diagonal(m, 0)", {"m"})]:
        assert effects.mutated_by_call(expr(text), modules) == changed, text
    # not an output: fewer arguments, another module's function, a method, a builtin
    for text in ("np.add(a, b)", "np.sum(a, 0, None)", "math.log(x, base)", "math.gcd(a, b, c)",
                 "torch.max(x, 1, keep)", "max(a, b, c)", "df.sum(0, None, s)", "np.sum.reduce(a, 0, None, s)"):
        assert effects.mutated_by_call(expr(text), modules) == set(), text
    heap = run(Heap(), "X = f()")
    assert effects.call_changes(heap, expr("np.multiply(X, 2, X)"), modules) == set(heap.objects("X"))


def test_model_and_frame_methods_that_only_read():
    for text in ("knn.kneighbors(X)", "knn.kneighbors_graph(X)", "knn.radius_neighbors(X)",
                 "enc.get_feature_names_out()", "pca.get_covariance()", "pca.get_precision()",
                 "m.score_samples(X)", "df.corrwith(s)", "X.argpartition(2)", "df.eval('a + b')"):
        assert effects.mutated_by_call(expr(text)) == set(), text
    # `inplace=` still changes; torch's `model.eval()` (no argument) leaves training mode
    for text in ("df.eval('c = a + b', inplace=True)", "df.query('a > 1', inplace=True)", "model.eval()"):
        assert effects.mutated_by_call(expr(text)) == {text.split(".")[0]}, text
    heap = run(Heap(), "r = df.eval('a + b')\nm = model.eval()")
    assert "r" not in changed_with(heap, "df") and "m" in changed_with(heap, "model")


def test_a_joined_or_unpacked_list_holds_the_elements_of_its_parts():
    heap = run(Heap(), "frames = [train, test]\nextra = [val]\nfdict = {'train': train, 'test': test}\n"
                       "a = [train] + [test, val]\nb = frames + extra\nc = [*frames, val]\nd = (*frames, val)\n"
                       "e = {**fdict, 'val': val}\nf = sum([[test], [val]], [])\ng = [val] * 2 + frames")
    for name in "abcdefg":
        assert {"test", "val"} <= changed_with(heap, name, deep=True) and \
            {"test", "val"} <= heap.names_reaching(heap.elements(heap.objects(name))), name
    # an array's sum holds nothing of the arrays; a number's sum is a number
    heap = run(Heap(), "Z = X + Y\nn = sum(xs, 0.0)\nw = [0.0] * k")
    assert changed_with(heap, "X") == {"X"} and changed_with(heap, "xs") == {"xs"}


def test_a_method_called_through_getattr_changes_its_object_as_the_method_call_does():
    """`getattr(l, "append")(1)`: the step was taken to change nothing, and later steps read the
    list and the array as they were."""
    from nbscale.compiler import compile_source

    p = compile_source([("import numpy as np\nl = []\na = np.zeros(3)", ["step:make"]),
                        ("getattr(l, 'append')(1)\ngetattr(a, 'fill')(4)", ["step:mutate"]),
                        ("n = len(l)\nv = a.sum()", ["step:read"])], name="nb")
    assert sorted(p.step("mutate").outputs) == ["a", "l"]
    assert p.step("read").sources == {"a": "mutate", "l": "mutate"}


def test_import_origins_name_what_each_import_binds():
    origins = [effects.import_origins(ast.parse(s).body[0]) for s in (
        "import joblib as jl, os.path", "from pickle import load as pl, dumps", "from . import x", "import a.b.c")]
    assert origins == [{"jl": "joblib", "os": "os"}, {"pl": "pickle.load", "dumps": "pickle.dumps"}, {}, {"a": "a"}]


@pytest.mark.parametrize(("code", "expected"), [
    ("jl.load(p)", True), ("pk.dump(o, f)", True), ("pl(f)", True), ("pd.read_pickle(p)", True),
    ("df.to_pickle(p)", True), ("np.load(p, allow_pickle=True)", True), ("np.load(p)", False),
    ("np.load(p, allow_pickle=False)", False), ("json.load(f)", False), ("load(f)", False),
    ("jl.Parallel(n)", False), ("obj.load(f)", False),
])
def test_calls_that_pickle_by_reference(code, expected):
    origins = {"jl": "joblib", "pk": "pickle", "pl": "pickle.load", "pd": "pandas", "np": "numpy", "json": "json"}
    call = ast.parse(code).body[0].value
    assert effects.pickles(call, origins, set(origins)) is expected
