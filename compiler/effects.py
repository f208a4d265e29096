"""Effects of single statements and expressions: which names they bind, mutate or alias.

The rules are deliberately conservative where being wrong would change results (a method call
on an object may modify it unless the method is known to be read-only) and optimistic where
being conservative would serialise every pipeline (passing an object to a third-party
function is assumed not to modify it, except for known in-place functions).
"""

from __future__ import annotations

import ast

# Methods that never modify their receiver (pandas, numpy, scikit-learn, str, dict, list, set,
# pathlib). Any other method call may modify it; `inplace=True` always does.
READ_ONLY_METHODS = frozenset("""
    copy deepcopy head tail describe info mean median sum min max std var sem count nunique
    unique value_counts groupby agg aggregate apply applymap map merge join concat astype
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
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def mutated_by_call(call: ast.Call, modules=frozenset()) -> set[str]:
    """Names whose objects this call may modify in place (without knowing the callee's code).

    `modules`: names bound to imported modules; `np.log(a)` changes neither `np` nor `a`.
    """
    mutated = set()
    func = call.func
    if isinstance(func, ast.Attribute):
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


def value_names(expr: ast.AST | None) -> set[str]:
    """Names whose objects the value of `expr` may be, or contain."""
    if expr is None:
        return set()
    if isinstance(expr, ast.Name):
        return {expr.id}
    if isinstance(expr, (ast.Attribute, ast.Subscript, ast.Starred)):
        name = root_name(expr)
        return {name} if name else set()
    if isinstance(expr, (ast.Tuple, ast.List, ast.Set)):
        return set().union(*map(value_names, expr.elts))
    if isinstance(expr, ast.Dict):
        return set().union(*map(value_names, expr.values))
    if isinstance(expr, ast.IfExp):
        return value_names(expr.body) | value_names(expr.orelse)
    if isinstance(expr, ast.NamedExpr):
        return {expr.target.id} | value_names(expr.value)
    return set()


def iterated_names(expr: ast.AST) -> set[str]:
    """Names whose elements a `for` loop over `expr` binds to its target."""
    if isinstance(expr, ast.Call):
        func = expr.func
        if isinstance(func, ast.Name) and func.id in ITERATING_CALLS:
            return set().union(*map(value_names, expr.args))
        if isinstance(func, ast.Attribute) and func.attr in {"values", "items"}:
            return value_names(func.value)
        return set()
    return value_names(expr)


def loop_aliases(target: ast.AST, iterable: ast.AST) -> list[tuple[list[str], set[str]]]:
    """(target names, names whose elements they get) for `for TARGET in ITERABLE`.

    `for w_i, x_i in zip(w, x)` pairs w_i with w and x_i with x; `for i, v in enumerate(x)` and
    `for k, v in d.items()` tie only v; anything else ties every target name to every name.
    """
    func = iterable.func if isinstance(iterable, ast.Call) else None
    parts = target.elts if isinstance(target, (ast.Tuple, ast.List)) else None
    if parts is not None and isinstance(func, ast.Name):
        if func.id == "zip" and len(parts) == len(iterable.args) and not iterable.keywords:
            return [(target_names(t), value_names(a)) for t, a in zip(parts, iterable.args)]
        if func.id == "enumerate" and len(parts) == 2 and iterable.args:
            return loop_aliases(parts[1], iterable.args[0])
    if parts is not None and len(parts) == 2 and isinstance(func, ast.Attribute) and func.attr == "items":
        return [(target_names(parts[1]), value_names(func.value))]
    return [(target_names(target), iterated_names(iterable))]


class AliasGroups:
    """Union-find over names that may share objects (`data = [train, test]`, `df = train`).

    Nodes are name versions: binding a name again (`df = …`, a new loop over other lists) starts a
    new version, so a reused variable name does not join unrelated groups.
    """

    def __init__(self):
        self._parent: dict[str, str] = {}
        self._members: dict[str, set[str]] = {}  # root → every node in its group
        self._version: dict[str, int] = {}

    def key(self, name: str) -> str:
        return f"{name}@{self._version.get(name, 0)}"

    def keys(self, names) -> list[str]:
        return [self.key(n) for n in names]

    def rebind(self, name: str):
        self._version[name] = self._version.get(name, 0) + 1

    def root(self, node: str) -> str:
        return self._find(node)

    def _find(self, node):
        if node not in self._parent:
            self._parent[node] = node
            self._members[node] = {node}
            return node
        root = node
        while self._parent[root] != root:
            root = self._parent[root]
        while self._parent[node] != root:  # path compression, iteratively
            self._parent[node], node = root, self._parent[node]
        return root

    def _union_nodes(self, nodes):
        nodes = list(nodes)
        for other in nodes[1:]:
            a, b = self._find(nodes[0]), self._find(other)
            if a != b:
                if len(self._members[a]) < len(self._members[b]):
                    a, b = b, a
                self._parent[b] = a
                self._members[a] |= self._members.pop(b)

    def union(self, names):
        self._union_nodes(self.keys(names))

    def join(self, names, nodes):
        """Current versions of `names` share objects with `nodes` (taken before a rebinding)."""
        if nodes and names:
            self._union_nodes([*self.keys(names), *nodes])

    def add_assign(self, targets, value):
        bound = [n for t in targets for n in target_names(t)]
        stored = [n for t in targets for n in mutated_by_target(t)]
        shared = value_names(value)
        if shared and (bound or stored):
            self.union([*bound, *stored, *shared])

    def add_loop(self, target, iterable):
        for names, shared in loop_aliases(target, iterable):
            if shared and names:
                self.union([*names, *shared])

    def add_call(self, call: ast.Call, modules=frozenset()):
        # `data.append(train)`: the receiver now holds the argument
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr not in READ_ONLY_METHODS:
            receiver = root_name(func.value)
            args = set().union(*map(value_names, call.args)) if call.args else set()
            if receiver and args and receiver not in modules:
                self.union([receiver, *args])

    def expand(self, names) -> set[str]:
        return set(names) | self.expand_nodes(self.keys(names))

    def expand_nodes(self, nodes) -> set[str]:
        """Names whose current version shares a group with any of `nodes`."""
        found = set()
        for root in {self._find(k) for k in nodes if k in self._parent}:
            for node in self._members[root]:
                name = node.rpartition("@")[0]
                if self.key(name) == node:  # only names still bound to that version
                    found.add(name)
        return found

    def group_of(self, name) -> set[str]:
        return self.expand({name})
