import pytest
from test_dataflow import _run_steps_latest_first, _top_to_bottom

from nbscale.compiler import compile_source
from nbscale.compiler.analysis import analyse_cells


def facts(*sources, known=None):
    return analyse_cells(list(enumerate(sources)), known)


def test_reads_before_binds_in_order():
    f = facts("y = x + 1\nx = 2\nz = x")
    assert set(f.reads) == {"x"} and f.binds == {"x", "y", "z"}
    assert (f.reads["x"].cell, f.reads["x"].line, f.reads["x"].col) == (0, 1, 5)


def test_reads_span_cells_in_order():
    f = facts("a = 1", "b = a + c")
    assert set(f.reads) == {"c"} and f.reads["c"].cell == 1


def test_augmented_assignment_reads_and_binds():
    f = facts("total += 1")
    assert "total" in f.reads and "total" in f.binds


def test_conditional_binding_makes_later_read_optional():
    f = facts("if flag:\n    x = 1\nprint(x)")
    assert f.reads["x"].optional and not f.reads["flag"].optional


def test_for_while_try_with_targets():
    f = facts("for i in items:\n    pass\n"
              "with open(p) as fh:\n    text = fh.read()\n"
              "try:\n    v = 1\nexcept KeyError as err:\n    pass\n")
    assert {"i", "fh", "text", "v", "err"} <= f.binds
    assert {"items", "p"} <= set(f.reads)


def test_walrus_binds_at_module_level_even_in_comprehension():
    f = facts("[y := v for v in data]\nz = y")
    assert "y" in f.binds and "v" not in f.binds and "y" not in f.reads


def test_a_walrus_in_a_comprehensions_condition_binds_what_its_element_reads():
    # `[y for x in data if (y := f(x))]`, a common filter-and-keep idiom, was an undefined-name error
    f = facts("data = [1, 2]\nys = [y for x in data if (y := x * 2) > 2]\nlast = y")
    assert "y" not in f.reads and {"y", "ys", "last"} <= f.binds
    f = facts("flat = [[w for v in row if (w := v * 2)] for row in data]\nlast = w")  # (`w` was the outer one's)
    assert "w" not in f.reads and {"w", "flat", "last"} <= f.binds


def test_comprehension_variable_does_not_leak_or_shadow():
    f = facts("x = 5\nsq = [x * x for x in range(3)]\nw = [k for k in ks]")
    assert "x" not in f.reads and "k" not in f.binds and "ks" in f.reads


def test_lambda_reads_happen_at_use():
    f = facts("df2 = df.apply(lambda r: r * factor)")
    assert {"df", "factor"} <= set(f.reads)


def test_function_body_reads_count_where_called_not_where_defined():
    f = facts("def g():\n    return LATER + 1\n", "LATER = 3\nres = g()")
    assert "LATER" not in f.reads  # bound before the call
    f = facts("def g():\n    return LATER + 1\n", "res = g()")
    assert f.reads["LATER"].cell == 1


def test_known_functions_from_earlier_code_pull_their_globals():
    prelude = analyse_cells([(0, "def scaled(v):\n    return v * SCALE\n")])
    f = analyse_cells([(3, "out = scaled(2)")], prelude.callables)
    assert "SCALE" in f.reads and f.reads["SCALE"].cell == 3


def test_functions_calling_functions_transitively():
    f = facts("def a():\n    return K\n", "def b():\n    return a() + 1\n", "r = b()")
    assert "K" in f.reads


def test_recursive_function_terminates():
    f = facts("def fact(n):\n    return 1 if n < 2 else n * fact(n - 1)\nv = fact(N)")
    assert "N" in f.reads and "fact" not in f.reads


def test_function_with_global_statement_binds_when_called():
    f = facts("def bump():\n    global counter\n    counter = counter + 1\n", "bump()")
    assert "counter" in f.binds and "counter" in f.reads


def test_function_mutating_parameter_mutates_argument():
    f = facts("def add_col(frame):\n    frame['x'] = 1\n", "add_col(train)")
    assert "train" in f.mutates


def test_class_body_runs_now_methods_later():
    f = facts("class Model(Base):\n    k = K\n    def predict(self):\n        return W\n")
    assert {"Base", "K"} <= set(f.reads) and "W" not in f.reads
    f = facts("class Model:\n    def predict(self):\n        return W\n", "m = Model()")
    assert "W" in f.reads


def test_a_method_reading_dunder_class_reads_no_global():
    source = ("class C(Base):\n    def name(self):\n        return __class__.__name__\n"
              "    def __init__(self):\n        super().__init__()\n")
    f = facts(source, "print(C().name())")
    assert "__class__" not in f.reads and "Base" in f.reads
    p = compile_source([("class Base:\n    pass", ["functions"]), (source + "print(C().name())", ["step:a"])])
    assert not p.diagnostics
    p = compile_source([("def name():\n    return __class__.__name__\nname()", ["step:a"])])
    assert [(d.code, d.line) for d in p.diagnostics] == [("undefined-name", 3)]  # (no class: Python's NameError)


def test_shadowing_in_function_and_comprehension_scopes():
    f = facts("def f(data):\n    return [data for data in data]\n", "r = f(1)")
    assert "data" not in f.reads


def test_in_place_mutations_recorded():
    f = facts("df['x'] = 1\nmodel.fit(X, y)\nobj.attr = 2\ndel table['k']\nlst += [1]\ndf.head()")
    assert {"df", "model", "obj", "table", "lst"} <= set(f.mutates)
    assert {"X", "y"}.isdisjoint(f.mutates)


def test_imported_modules_are_not_mutated():
    f = facts("import numpy as np\nnp.random.seed(0)")
    assert "np" not in f.mutates


def test_del_removes_a_name():
    f = facts("del x")
    assert "x" in f.deletes and "x" in f.reads
    f = facts("x = 1\ndel x\nx = 2")
    assert "x" not in f.deletes


def test_a_name_is_surely_bound_after_an_unconditional_binding_until_deleted():
    assert "x" not in facts("if c:\n    x = 1\nx = 2\nprint(x)").reads
    assert "x" not in facts("x = 1\nif c:\n    x = 2\nprint(x)").reads  # still surely bound
    f = facts("x = 1\ndel x\nif c:\n    x = 3\nprint(x)")
    assert f.reads["x"].optional and (f.reads["x"].line, "x") == (5, *f.binds)
    assert "x" not in facts("x = 1\ndel x\nx = 3\nprint(x)").reads


def test_the_names_bound_are_the_keys_of_their_bind_sites_not_a_set_besides():
    f = facts("a = 1\nif c:\n    b = a\nfor i in []: pass")
    assert f.binds == set(f.bind_sites) == {"a", "b", "i"} and not isinstance(f.binds, (set, frozenset))


def test_star_import_and_dynamic_calls_are_reported():
    f = facts("from os.path import *\nexec('a = 1')\nv = eval('1')\ng = globals()")
    assert [u.name for u in f.dynamic] == ["*", "exec", "eval", "globals"]


def test_ipython_syntax_is_analysed():
    f = facts("%time y = x + 1\nfiles = !ls\n!echo $HOME")
    assert "x" in f.reads and {"y", "files"} <= f.binds


def test_cell_magic_body():
    f = facts("%%capture out\nprint(v)\nw = 2")
    assert {"out", "w"} <= f.binds and "v" in f.reads
    f = facts("%%bash\necho $undefined_thing")
    assert not f.reads and not f.binds


def test_syntax_error_location():
    f = facts("x = 1", "%time y = 1\n\nz = (")
    assert f.syntax_errors and f.syntax_errors[0][:2] == (1, 3)


def test_what_pythons_compiler_refuses_at_module_level_is_a_syntax_error():
    for code, message in [("return 1", "'return' outside function"), ("x = yield 2", "'yield' outside function"),
                          ("if x:\n    break", "'break' outside loop"),
                          ("for a in b:\n    pass\nelse:\n    continue", "'continue' not properly in loop"),
                          ("nonlocal q", "nonlocal declaration not allowed at module level")]:
        f = facts("x = 1", code)
        assert [(cell, message_) for cell, _, _, message_ in f.syntax_errors] == [(1, message)], code
    fine = facts("for a in b:\n    while a:\n        break\n    continue\n"
                 "def g():\n    yield 1\n    return 2\nh = lambda: (yield)\nawait thing()")
    assert not fine.syntax_errors


def test_match_statement_captures():
    f = facts("match cmd:\n    case {'go': where, **rest}:\n        pass\n    case [first, *others]:\n        pass\n")
    assert {"where", "rest", "first", "others"} <= f.binds and "cmd" in f.reads


def test_decorators_and_defaults_are_read_at_definition():
    f = facts("@register(REG)\ndef f(x=DEFAULT):\n    return x\n")
    assert {"register", "REG", "DEFAULT"} <= set(f.reads)


def test_a_site_keeps_no_node_and_finds_its_code_again():
    f = facts("import os\nx = [1,\n     2]\nfor item in x:\n    x.append(item)")
    site = f.bind_sites["x"]
    assert (site.cell, site.line, site.node) == (1 - 1, 2, None)
    assert site.code == "x = [1, 2]"
    assert f.bind_sites["item"].code == "item" and f.bind_sites["os"].code == "import os"
    assert [s.code for _, s in f.change_sites] == ["x.append(item)"]


def test_a_site_with_small_parts_is_one_short_number_and_a_bigger_one_a_long_number():
    cells = ["a = 1", "(b,\n c) = 1, 2", "if a:\n    d = 2", "v = 0; " * 40 + "w = 1",  # w: column 280
             "(e,\n\n\n\n\n\n\n\n\n f) = 1, 2"]  # f: 9 lines after its statement's first
    cells += [f"g{i} = {i}" for i in range(20)]  # the 17th cell on: past the 16 places of a short site
    f = facts(*cells)
    short = {name for name, value in f.bind_sites._sites.items() if value < 2 ** 60}
    assert short == {"a", "b", "c", "d", "v", "e", *(f"g{i}" for i in range(11))}
    sites = {name: (site.cell, site.line, site.code) for name, site in f.bind_sites.items()}
    assert sites["a"] == (0, 1, "a = 1") and sites["c"] == (1, 2, "b, c = (1, 2)")
    assert sites["d"] == (2, 2, "d = 2") and sites["w"] == (3, 1, "w = 1") and sites["v"] == (3, 1, "v = 0")
    assert sites["e"] == (4, 1, "e, f = (1, 2)") and sites["f"] == (4, 10, "e, f = (1, 2)")
    assert sites["g10"] == (15, 1, "g10 = 10") and sites["g19"] == (24, 1, "g19 = 19")


def test_del_of_a_tuple_or_list_deletes_each_name():
    f = facts("del (a, b)\ndel [c, d[0]]")
    assert {"a", "b", "c"} <= f.deletes and not {"a", "b", "c"} & set(f.binds)
    assert {"a", "b", "c", "d"} <= set(f.reads) and "d" in f.mutates


def test_a_del_on_some_paths_leaves_the_name_maybe_bound():
    f = facts("if flag:\n    del x")
    assert "x" not in f.deletes and f.maybe_binds == {"x"} and "x" in f.reads
    f = facts("if flag:\n    y = 2\nz = 1\ntry:\n    pass\nexcept Exception as err:\n    pass")
    assert f.maybe_binds == {"y", "err"}
    assert facts("y = 1\nif flag:\n    y = 2").maybe_binds == set()  # surely bound before


def test_map_with_a_function_that_changes_its_parameter_changes_the_elements():
    f = facts("def add_feat(d):\n    d['w'] = 1\ntrain, test = {}, {}", "list(map(add_feat, [train, test]))")
    assert f.heap.names_reaching(f.changed) >= {"train", "test"}


# A function of the notebook returning a part of its parameter, or a new container holding it: a
# later change through the result reaches the argument, and a change of the argument the result.
RETURNS_OF_PARAMETERS = {
    "an item": ("def section(cfg, k):\n    return cfg[k]",
                ["cfg = {'model': {'lr': 0.1}}\nm = section(cfg, 'model')", "m['depth'] = 3",
                 "n = len(cfg['model'])"]),
    "an item changed through the argument": ("def section(cfg, k):\n    return cfg[k]",
                                             ["cfg = {'model': {'lr': 0.1}}\nm = section(cfg, 'model')",
                                              "cfg['model']['depth'] = 3", "n = len(m)"]),
    "a part some levels down": ("def last(p):\n    return p.steps[-1][1]",
                                ["class P:\n    def __init__(self, steps):\n        self.steps = steps\n"
                                 "p = P([('a', [0]), ('b', [1])])\nb = last(p)", "p.steps[-1][1].append(2)",
                                 "n = len(b)"]),
    "an attribute, by keyword": ("def weights(obj=None):\n    return obj.w",
                                 ["class O:\n    w = None\no = O()\no.w = [0]\nw = weights(obj=o)", "w.append(1)",
                                  "n = len(o.w)"]),
    "a new dict holding it": ("def init_state(w):\n    return {'w': w, 'step': 0}",
                              ["w = [0.0]\nstate = init_state(w)", "state['w'][0] += 1.0", "n = w[0]"]),
    "a tuple holding it": ("def pair(a, b):\n    return (a, b) if a else [b]",
                           ["a, b = [1], [2]\nt = pair(a, b)", "t[1].append(3)", "n = len(b)"]),
    "a lambda's list": ("wrap = lambda x: [x]",
                        ["x = [1]\nw = wrap(x)", "w[0].append(2)", "n = len(x)"]),
    "a method returning a part of its instance": (
        "class Tracker:\n    def __init__(self):\n        self._h = []\n    def log(self, v):\n"
        "        self._h.append(v)\n    def history(self):\n        return self._h",
        ["tracker = Tracker()\nhist = tracker.history()", "tracker.log(0.5)", "n = len(hist)"]),
    "a method returning its instance": (
        "class Box:\n    def __init__(self):\n        self.items = []\n    def me(self):\n        return self",
        ["box = Box()\nsame = box.me()", "same.items.append(1)", "n = len(box.items)"]),
}


@pytest.mark.parametrize("name", RETURNS_OF_PARAMETERS)
def test_a_result_holding_or_part_of_a_parameter_shares_the_arguments_objects(name):
    functions, steps = RETURNS_OF_PARAMETERS[name]
    pipeline = compile_source([(functions, ["functions"]),
                               *((code, [f"step:s{i}"]) for i, code in enumerate(steps))])
    assert not pipeline.has_errors, pipeline.diagnostics
    assert "s1" in pipeline.step("s2").after, name
    expected = _top_to_bottom([functions, *steps])
    actual = _run_steps_latest_first(pipeline)
    assert actual["n"] == expected["n"], name


def test_siblings_giving_the_same_data_to_a_helper_returning_a_part_of_it_stay_parallel():
    pipeline = compile_source([
        ("def section(cfg, k):\n    return cfg[k]\ndef wrap(x):\n    return {'x': x}", ["functions"]),
        ("cfg = {'a': [1], 'b': [2]}", ["step:make"]),
        ("a = len(section(cfg, 'a'))\nwa = wrap(cfg)", ["step:one"]),
        ("b = len(section(cfg, 'b'))\nwb = wrap(cfg)", ["step:two"]),
        ("c = sum(section(cfg, 'a'))", ["step:three"]),
    ])
    assert [pipeline.step(s).after for s in ("one", "two", "three")] == [["make"]] * 3


def test_a_subclass_runs_its_bases_methods_when_used_not_when_defined():
    # `class Sub(Clip)` ran none of Clip's methods, but counted their reads as made there: a
    # parameter one reads was undefined in the functions cell, which runs before the parameters
    base = "class Clip:\n    def scaled(self):\n        return WINDOW * 10\n"
    assert "WINDOW" not in facts(base + "class Sub(Clip):\n    pass\n").reads
    assert "WINDOW" in facts(base, "class Sub(Clip):\n    pass\n", "v = Sub().scaled()").reads
    p = compile_source([(base + "class Sub(Clip):\n    pass\n", ["functions"]), ("WINDOW = 2", ["parameters"]),
                        ("class Sub2(Clip):\n    pass\nv = Sub().scaled()", ["step:a"]),
                        ("w = Sub2().scaled()", ["step:b"])])
    assert not p.diagnostics and p.step("a").parameters == ["WINDOW"] and p.step("b").parameters == ["WINDOW"]
