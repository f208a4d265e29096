import ast

from nbscale.compiler.scopes import outer_parts, scope_facts


def facts_of(source):
    node = ast.parse(source).body[0]
    if isinstance(node, ast.Expr):
        node = node.value
    return scope_facts(node)


def test_function_reads_globals_not_locals_or_params():
    facts = facts_of("def f(a, *args, b=1, **kw):\n    c = a + b\n    return c + G + len(args)\n")
    assert facts.free == {"G", "len"}
    assert facts.params == ["a", "args", "b", "kw"]


def test_read_before_local_assignment_is_still_local():
    # Python decides scope per function: `x` is local everywhere in f (UnboundLocalError at run time)
    assert "x" not in facts_of("def f():\n    y = x\n    x = 1\n").free


def test_inner_function_free_names_resolve_in_outer_function():
    facts = facts_of("def f():\n    k = 1\n    def g():\n        return k + G\n    return g\n")
    assert facts.free == {"G"}


def test_nonlocal_and_global():
    facts = facts_of(
        "def f():\n    global counter\n    counter += 1\n"
        "    def g():\n        nonlocal_x = 1\n        return nonlocal_x\n    return g\n")
    assert "counter" in facts.free and facts.global_binds == {"counter"}
    nested = facts_of("def f():\n    x = 1\n    def g():\n        nonlocal x\n        x = 2\n    g()\n    return x\n")
    assert nested.free == set()


def test_nested_global_declaration_propagates():
    facts = facts_of("def f():\n    def g():\n        global STATE\n        STATE = 1\n    g()\n")
    assert facts.global_binds == {"STATE"}


def test_comprehension_variable_shadows_global():
    facts = facts_of("def f():\n    return [x for x in data if x > limit]\n")
    assert facts.free == {"data", "limit"}


def test_comprehension_first_iterable_is_outer():
    node = ast.parse("[x for x in data for y in x]").body[0].value
    assert [ast.unparse(p) for p in outer_parts(node)] == ["data"]
    assert scope_facts(node).free == set()


def test_walrus_in_comprehension_binds_outside():
    node = ast.parse("[y := v for v in data]").body[0].value
    assert scope_facts(node).walrus_binds == {"y"}


def test_a_name_a_walrus_of_the_comprehension_bound_before_is_no_free_read():
    # the condition runs before the element: `y` is the comprehension's own (it was undefined-name)
    facts = facts_of("[y for x in data if (y := x * 2) > 2]")
    assert facts.free == set() and facts.walrus_binds == {"y"}  # (`data` is read outside it)
    facts = facts_of("{k: (z := k) for k in data if z > 0}")  # read before its `:=` runs: the outer one
    assert facts.free == {"z"}


def test_a_walrus_in_a_comprehension_in_a_comprehension_binds_around_them_both():
    facts = facts_of("[[w for v in row if (w := v * 2)] for row in data]")
    assert facts.walrus_binds == {"w"} and facts.free == set()


def test_lambda_and_defaults():
    node = ast.parse("lambda r, s=S: r * k").body[0].value
    assert scope_facts(node).free == {"k"}
    assert [ast.unparse(p) for p in outer_parts(node)] == ["S"]


def test_class_body_names_are_not_visible_to_methods():
    facts = facts_of("class C(Base):\n    size = 3\n    def m(self):\n        return size + G\n")
    assert facts.free == {"size", "G"}


def test_mutation_of_global_and_params():
    facts = facts_of("def add(item, bag):\n    bag.append(item)\n    REGISTRY[item] = 1\n    LOG.x = 1\n")
    assert "bag" in facts.mutated_params  # `item` may be included: it now shares `bag`'s fate
    assert facts.mutated_free == {"REGISTRY", "LOG"}


def test_mutation_through_local_alias_of_param():
    facts = facts_of("def clean(frames):\n    for df in frames:\n        df['x'] = 0\n")
    assert facts.mutated_params == {"frames"}


def test_read_only_methods_do_not_mutate():
    facts = facts_of("def f(df):\n    return df.head().describe()\n")
    assert facts.mutated_params == set()


def test_exception_and_with_targets_are_local():
    facts = facts_of(
        "def f():\n    try:\n        pass\n    except ValueError as err:\n        print(err)\n"
        "    with open(p) as fh:\n        return fh.read()\n")
    assert facts.free == {"ValueError", "print", "open", "p"}


def test_dynamic_code_inside_function_is_reported():
    assert facts_of("def f():\n    return eval('x')\n").dynamic


def test_the_functions_of_a_class_body_have_its_dunder_class():
    # Python defines `__class__` for them (zero-argument `super()` uses it): it was a free name, read
    # where the class is used (`C()`), and an undefined-name error
    facts = facts_of("class C:\n    f = lambda self: __class__\n    def m(self):\n        def inner():\n"
                     "            return __class__.__name__, W\n        return inner\n")
    assert facts.free == {"W"}
    # a function of no class body, a comprehension of one and the body itself read the name
    assert facts_of("def f():\n    return __class__\n").free == {"__class__"}
    assert facts_of("class C:\n    q = [__class__ for _ in range(1)]\n").free == {"__class__", "range"}
    assert facts_of("class C:\n    q = __class__\n").free == {"__class__"}
