"""Effects of single statements and expressions: which names they bind, which objects they
change, and which objects their values may be or hold (on a `heap.Heap`).

The rules are deliberately conservative where being wrong would change results (a method call
on an object may modify it unless the method is known to be read-only) and optimistic where
being conservative would serialise every pipeline (passing an object to a third-party
function is assumed not to modify it, except for known in-place functions). "May *hold* X" is
not "may *be* X": `m.fit(X, y)` changes m and makes it hold X, but changes X only if a later
mutation reaches through m (`m.data_[0] = 0`).
"""

from __future__ import annotations

import ast

# Methods that never modify their receiver (pandas, numpy, scikit-learn, str, dict, list, set,
# pathlib). Any other method call may modify it; `inplace=True` always does.
READ_ONLY_METHODS = frozenset("""
    copy deepcopy head tail describe info mean median sum min max std var sem count nunique
    unique value_counts groupby agg aggregate apply applymap map merge join concat astype assign
    to_numpy to_list tolist to_dict to_csv to_parquet to_json to_pickle to_string to_html
    to_records to_frame to_series to_markdown predict predict_proba predict_log_proba
    decision_function score transform inverse_transform get_params keys values items get
    index find rfind split rsplit strip lstrip rstrip lower upper title capitalize format
    format_map replace startswith endswith encode decode reshape ravel flatten dot round abs
    isna isnull notna notnull fillna dropna drop rename sort_values sort_index reset_index
    set_index query filter select_dtypes sample nlargest nsmallest corr cov cumsum cumprod
    cummax cummin diff pct_change shift rolling expanding ewm resample pivot pivot_table melt
    stack unstack iterrows itertuples items iteritems plot hist boxplot all any argmax argmin
    argsort idxmax idxmin clip where mask duplicated drop_duplicates explode equals isin
    between memory_usage first last nth size prod quantile rank mode skew kurt squeeze
    transpose swapaxes nonzero searchsorted take compress repeat tobytes view item isdigit
    isalpha isalnum isidentifier zfill center ljust rjust partition rpartition splitlines
    issubset issuperset union intersection difference symmetric_difference isdisjoint
    exists is_file is_dir read_text read_bytes glob rglob iterdir resolve with_suffix
    with_name joinpath relative_to stat open fetchall fetchone
    """.split())

# Functions that modify their positional arguments in place.
IN_PLACE_FUNCTIONS = frozenset({"shuffle", "copyto", "put", "place", "putmask", "fill_diagonal"})

# Calls that hide reads and writes from static analysis.
DYNAMIC_CALLS = frozenset({"exec", "eval", "globals", "locals", "vars", "__import__"})

# Calls whose result iterates over their arguments' elements (loop targets alias them).
ITERATING_CALLS = frozenset({"enumerate", "zip", "reversed", "iter", "list", "tuple", "sorted",
                             "filter", "map"})

# Methods of built-in containers: they change the container, never the objects it holds.
CONTAINER_METHODS = frozenset("""
    append extend insert pop remove clear sort reverse update setdefault popitem add discard
    difference_update intersection_update symmetric_difference_update appendleft extendleft
    popleft rotate
    """.split())

# Methods that store their arguments as parts the receiver owns (its own methods change them).
OWNING_METHODS = frozenset({"set_params", "add_module", "register_module", "register_buffer",
                            "register_parameter", "add_param_group"})

# Methods returning their receiver (`m2 = m1.fit(X, y)` is m1) or a part of it.
RETURNS_SELF = frozenset({"fit", "partial_fit", "set_params", "set_output", "train", "eval", "to",
                          "cuda", "cpu", "requires_grad_"})
RETURNS_PART = frozenset({"parameters", "named_parameters", "buffers", "named_buffers", "children",
                          "named_children", "modules", "named_modules", "state_dict", "values",
                          "items", "keys", "view", "reshape", "ravel", "transpose", "swapaxes",
                          "squeeze", "unsqueeze"})

# Calls whose unpacked results refer to each other (a figure and its axes): one object for all.
SHARED_RESULTS = frozenset({"subplots", "subplot_mosaic"})

# Constructors (capitalised callees, and these factories) hold their arguments; these clone the
# estimators they are given before fitting, so their own methods never change them.
WRAPPING_FACTORIES = frozenset({"make_pipeline", "make_union"})
CLONING_CONSTRUCTORS = frozenset("""
    GridSearchCV RandomizedSearchCV HalvingGridSearchCV HalvingRandomSearchCV VotingClassifier
    VotingRegressor StackingClassifier StackingRegressor BaggingClassifier BaggingRegressor
    AdaBoostClassifier AdaBoostRegressor OneVsRestClassifier OneVsOneClassifier
    MultiOutputClassifier MultiOutputRegressor CalibratedClassifierCV ColumnTransformer
    TransformedTargetRegressor RFE RFECV SelectFromModel SequentialFeatureSelector
    """.split())


def root_name(expr: ast.AST) -> str | None:
    """`df` for `df`, `df.a`, `df["x"].loc[0]`; None when the chain starts at a call or literal."""
    while isinstance(expr, (ast.Attribute, ast.Subscript, ast.Starred)):
        expr = expr.value
    return expr.id if isinstance(expr, ast.Name) else None


def target_names(target: ast.AST) -> list[str]:
    """Names an assignment target binds (not the ones it mutates)."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for elt in target.elts for n in target_names(elt)]
    if isinstance(target, ast.Starred):
        return target_names(target.value)
    return []


def mutated_by_target(target: ast.AST) -> set[str]:
    """`df["x"] = …`, `obj.attr = …`, `del d[k]`: the root object is modified in place."""
    if isinstance(target, (ast.Attribute, ast.Subscript)):
        name = root_name(target)
        return {name} if name else set()
    if isinstance(target, (ast.Tuple, ast.List)):
        return set().union(*(mutated_by_target(elt) for elt in target.elts))
    if isinstance(target, ast.Starred):
        return mutated_by_target(target.value)
    return set()


def target_load_parts(target: ast.AST) -> list[ast.AST]:
    """Expressions evaluated (read) while storing into `target`."""
    if isinstance(target, ast.Attribute):
        return [target.value]
    if isinstance(target, ast.Subscript):
        return [target.value, target.slice]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [part for elt in target.elts for part in target_load_parts(elt)]
    if isinstance(target, ast.Starred):
        return target_load_parts(target.value)
    return []


def import_names(node: ast.Import | ast.ImportFrom) -> list[str]:
    names = []
    for alias in node.names:
        if alias.name == "*":
            continue
        names.append(alias.asname or alias.name.split(".")[0])
    return names


def callee_name(call: ast.Call) -> str | None:
    func = call.func
    kind = type(func)
    if kind is ast.Name:
        return func.id
    if kind is ast.Attribute:
        return func.attr
    return None


def mutated_by_call(call: ast.Call, modules=frozenset()) -> set[str]:
    """Names whose objects this call may modify in place (without knowing the callee's code).

    `modules`: names bound to imported modules; `np.log(a)` changes neither `np` nor `a`.
    """
    mutated = set()
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr != "pipe":  # `df.pipe(f)` is `f(df)`
        receiver = root_name(func.value)
        if receiver and receiver not in modules and (
                func.attr not in READ_ONLY_METHODS or has_inplace_flag(call)):
            mutated.add(receiver)
    if callee_name(call) in IN_PLACE_FUNCTIONS:
        mutated |= {n for n in map(root_name, call.args) if n}
    return mutated


def has_inplace_flag(call: ast.Call) -> bool:
    return any(
        k.arg == "inplace" and isinstance(k.value, ast.Constant) and k.value.value is True
        for k in call.keywords
    )


def is_dynamic_call(call: ast.Call) -> bool:
    if not isinstance(call.func, ast.Name) or call.func.id not in DYNAMIC_CALLS:
        return False
    return call.func.id != "vars" or not call.args




def depth(expr: ast.AST) -> int:
    """How many attribute/subscript levels lie between `expr` and its root name."""
    levels = 0
    while isinstance(expr, (ast.Attribute, ast.Subscript, ast.Starred)):
        levels += not isinstance(expr, ast.Starred)
        expr = expr.value
    return levels


# --- values: which objects an expression may be ---------------------------------------------


# Expression node types by what their value may be. The functions here that run for every
# expression of every cell ask for a node's exact type (the parser makes no subclasses): a lookup
# instead of a chain of isinstance calls.
_PARTS = frozenset({ast.Attribute, ast.Subscript, ast.Starred})
_MADE = frozenset({ast.Tuple, ast.List, ast.Set, ast.Dict, ast.Call})


def objects_of(heap, expr: ast.AST | None, modules=frozenset()) -> frozenset[str]:
    """Objects the value of `expr` may be; empty for a new object of unknown contents."""
    if expr is None:
        return frozenset()
    kind = type(expr)
    if kind is ast.Name:
        return heap.objects(expr.id)
    if kind in _PARTS:
        return part_objects(heap, expr, modules)
    if kind in _MADE:
        # one object per evaluation site, however often the walkers ask
        return heap.result(expr, lambda: _made_objects(heap, expr, modules))
    if kind is ast.IfExp:
        return objects_of(heap, expr.body, modules) | objects_of(heap, expr.orelse, modules)
    if kind is ast.BoolOp:
        return frozenset().union(*(objects_of(heap, v, modules) for v in expr.values))
    if kind is ast.NamedExpr:
        return objects_of(heap, expr.value, modules)
    if is_immutable_literal(expr):
        return heap.result(expr, lambda: frozenset({heap.fresh_immutable("literal")}))
    return frozenset()


def is_immutable_literal(expr: ast.AST) -> bool:
    """`3`, `-0.5`, `"text"`, `f"{x}"`, `b"."`, `True`, `None`: a value no code changes in place."""
    if type(expr) is ast.UnaryOp and type(expr.op) in _SIGNS:
        expr = expr.operand
    return type(expr) in _LITERALS


_SIGNS = frozenset({ast.USub, ast.UAdd})
_LITERALS = frozenset({ast.Constant, ast.JoinedStr})


def _made_objects(heap, expr, modules):
    if isinstance(expr, ast.Call):
        return call_result(heap, expr, modules)
    parts = [*expr.keys, *expr.values] if isinstance(expr, ast.Dict) else expr.elts
    held = [objects_of(heap, e, modules) for e in parts if e is not None]
    return frozenset({heap.new_container(type(expr).__name__.lower(), set().union(*held))})


def part_objects(heap, expr: ast.AST, modules=frozenset()) -> frozenset[str]:
    """`x.a[0]`: a part of x (its own object) or something x holds, as deep as the chain goes;
    the chain may start at a call (`Model().fit`)."""
    base = expr
    while isinstance(base, (ast.Attribute, ast.Subscript, ast.Starred)):
        base = base.value
    if isinstance(base, ast.Name):
        if base.id in modules:
            return frozenset()
        objects = heap.objects(base.id)
    else:
        objects = objects_of(heap, base, modules)
    return heap.elements(objects, depth(expr)) if objects else frozenset()


def call_result(heap, call: ast.Call, modules=frozenset()) -> frozenset[str]:
    func = call.func
    if isinstance(func, ast.Attribute) and not _on_module(func.value, modules):
        if func.attr in RETURNS_SELF:
            return part_objects(heap, func.value, modules)
        if func.attr in RETURNS_PART:
            return heap.elements(part_objects(heap, func.value, modules))
    name = callee_name(call)
    if name and (name[:1].isupper() or name in WRAPPING_FACTORIES):
        made = heap.fresh(name)
        heap.hold([made], argument_objects(heap, call, modules), owned=name not in CLONING_CONSTRUCTORS)
        return frozenset({made})
    return frozenset()


def _on_module(expr, modules) -> bool:
    """`np.random`, `plt`: a chain rooted at an imported module (never a tracked object)."""
    root = root_name(expr)
    return root is not None and root in modules


def argument_objects(heap, call: ast.Call, modules=frozenset()) -> set[str]:
    values = [*call.args, *(k.value for k in call.keywords)]
    return set().union(*(objects_of(heap, v, modules) for v in values))


# --- mutations: which objects a call or a store changes -------------------------------------


def call_changes(heap, call: ast.Call, modules=frozenset()) -> set[str]:
    """Objects the call may change (and the references it makes its receiver hold).

    A container method (`data.append(x)`) changes the container; any other non-read-only method
    (`m.fit(X, y)`, `opt.step()`) changes the receiver and what it owns, and makes it hold its
    arguments as *given*: they are not changed.
    """
    changed = set()
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr != "pipe" and not _on_module(func.value, modules):
        inplace = has_inplace_flag(call)
        if func.attr not in READ_ONLY_METHODS or inplace:
            receiver = part_objects(heap, func.value, modules)
            args = argument_objects(heap, call, modules)
            if func.attr in CONTAINER_METHODS or func.attr in READ_ONLY_METHODS:
                heap.hold(receiver, heap.elements(args))
                changed |= receiver
            else:
                heap.hold(receiver, args, owned=func.attr in OWNING_METHODS)
                changed |= heap.owned_reach(receiver)
    if callee_name(call) in IN_PLACE_FUNCTIONS:
        changed |= set().union(*(objects_of(heap, a, modules) for a in call.args))
    return changed


def store_changes(heap, target: ast.AST, value: frozenset[str], modules=frozenset()) -> set[str]:
    """`x[k] = v`, `x.a = v`, `m.data_[0] = v`: the object written into now holds `value`."""
    written = part_objects(heap, target.value, modules)
    heap.hold(written, value)
    return set(written)


def loop_sources(target: ast.AST, iterable: ast.AST) -> list[tuple[ast.AST, list[ast.AST]]]:
    """(target, expressions whose elements it gets) for `for TARGET in ITERABLE`.

    `for w_i, x_i in zip(w, x)` pairs w_i with w and x_i with x; `for i, v in enumerate(x)` and
    `for k, v in d.items()` tie only v (i and k are new objects); anything else ties the whole
    target to the iterable's elements.
    """
    func = iterable.func if isinstance(iterable, ast.Call) else None
    parts = target.elts if isinstance(target, (ast.Tuple, ast.List)) else None
    if parts is not None and isinstance(func, ast.Name):
        if func.id == "zip" and len(parts) == len(iterable.args) and not iterable.keywords:
            return [(t, [a]) for t, a in zip(parts, iterable.args)]
        if func.id == "enumerate" and len(parts) == 2 and iterable.args:
            return [(parts[0], []), *loop_sources(parts[1], iterable.args[0])]
    if parts is not None and len(parts) == 2 and isinstance(func, ast.Attribute) and func.attr == "items":
        return [(parts[0], []), (parts[1], [func.value])]
    return [(target, iterated(iterable))]


def iterated(expr: ast.AST) -> list[ast.AST]:
    """Expressions whose elements a loop over `expr` gets."""
    if isinstance(expr, ast.Call):
        func = expr.func
        if isinstance(func, ast.Name) and func.id in ITERATING_CALLS:
            return list(expr.args)
        if isinstance(func, ast.Attribute) and func.attr in {"values", "items"}:
            return [func.value]
        return []
    return [expr]


def elements_of(heap, exprs, modules=frozenset()) -> frozenset[str]:
    """What a loop over each of `exprs` may bind its target to."""
    return frozenset().union(*(heap.elements(objects_of(heap, e, modules)) for e in exprs))


def unpacked(heap, target, objects, value=None, modules=frozenset()):
    """(part, objects) for each part of a tuple target: `a, b = b, a` pairs them up; any other
    value gives each part what the value holds (or a new object when that is unknown)."""
    parts = target.elts
    literal = isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(parts)
    if literal and not any(isinstance(e, ast.Starred) for e in (*parts, *value.elts)):
        values = [objects_of(heap, v, modules) for v in value.elts]  # all before any is bound
        return list(zip(parts, values))
    if not objects and isinstance(value, ast.Call) and callee_name(value) in SHARED_RESULTS:
        objects = frozenset({heap.fresh(callee_name(value))})  # `fig, ax = plt.subplots()`
        return [(part, objects) for part in parts]
    held = heap.elements(objects) if objects else frozenset()
    return [(part, held) for part in parts]


def augmented_changes(heap, node: ast.AugAssign, modules=frozenset()) -> set[str]:
    """`x += v` changes x's object in place (a list, an array) and may make it hold v's elements."""
    changed = heap.objects(node.target.id)
    heap.hold(changed, heap.elements(objects_of(heap, node.value, modules)))
    return set(changed)
