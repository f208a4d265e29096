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

from .heap import BY_NAME, FILLING, GENERATOR, IN_PLACE, ITERATOR, VIEW, immutable

# Calls whose results are iterators drawing lazily on their arguments (a file's position advances
# as it is read): drawing from one is a change of it, and a change of what it draws on reaches
# it. Builtins and itertools' functions, called by name or on `itertools`.
ITERATOR_FUNCTIONS = frozenset({"iter", "zip", "map", "filter", "enumerate", "reversed", "open"})
ITERTOOLS = frozenset("""
    islice chain cycle zip_longest starmap takewhile dropwhile filterfalse accumulate pairwise
    batched compress product permutations combinations combinations_with_replacement count repeat
    groupby
    """.split())
# ... of which these are iterators only on `itertools`: other code has functions of these names, and
# `total = product(a, b)` given to `print` would be drawn from
AMBIGUOUS_ITERTOOLS = frozenset({"count", "repeat", "product", "compress", "groupby", "accumulate"})
# ... and these give a tuple of iterators (`a, b = tee(it)`), one abstract iterator for all
ITERATOR_TUPLES = frozenset({"tee"})
# Methods whose results are iterators over their receiver (`df.iterrows()`, `path.open()`).
ITERATOR_METHODS = frozenset({"iterrows", "itertuples", "iteritems", "open"})
# Methods whose results are lazy views of their receiver: they read it when used, so a change of
# the receiver reaches them (they change nothing of it).
LAZY_VIEW_METHODS = frozenset({"groupby", "rolling", "expanding", "ewm", "resample", "coarsen",
                               "weighted"})
# Methods that never modify their receiver (pandas, numpy, scikit-learn, str, dict, list, set,
# pathlib). Any other method call may modify it; `inplace=` (unless literally False) always does.
# Drawing methods (`plot`, `hist`, `boxplot`) are not here: on an Axes they change it and its figure.
READ_ONLY_METHODS = frozenset("""
    copy deepcopy head tail describe info mean median sum min max std var sem count nunique
    unique value_counts agg aggregate apply applymap map merge join concat astype assign
    to_numpy to_list tolist to_dict to_csv to_parquet to_json to_pickle to_string to_html
    to_records to_frame to_series to_markdown predict predict_proba predict_log_proba
    decision_function score transform inverse_transform get_params keys values items get
    score_samples predict_joint_log_proba staged_predict staged_predict_proba
    staged_decision_function decision_path get_feature_names_out get_feature_names get_support
    get_covariance get_precision get_depth get_n_leaves kneighbors kneighbors_graph
    radius_neighbors radius_neighbors_graph corrwith argpartition
    index find rfind split rsplit strip lstrip rstrip lower upper title capitalize format
    format_map replace startswith endswith encode decode reshape ravel flatten dot round abs
    isna isnull notna notnull fillna dropna drop rename sort_values sort_index reset_index
    set_index query filter select_dtypes sample nlargest nsmallest corr cov cumsum cumprod
    cummax cummin diff pct_change shift pivot pivot_table melt
    stack unstack items all any argmax argmin
    argsort idxmax idxmin clip where mask duplicated drop_duplicates explode equals isin
    between memory_usage first last nth size prod quantile rank mode skew kurt squeeze
    transpose swapaxes nonzero searchsorted take compress repeat tobytes view item isdigit
    isalpha isalnum isidentifier zfill center ljust rjust rpartition splitlines
    issubset issuperset union intersection difference symmetric_difference isdisjoint
    exists is_file is_dir read_text read_bytes glob rglob iterdir resolve with_suffix
    with_name joinpath relative_to stat fetchall fetchone
    ffill bfill backfill pad reindex reindex_like interpolate combine combine_first align
    sub subtract mul multiply div divide truediv floordiv mod pow radd rsub rmul rdiv rtruediv
    rfloordiv rmod rpow eq ne lt le gt ge asfreq truncate droplevel add_prefix add_suffix
    rename_axis convert_dtypes infer_objects factorize to_period to_timestamp tz_localize
    tz_convert strftime contains len match fullmatch extract extractall findall cat get_dummies
    slice slice_replace removeprefix removesuffix casefold normalize
    """.split()) | LAZY_VIEW_METHODS | ITERATOR_METHODS

# Methods read-only when their value is used (`total = df.add(1)`, pandas) and in place when
# called for their effect alone (`seen.add(x)`, a set's).
VALUE_METHODS = frozenset({"add"})
# Methods read-only when given an argument (pandas' `df.eval("a + b")`, unless `inplace=`) and in
# place without one (torch's `model.eval()` leaves training mode).
ARGUMENT_READ_ONLY_METHODS = frozenset({"eval"})
# Methods read-only on a string (`line.partition(":")`) and in place on a NumPy array
# (`X.partition(3)` sorts X around its 4th smallest element): a change unless given a string.
STRING_OR_ARRAY_METHODS = frozenset({"partition"})

# Functions (plain, or of a module: `np.put`, `heapq.heappush`) that modify their first argument
# in place; those in IN_PLACE_HOLDING also store their other arguments in it (`setattr(o, "v", x)`).
IN_PLACE_FUNCTIONS = frozenset("""
    shuffle copyto put place putmask put_along_axis fill_diagonal at next setattr delattr heappush heappop
    heapify heapreplace heappushpop insort insort_left insort_right setitem delitem iadd iconcat
    """.split())
IN_PLACE_HOLDING = frozenset({"setattr", "heappush", "heapreplace", "heappushpop", "insort",
                              "insort_left", "insort_right", "setitem", "iadd", "iconcat"})
# Methods of any object that modify their first argument (`rng.shuffle(x)`).
IN_PLACE_ARGUMENT_METHODS = frozenset({"shuffle"})
# Types whose methods called through the type change their first argument (`dict.update(d, o)`).
BUILTIN_TYPES = frozenset({"dict", "list", "set", "bytearray", "object", "deque"})
# Keyword arguments a call writes into: numpy's `out=`, the Axes drawn on (`df.plot(ax=ax)`), and a
# random generator it draws from (`train_test_split(X, random_state=rs)` advances `rs`).
WRITTEN_KEYWORDS = frozenset({"out", "ax", *"random_state rng".split()})
GENERATOR_KEYWORDS = frozenset({"random_state", "rng"})  # (a number there is a seed: nothing changes)

# NumPy's output array given by position, as `out=` gives it (`np.multiply(X, 2, X)`, `np.sqrt(X, X)`,
# `np.clip(W, 0, 5, W)`): its position, for a function of a module. A ufunc's output follows its
# inputs; one with two outputs (`np.modf(x, f, i)`) takes the next position too.
UNARY_UFUNCS = frozenset("""
    abs absolute acos acosh arccos arccosh arcsin arcsinh arctan arctanh asin asinh atan atanh
    bitwise_count bitwise_invert bitwise_not cbrt ceil conj conjugate cos cosh deg2rad degrees exp
    exp2 expm1 fabs floor frexp invert isfinite isinf isnan isnat log log10 log1p log2 logical_not
    modf negative positive rad2deg radians reciprocal rint sign signbit sin sinh spacing sqrt square
    tan tanh trunc
    """.split())
BINARY_UFUNCS = frozenset("""
    add arctan2 atan2 bitwise_and bitwise_left_shift bitwise_or bitwise_right_shift bitwise_xor
    copysign divide divmod equal float_power floor_divide fmax fmin fmod gcd greater greater_equal
    heaviside hypot lcm ldexp left_shift less less_equal logaddexp logaddexp2 logical_and logical_or
    logical_xor matmul matvec maximum minimum mod multiply nextafter not_equal pow power remainder
    right_shift subtract true_divide vecdot vecmat
    """.split())
UFUNCS = UNARY_UFUNCS | BINARY_UFUNCS
TWO_OUTPUT_UFUNCS = frozenset({"divmod", "frexp", "modf"})
POSITIONAL_OUT = {
    **dict.fromkeys(UNARY_UFUNCS | {"fix", "isneginf", "isposinf"}, 1),
    **dict.fromkeys(BINARY_UFUNCS, 2),
    **dict.fromkeys("""all any amax amin max min argmax argmin nanargmax nanargmin nanmax nanmin around
        round choose concatenate concat stack dot outer median nanmedian ptp""".split(), 2),
    **dict.fromkeys("""clip compress take sum prod mean std var cumsum cumprod nansum nanprod nanmean
        nanstd nanvar nancumsum nancumprod percentile quantile nanpercentile nanquantile""".split(), 3),
    "trace": 5,
}
# ... and of a ufunc's methods (`np.add.reduce(a, 0, None, out)`)
UFUNC_METHOD_OUT = {"reduce": 3, "accumulate": 3, "reduceat": 4}
# Modules whose functions of those names take no output there (`math.log(x, base)`, `math.gcd(a, b, c)`,
# `torch.max(x, 1, keep)`: torch's `out=` is a keyword alone)
NO_POSITIONAL_OUT_MODULES = frozenset({"math", "cmath", "torch", "operator", "statistics"})

# Calls that hide reads and writes from static analysis.
DYNAMIC_CALLS = frozenset({"exec", "eval", "globals", "locals", "vars", "__import__"})

# Calls whose result iterates over their arguments' elements (loop targets alias them).
ITERATING_CALLS = (ITERATOR_FUNCTIONS - {"open"}) | {"list", "tuple", "sorted"}

# Makers of containers that insert the key a subscript misses (reading one changes it).
FILLING_MAKERS = frozenset({"defaultdict"})
# Functions of a module whose result is a list of views of their first argument's data.
SPLITTING_FUNCTIONS = frozenset({"split", "array_split", "hsplit", "vsplit", "dsplit", "tensor_split",
                                 "chunk", "unbind"})

# Methods of built-in containers: they change the container, never the objects it holds.
CONTAINER_METHODS = frozenset("""
    append extend insert pop remove clear sort reverse update setdefault popitem add discard
    difference_update intersection_update symmetric_difference_update appendleft extendleft
    popleft rotate
    """.split())

# Methods whose bound method, taken as a value (`map(lst.append, xs)`, `pool.submit(m.fit, X, y)`,
# `cbs = [log.append]`), changes its object when whatever gets it calls it. (Not every method: a
# value taken as `df.values` or `data.target` is no method, and would tie steps that only read.)
CHANGING_METHOD_VALUES = CONTAINER_METHODS | frozenset({"fit", "partial_fit", "fit_transform", "fit_predict",
                                                        "put", "put_nowait", "write", "writerow", "writerows"})

# Context managers whose `as` value is what they were given (`with closing(conn) as c`: c is conn).
ENTERING_ARGUMENT = frozenset({"nullcontext", "closing"})

# Methods that store their arguments as parts the receiver owns (its own methods change them).
OWNING_METHODS = frozenset({"set_params", "add_module", "register_module", "register_buffer",
                            "register_parameter", "add_param_group"})

# Methods returning their receiver (`m2 = m1.fit(X, y)` is m1) or a part of it.
RETURNS_SELF = frozenset({"fit", "partial_fit", "set_params", "set_output", "train", "eval", "to",
                          "cuda", "cpu", "requires_grad_"})
# Methods whose result is their object when it already is what they convert to (`X.tocsr()` of a CSR
# matrix), or given `copy=False` (`X.astype(np.float64, copy=False)`, `df.to_numpy(copy=False)`)
MAY_RETURN_SELF = frozenset({"tocsr", "tocsc", "tocoo", "tolil", "todok", "todia", "tobsr", "asformat", "asfptype"})
CONVERTING_METHODS = frozenset({"astype", "to_numpy", "to_sparse", "asformat"})
RETURNS_PART = frozenset({"parameters", "named_parameters", "buffers", "named_buffers", "children",
                          "named_children", "modules", "named_modules", "state_dict", "values",
                          "items", "keys", "view", "reshape", "ravel", "transpose", "swapaxes",
                          "squeeze", "unsqueeze", "get", "setdefault", "pop",
                          # a figure's axes (`ax = fig.add_subplot()`: drawing on ax changes fig)
                          "add_subplot", "add_axes", "gca", "twinx", "twiny", "inset_axes"})
# Calls whose result may be an element of their first argument: the builtins `max`, `min`, `next`
# (`best = max(cands, key=…)`, `next(iter(models.values()))`) and, of a module or an object,
# `choice`, `choices`, `sample` (`rng.choice(cands)`): a change through the result changes it.
ELEMENT_FUNCTIONS = frozenset({"max", "min", "next"})
ELEMENT_METHODS = frozenset({"choice", "choices", "sample"})
# Functions (plain, or of a module) whose result is a new object holding their first argument's
# parts (`dataclasses.replace(base, lr=…)` shares base's fields), or that first argument itself
# when it is a generator (`np.random.default_rng(rng)` is rng; given a seed, a new generator).
SHARING_COPIES = frozenset({"replace"})
SAME_OR_NEW = frozenset({"default_rng", "check_random_state"})
# What gives a process-wide object that pickles as its name (`BY_NAME`): `logging.getLogger("exp")`.
BY_NAME_MAKERS = frozenset({"getLogger"})
# What makes a random generator (`GENERATOR`): any method of one draws from it, a name that is a
# read-only method elsewhere too (`rr.sample(items, 10)`, not pandas' `df.sample`)
GENERATOR_MAKERS = frozenset({"Random", "SystemRandom", "RandomState", "Generator", "default_rng",
                              "check_random_state"})
# Functions of a module whose result may be their first argument itself or a view of its data
# (`b = np.asarray(a); b += 1` changes a).
RETURNS_FIRST_ARGUMENT = frozenset({"asarray", "asanyarray", "ascontiguousarray", "asfortranarray", "reshape",
                                    "ravel", "transpose", "squeeze", "swapaxes", "moveaxis", "expand_dims",
                                    "atleast_1d", "atleast_2d", "atleast_3d", "flip", "fliplr", "flipud",
                                    "rot90", "diagonal", "require", "asmatrix", "sliding_window_view",
                                    "as_strided", "frombuffer"})
# ... also when imported by name (`from numpy.lib.stride_tricks import sliding_window_view`), or a
# builtin: names no notebook would give a function of its own
VIEWING_FUNCTIONS = frozenset({"memoryview", "sliding_window_view", "as_strided", "asmatrix", "frombuffer"})

# Attributes whose values nothing changes in place (`X.shape[1]`, `X.dtype`): numbers, tuples of
# them, dtypes. Such a value is no part of X, so a model given it holds nothing of X.
IMMUTABLE_ATTRIBUTES = frozenset({"shape", "ndim", "size", "dtype", "nbytes", "itemsize"})
# Functions and methods whose results are numbers, strings, booleans or bytes.
IMMUTABLE_RESULT_FUNCTIONS = frozenset("""
    len int float str bool complex bytes repr ascii hash id ord chr bin oct hex format isinstance
    issubclass callable hasattr
    """.split())
IMMUTABLE_RESULT_METHODS = frozenset({"item", "is_integer", "bit_length"})
# Builtins making a new container of what they are given (`list(frames)` holds the frames).
CONTAINER_MAKERS = frozenset({"dict", "list", "tuple", "set", "frozenset", "sorted"})
# ... and the standard library's (`deque([frames])`, `collections.OrderedDict(pairs)`)
LIBRARY_CONTAINER_MAKERS = frozenset({"deque", "OrderedDict", "ChainMap", "UserList", "UserDict",
                                      *FILLING_MAKERS})

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


# Calls that give a part of their first argument: `vars(o)[k] = v` and `getattr(o, "items").append(x)` change o.
PART_OF_FIRST_ARGUMENT = frozenset({"vars", "getattr"})


def root_name(expr: ast.AST) -> str | None:
    """`df` for `df`, `df.a`, `df["x"].loc[0]`, `vars(df)["a"]`, `getattr(df, "a")`; None when the
    chain starts at another call or a literal."""
    while True:
        if isinstance(expr, (ast.Attribute, ast.Subscript, ast.Starred)):
            expr = expr.value
        elif (isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.args
              and expr.func.id in PART_OF_FIRST_ARGUMENT):
            expr = expr.args[0]
        else:
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


def import_origins(node: ast.Import | ast.ImportFrom) -> dict[str, str]:
    """Name bound → the dotted name of what it is: `import joblib as jl` → {"jl": "joblib"},
    `from pickle import load` → {"load": "pickle.load"}. Relative imports: none."""
    if type(node) is ast.ImportFrom:
        if node.level or not node.module:
            return {}
        return {a.asname or a.name: f"{node.module}.{a.name}" for a in node.names if a.name != "*"}
    return {a.asname: a.name for a in node.names if a.asname} | {
        a.name.split(".")[0]: a.name.split(".")[0] for a in node.names if not a.asname}


# Calls that pickle or unpickle by reference: a class or function of the notebook is written as
# `__main__.Name`, and must be found there (cloudpickle and dill write those by value)
PICKLE_CALLS = frozenset("""
    pickle.load pickle.loads pickle.Unpickler pickle.dump pickle.dumps pickle.Pickler
    _pickle.load _pickle.loads _pickle.Unpickler _pickle.dump _pickle.dumps _pickle.Pickler
    joblib.load joblib.dump pandas.read_pickle pandas.to_pickle torch.load torch.save shelve.open
    numpy.load skops.io.load skops.io.dump
    """.split())


_PICKLE_CALL_NAMES = frozenset(name.rpartition(".")[2] for name in PICKLE_CALLS) | {"to_pickle"}


def dotted_name(node: ast.AST) -> str | None:
    """`a.b.c` as text, for names and attributes alone; None for anything else."""
    parts = []
    while type(node) is ast.Attribute:
        parts.append(node.attr)
        node = node.value
    return ".".join([node.id, *reversed(parts)]) if type(node) is ast.Name else None


def dotted_callee(func: ast.AST, origins: dict[str, str]) -> str | None:
    """`jl.load` → "joblib.load" when `jl` is `joblib`: the callee by what its root name was
    imported as; None when the root name was bound by no import."""
    name = dotted_name(func)
    root, dot, rest = (name or "").partition(".")
    return origins[root] + dot + rest if root in origins else None


def pickles(call: ast.Call, origins: dict[str, str], modules) -> bool:
    """Whether `call` may pickle or unpickle by reference: one of `PICKLE_CALLS` through a name an
    import bound (`np.load` only given `allow_pickle=True`), or `df.to_pickle(path)`."""
    func = call.func
    kind = type(func)
    last = func.attr if kind is ast.Attribute else None
    if kind is ast.Name:  # (`from joblib import load as jl_load`)
        last = origins.get(func.id, "").rpartition(".")[2]
    if last not in _PICKLE_CALL_NAMES:
        return False  # (most calls: no root name to look up)
    if last == "to_pickle":
        return True
    if root_name(func) not in modules:
        return False
    name = dotted_callee(func, origins)
    if name == "numpy.load":
        return any(k.arg == "allow_pickle" and not (type(k.value) is ast.Constant and not k.value.value)
                   for k in call.keywords)
    return name in PICKLE_CALLS


def callee_name(call: ast.Call) -> str | None:
    func = call.func
    kind = type(func)
    if kind is ast.Name:
        return func.id
    if kind is ast.Attribute:
        return func.attr
    return None


def mutated_by_call(call: ast.Call, modules=frozenset(), used=False) -> set[str]:
    """Names whose objects this call may modify in place (without knowing the callee's code).

    `modules`: names bound to imported modules; `np.log(a)` changes neither `np` nor `a`.
    `used`: the call's value is used (assigned), which tells `df.add(1)` from `seen.add(x)`.
    """
    mutated = set()
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr != "pipe":  # `df.pipe(f)` is `f(df)`
        receiver = root_name(func.value)
        if receiver and receiver not in modules and receiver not in BUILTIN_TYPES \
                and changes_receiver(call, func.attr, used):
            mutated.add(receiver)
    for expr in written_arguments(call, modules):
        name = root_name(expr)
        if name:
            mutated.add(name)
    return mutated


def changes_receiver(call: ast.Call, method: str, used=False) -> bool:
    if has_inplace_flag(call):
        return True
    if method in STRING_OR_ARRAY_METHODS:
        return not _given_a_string(call)
    if method in ARGUMENT_READ_ONLY_METHODS:
        return not call.args
    return method not in READ_ONLY_METHODS and not (used and method in VALUE_METHODS)


def _given_a_string(call: ast.Call) -> bool:
    """`line.partition(":")`, `"a=b".partition(sep)`: the string method, not NumPy's (given a number)."""
    receiver = call.func.value if type(call.func) is ast.Attribute else None
    return any(type(e) is ast.JoinedStr or type(e) is ast.Constant and isinstance(e.value, (str, bytes))
               for e in [receiver, *call.args[:1]])


def written_arguments(call: ast.Call, modules=frozenset()) -> list[ast.AST]:
    """Argument expressions the call changes in place: the first one of a known in-place function
    (`random.shuffle(x)`, `next(it)`, `dict.update(d, o)`), `out=`/`ax=` keyword values (each of
    a tuple: `out=(q, r)`), and NumPy's output given by position (`np.sqrt(X, X)`)."""
    written = [k.value for k in call.keywords if k.arg in WRITTEN_KEYWORDS]
    if written and any(type(e) is ast.Tuple for e in written):
        written = [part for e in written for part in (e.elts if type(e) is ast.Tuple else [e])]
    if call.args and (_changes_first_argument(call, modules) or _copies_nothing_of_it(call, modules)):
        written.append(call.args[0])
    if len(call.args) > 1 and type(call.func) is ast.Attribute:
        written += _positional_outputs(call, modules)
    return written


def _positional_outputs(call: ast.Call, modules) -> list[ast.AST]:
    """`np.multiply(X, 2, X)`, `np.clip(W, 0, 5, W)`, `np.add.reduce(a, 0, None, out)`: the output
    arrays a NumPy function is given by position (`POSITIONAL_OUT`)."""
    func = call.func
    at = POSITIONAL_OUT.get(func.attr)
    if at is None and type(func.value) is ast.Attribute and func.value.attr in UFUNCS:
        at = UFUNC_METHOD_OUT.get(func.attr)  # (`np.add.reduce`: a ufunc's method)
    if at is None or len(call.args) <= at or not _on_module(func.value, modules) \
            or root_name(func) in NO_POSITIONAL_OUT_MODULES:
        return []
    return call.args[at:at + 1 + (func.attr in TWO_OUTPUT_UFUNCS)]


def _may_not_copy(call: ast.Call) -> bool:
    """`np.array(a, copy=False)` or `copy=None`: `a` itself when it needs no conversion."""
    return any(k.arg == "copy" and not (isinstance(k.value, ast.Constant) and k.value.value is True)
               for k in call.keywords)


def copies_nothing(call: ast.Call) -> bool:
    """`copy=False`: the call (or what it makes) works on what it is given in place."""
    return any(k.arg == "copy" and isinstance(k.value, ast.Constant) and k.value.value is False
               for k in call.keywords)


def _copies_nothing_of_it(call: ast.Call, modules) -> bool:
    """`np.nan_to_num(X, copy=False)`, `normalize(X, copy=False)`: a function (not a class, not a
    method: `X.astype(float, copy=False)` changes nothing) changing its first argument in place."""
    func = call.func
    if not copies_nothing(call) or (callee_name(call) or "")[:1].isupper():
        return False
    return type(func) is ast.Name or (type(func) is ast.Attribute and _on_module(func.value, modules))


def _changes_first_argument(call: ast.Call, modules) -> bool:
    func = call.func
    if type(func) is ast.Name:
        return func.id in IN_PLACE_FUNCTIONS
    if type(func) is not ast.Attribute:
        return False
    if func.attr in IN_PLACE_ARGUMENT_METHODS:
        return True
    if type(func.value) is ast.Name and func.value.id in BUILTIN_TYPES:  # `list.append(lst, x)`
        return func.attr not in READ_ONLY_METHODS
    return func.attr in IN_PLACE_FUNCTIONS and _on_module(func.value, modules)


def _holds_other_arguments(call: ast.Call) -> bool:
    """`setattr(o, "v", x)`, `heappush(h, x)`, `list.append(lst, x)`: the first argument keeps the others."""
    func = call.func
    if type(func) is ast.Attribute and type(func.value) is ast.Name and func.value.id in BUILTIN_TYPES:
        return True
    return callee_name(call) in IN_PLACE_HOLDING


def has_inplace_flag(call: ast.Call) -> bool:
    """`inplace=True`, or any value but a literal False (`inplace=flag` may be true)."""
    return any(
        k.arg == "inplace" and not (isinstance(k.value, ast.Constant) and k.value.value in (False, None))
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
_OPERATIONS = frozenset({ast.BinOp, ast.UnaryOp, ast.Compare})
_COMPREHENSIONS = frozenset({ast.ListComp, ast.SetComp, ast.DictComp})


def objects_of(heap, expr: ast.AST | None, modules=frozenset()) -> frozenset[str]:
    """Objects the value of `expr` may be; empty for a new object of unknown contents."""
    if expr is None:
        return frozenset()
    kind = type(expr)
    if kind is ast.Name:
        return heap.objects(expr.id)
    if kind in _PARTS:
        if _immutable_attribute(expr):
            return _immutable_value(heap, expr, "attribute")
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
        return _immutable_value(heap, expr, "literal")
    if kind in _OPERATIONS:  # once per evaluation site: a chain `a + b + c …` is walked once
        return heap.result(expr, lambda: _operation_objects(heap, expr, modules))
    if kind in _COMPREHENSIONS:
        return heap.result(expr, lambda: _comprehension_objects(heap, expr, modules))
    if kind is ast.Lambda:  # one function object per evaluation site (`heap.functions` knows what it does)
        return heap.result(expr, lambda: frozenset({heap.fresh("lambda")}))
    if kind is ast.GeneratorExp:  # (its first iterable alone is evaluated here)
        return heap.result(expr, lambda: generator(heap, "generator", objects_of(heap, expr.generators[0].iter,
                                                                                 modules)))
    return frozenset()


def _operation_objects(heap, expr, modules) -> frozenset[str]:
    if _operands_immutable(heap, expr, modules):
        return frozenset({heap.fresh_immutable("number")})  # `1.0 / 4`, `X.shape[1] * 2`, `not x`
    if type(expr) is ast.BinOp and type(expr.op) in _JOINING:
        return _joined(heap, expr, modules)
    return frozenset()


_JOINING = frozenset({ast.Add, ast.Mult})
_SEQUENCES = frozenset({ast.List, ast.Tuple, ast.ListComp})
# operands whose objects may say they are lists (`frames + extra`, `list(a) + b`, `a + b + c`); parts
# (`cfg["fs"] + more`) are not looked up, as most operands are numbers and arrays (`a.w * b.x`)
_MAY_BE_LISTED = frozenset({ast.Name, ast.Call, ast.BinOp})
# how the objects of the lists and tuples `effects` makes begin (literals, `list(...)`, joins)
_SEQUENCE_PREFIXES = ("list#", "tuple#", "listcomp#", "sorted#")


def _joined(heap, expr, modules) -> frozenset[str]:
    """`[train] + [test, val]`, `frames + extra`, `[df] * 3`: a new list holding the elements of
    each side that is a list or a tuple (a loop over it may get any of them), when one side surely
    is (a display, or objects all made as lists). An array's `X + Y` holds nothing: a new object."""
    sides = [expr.left, expr.right]
    listed = [_is_sequence(heap, e, modules) for e in sides]
    if not any(listed):
        return frozenset()
    if type(expr.op) is ast.Mult:  # (the other side is a count)
        sides = [e for e, is_list in zip(sides, listed) if is_list]
    return container(heap, "list", [heap.elements(objects_of(heap, e, modules)) for e in sides])


def _is_sequence(heap, expr, modules) -> bool:
    """`[a, b]`, `(a,)`, or a value made as a list or tuple (`frames = [train, test]`, `list(xs)`)."""
    kind = type(expr)
    if kind in _SEQUENCES:
        return True
    if kind not in _MAY_BE_LISTED:
        return False
    objects = objects_of(heap, expr, modules)
    return bool(objects) and all(obj.startswith(_SEQUENCE_PREFIXES) for obj in objects)


def _immutable_value(heap, expr, label) -> frozenset[str]:
    return heap.result(expr, lambda: frozenset({heap.fresh_immutable(label)}))


def all_immutable(objects) -> bool:
    return bool(objects) and all(map(immutable, objects))


def _immutable_attribute(expr) -> bool:
    """`X.shape`, `X.shape[1]`, `df.values.dtype`: a chain through an immutable attribute."""
    while type(expr) in _PARTS:
        if type(expr) is ast.Attribute and expr.attr in IMMUTABLE_ATTRIBUTES:
            return True
        expr = expr.value
    return False


def _operands_immutable(heap, expr, modules) -> bool:
    """Arithmetic and comparisons of immutable values give one (numbers, strings, booleans);
    `not` always gives a boolean. (An array operand gives a new array: a new object, not this.)"""
    kind = type(expr)
    if kind is ast.UnaryOp:
        return type(expr.op) is ast.Not or all_immutable(objects_of(heap, expr.operand, modules))
    operands = [expr.left, expr.right] if kind is ast.BinOp else [expr.left, *expr.comparators]
    return all(all_immutable(objects_of(heap, e, modules)) for e in operands)


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
    if isinstance(expr, ast.Dict):  # (`{**base, "k": v}` holds base's keys and values: its elements)
        held = [objects_of(heap, k, modules) for k in expr.keys if k is not None]
        held += [heap.elements(objects_of(heap, v, modules)) if k is None else objects_of(heap, v, modules)
                 for k, v in zip(expr.keys, expr.values)]
    else:  # (`[*frames, val]` holds the frames: what `*frames` unpacks)
        held = [heap.elements(objects_of(heap, e.value, modules)) if type(e) is ast.Starred
                else objects_of(heap, e, modules) for e in expr.elts]
    if isinstance(expr, ast.Tuple) and all(map(all_immutable, held)):
        return frozenset({heap.fresh_immutable("tuple")})  # `(64, 32)`
    return container(heap, type(expr).__name__.lower(), held)


def _comprehension_objects(heap, expr, modules) -> frozenset[str]:
    """`[d for d in frames if ...]`, `{k: v for k, v in grid.items()}`: a new container holding the
    parts its loops give, where its element is a loop variable; empty (a new object of unknown
    contents) where the element is anything else."""
    results = [expr.key, expr.value] if type(expr) is ast.DictComp else [expr.elt]
    names = {value.id for value in results if type(value) is ast.Name}
    held: set[str] = set()
    for generator in expr.generators if names else ():
        for part, exprs in loop_sources(generator.target, generator.iter):
            if names & {n.id for n in ast.walk(part) if type(n) is ast.Name}:
                held |= elements_of(heap, exprs, modules)
    return container(heap, type(expr).__name__.lower(), [held]) if held else frozenset()


def container(heap, label, held) -> frozenset[str]:
    """A new container holding each of `held` (an empty one: an object of unknown origin)."""
    exact = all(held)
    return frozenset({heap.new_container(label, set().union(*held), exact=exact)})


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
        # (`model.eval()` is the model; `df.eval("a + b")`, which changes nothing, a new value)
        if func.attr in RETURNS_SELF and changes_receiver(call, func.attr) or func.attr in MAY_RETURN_SELF or (
                func.attr in CONVERTING_METHODS and copies_nothing(call)):
            return part_objects(heap, func.value, modules)
        if func.attr in RETURNS_PART:
            return heap.elements(part_objects(heap, func.value, modules))
        if func.attr in LAZY_VIEW_METHODS:
            return _viewing(heap, func.attr, part_objects(heap, func.value, modules))
        if func.attr in ITERATOR_METHODS:
            return iterator(heap, func.attr, part_objects(heap, func.value, modules))
    if isinstance(func, ast.Attribute) and call.args and _on_module(func.value, modules):
        if func.attr in RETURNS_FIRST_ARGUMENT or func.attr == "array" and _may_not_copy(call):
            return objects_of(heap, call.args[0], modules)
        if func.attr in SPLITTING_FUNCTIONS:  # `parts = np.split(a, 3)`: `parts[0][:] = 5` changes a
            return container(heap, func.attr, [objects_of(heap, call.args[0], modules)])
    if type(func) is ast.Name and func.id in VIEWING_FUNCTIONS and call.args:  # `memoryview(a)`: a view of a
        return objects_of(heap, call.args[0], modules)
    if type(func) is ast.Name and func.id in PART_OF_FIRST_ARGUMENT and call.args:  # `b = getattr(o, "lst")`: o.lst
        return heap.elements(objects_of(heap, call.args[0], modules))
    if makes_iterator(call, modules):
        made = iterator(heap, callee_name(call), given_objects(heap, call, modules))
        return container(heap, "tee", [made]) if callee_name(call) in ITERATOR_TUPLES else made
    if (isinstance(func, ast.Attribute) and func.attr == "copy" and not call.args
            and not _on_module(func.value, modules)):
        # `d.copy()`: a dict's, a list's or a set's is shallow, a new container of the same elements
        return container(heap, "copy", [heap.elements(part_objects(heap, func.value, modules))])
    name = callee_name(call)
    if call.args and (name in ELEMENT_METHODS or (type(func) is ast.Name and name in ELEMENT_FUNCTIONS)):
        return heap.elements(objects_of(heap, call.args[0], modules))
    if call.args and (type(func) is ast.Name or (type(func) is ast.Attribute and _on_module(func.value, modules))):
        if name in SHARING_COPIES:
            return container(heap, name, [heap.elements(objects_of(heap, call.args[0], modules))])
        if name in SAME_OR_NEW:  # (a generator is given by its name: `default_rng(seeds[i])` is given a seed)
            given = objects_of(heap, call.args[0], modules) if type(call.args[0]) is ast.Name else ()
            return frozenset({heap.fresh_kind(name, GENERATOR), *(obj for obj in given if not immutable(obj))})
    if type(func) is ast.Name and name == "sum" and len(call.args) == 2:
        return _summed(heap, call, modules)
    if type(func) is ast.Name and name in IMMUTABLE_RESULT_FUNCTIONS:
        return frozenset({heap.fresh_immutable(name)})  # `len(X)`, `int("100")`
    if type(func) is ast.Attribute and name in IMMUTABLE_RESULT_METHODS:
        return frozenset({heap.fresh_immutable(name)})
    if (type(func) is ast.Name and name in CONTAINER_MAKERS or name in LIBRARY_CONTAINER_MAKERS
            or _is_shallow_copy(call, modules)):
        return _made_container(heap, call, modules)
    if name in GENERATOR_MAKERS:  # `random.Random(0)`, `np.random.default_rng()`
        return frozenset({heap.fresh_kind(name, GENERATOR)})
    if name in BY_NAME_MAKERS and _on_module(func if type(func) is ast.Name else func.value, modules):
        return frozenset({heap.fresh_kind(name, BY_NAME)})
    if name and (name[:1].isupper() or name in WRAPPING_FACTORIES):
        made = heap.fresh_kind(name, IN_PLACE) if copies_nothing(call) else heap.fresh(name)
        heap.hold([made], argument_objects(heap, call, modules), owned=name not in CLONING_CONSTRUCTORS)
        return frozenset({made})
    return frozenset()


def _summed(heap, call, modules) -> frozenset[str]:
    """`sum([[test], [val]], [])`: given a list or a tuple to start from, a new list holding the
    elements of the lists it joins (what its first argument holds) and of that start."""
    if not _is_sequence(heap, call.args[1], modules):
        return frozenset()  # (`sum(xs, 0.0)`: a number, or an object of unknown contents)
    joined = heap.elements(objects_of(heap, call.args[0], modules))
    return container(heap, "list", [heap.elements(joined), heap.elements(objects_of(heap, call.args[1], modules))])


def makes_iterator(call: ast.Call, modules=frozenset()) -> bool:
    """`zip(a, b)`, `islice(it, 3)`, `itertools.chain(a, b)`: a builtin's or itertools' iterator."""
    func = call.func
    itertools = ITERTOOLS | ITERATOR_TUPLES
    if type(func) is ast.Name:
        return func.id in ITERATOR_FUNCTIONS or (func.id in itertools and func.id not in AMBIGUOUS_ITERTOOLS)
    return (type(func) is ast.Attribute and func.attr in itertools and type(func.value) is ast.Name
            and func.value.id == "itertools" and func.value.id in modules)


def iterator(heap, label, source, yielded=None) -> frozenset[str]:
    """A new iterator drawing on `source` and yielding `yielded` (by default what `source` holds)."""
    made = heap.fresh_kind(label, ITERATOR)
    heap.hold([made], source, owned=False)
    heap.hold([made], heap.held(source) if yielded is None else yielded)
    return frozenset({made})


def generator(heap, label, source, yielded=None) -> frozenset[str]:
    """A new generator (`(x for x in xs)`, a call of a generator function): an iterator that no step
    can hand on to another, as it cannot be copied or pickled (`heap.generators`)."""
    made = iterator(heap, label, source, yielded)
    heap.generators |= made
    return made


def _viewing(heap, label, source) -> frozenset[str]:
    """A new lazy view of `source` (`df.groupby(k)`): given it, and changing nothing of it."""
    made = heap.fresh_kind(label, VIEW)
    heap.hold([made], source, owned=False)
    return frozenset({made})


def _on_module(expr, modules) -> bool:
    """`np.random`, `plt`: a chain rooted at an imported module (never a tracked object)."""
    root = root_name(expr)
    return root is not None and root in modules


def _is_shallow_copy(call, modules) -> bool:
    """`copy.copy(rows)`, `copy(rows)`: a new container of the same elements."""
    func = call.func
    if type(func) is ast.Name:
        return func.id == "copy"
    return type(func) is ast.Attribute and func.attr == "copy" and _on_module(func.value, modules)


def _made_container(heap, call, modules) -> frozenset[str]:
    """`dict(n=5)`, `list(frames)`: a new container holding the elements of its positional
    arguments and its keyword values."""
    held = [heap.elements(objects_of(heap, a, modules)) for a in call.args]
    held += [_keyword_objects(heap, k, modules) for k in call.keywords]
    made = container(heap, callee_name(call), held)
    if callee_name(call) in FILLING_MAKERS:
        heap.mark(made, FILLING)
    return made


def argument_objects(heap, call: ast.Call, modules=frozenset()) -> set[str]:
    """What the callee is given: `*args` and `**params` give it what they hold, not themselves."""
    found = set()
    for arg in call.args:
        objects = objects_of(heap, arg.value if type(arg) is ast.Starred else arg, modules)
        found |= heap.held(objects) if type(arg) is ast.Starred else heap.yielded(objects)
    for keyword in call.keywords:
        found |= _keyword_objects(heap, keyword, modules)
    return found


def _keyword_objects(heap, keyword, modules):
    objects = objects_of(heap, keyword.value, modules)
    return heap.held(objects) if keyword.arg is None else objects


def untracked_arguments(heap, call: ast.Call, modules=frozenset()) -> bool:
    """Whether an argument is a new object of unknown origin (`d.update(load())`), which no
    object stands for: a container given it holds more than the heap knows."""
    values = [*call.args, *(k.value for k in call.keywords)]
    return not all(objects_of(heap, v, modules) for v in values)


# --- mutations: which objects a call or a store changes -------------------------------------


def call_changes(heap, call: ast.Call, modules=frozenset(), used=False) -> set[str]:
    """Objects the call may change (and the references it makes its receiver hold).

    A container method (`data.append(x)`) changes the container; any other non-read-only method
    (`m.fit(X, y)`, `opt.step()`) changes the receiver and what it owns, and makes it hold its
    arguments as *given*: they are not changed. `used`: as for `mutated_by_call`.
    """
    changed = set()
    call = as_method_call(call)
    func = call.func
    if GENERATOR in heap.made_kinds:
        changed |= _generators_drawn(heap, call, modules)
    if isinstance(func, ast.Attribute) and func.attr != "pipe" and not _on_module(func.value, modules) \
            and changes_receiver(call, func.attr, used) and not _on_builtin_type(func.value):
        receiver = part_objects(heap, func.value, modules)
        args = argument_objects(heap, call, modules) if not heap.of_kind(receiver, BY_NAME) else set()
        if untracked_arguments(heap, call, modules):
            heap.spoil(receiver)
        # (`X.partition(3)` sorts X as `lst.sort()` does, and `df.eval(..., inplace=True)` changes df:
        # not what they hold)
        if func.attr in CONTAINER_METHODS or func.attr in READ_ONLY_METHODS or func.attr in STRING_OR_ARRAY_METHODS:
            heap.hold(receiver, heap.elements(args))
            changed |= receiver
        else:
            heap.hold(receiver, args, owned=func.attr in OWNING_METHODS)
            changed |= heap.owned_reach(receiver)
    written = written_arguments(call, modules)
    if _by_an_in_place_object(heap, call, modules):  # `StandardScaler(copy=False).fit_transform(X)` changes X
        written.append(call.args[0])
    if written:
        changed |= _written_changes(heap, call, written, modules)
    if ITERATOR in heap.made_kinds and _may_be_given_an_iterator(call, modules):
        # `list(it)`, `sum(it)`, `islice(it, 3)`: any call given an iterator may draw from it
        changed |= heap.drawn(given_objects(heap, call, modules))
    return changed


def as_method_call(call: ast.Call) -> ast.Call:
    """`getattr(lst, "append")(x)` as the call it is, `lst.append(x)` (a name given as text); any
    other call as it is."""
    func = call.func
    if not (type(func) is ast.Call and type(func.func) is ast.Name and func.func.id == "getattr"
            and len(func.args) == 2 and not func.keywords and type(func.args[1]) is ast.Constant
            and type(func.args[1].value) is str and func.args[1].value.isidentifier()):
        return call
    method = ast.copy_location(ast.Attribute(value=func.args[0], attr=func.args[1].value, ctx=ast.Load()), func)
    return ast.copy_location(ast.Call(func=method, args=call.args, keywords=call.keywords), call)


def _generators_drawn(heap, call: ast.Call, modules) -> set[str]:
    """A random generator's method draws from it, whatever its name (`rr.sample(xs, 3)`); a call
    given a generator, or what holds one, may draw from it (`cross_val_score(m, X, y, cv=kf)` with
    `kf = KFold(shuffle=True, random_state=rs)`)."""
    func, reached = call.func, set()
    if isinstance(func, ast.Attribute) and not _on_module(func.value, modules):
        reached |= part_objects(heap, func.value, modules)
    given = argument_objects(heap, call, modules)
    return heap.of_kind(reached | heap.owned_reach(given), GENERATOR)


def _by_an_in_place_object(heap, call: ast.Call, modules) -> bool:
    """A method with an argument called on an object made with `copy=False`, or on one owning such
    an object (a pipeline of such steps)."""
    func = call.func
    if IN_PLACE not in heap.made_kinds or not call.args or type(func) is not ast.Attribute \
            or _on_module(func.value, modules):
        return False
    return bool(heap.of_kind(heap.owned_reach(part_objects(heap, func.value, modules)), IN_PLACE))


# Arguments that give a call no iterator to draw from (`f(x + 1, "a", [it])`): most, which are then
# not evaluated a second time (a 5,000-cell check spent 10% on it). A generator expression draws
# on its source where it is written (`analysis`); a call of a module's function or an object's
# method gives a new value, unless it makes an iterator (`itertools.chain(a, b)`, `df.iterrows()`).
_NEVER_ITERATORS = (ast.Constant, ast.BinOp, ast.UnaryOp, ast.Compare, ast.JoinedStr, ast.Lambda, ast.List,
                    ast.Tuple, ast.Dict, ast.Set, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _may_be_given_an_iterator(call: ast.Call, modules) -> bool:
    return any(_may_be_an_iterator(value, modules) for value in [*call.args, *(k.value for k in call.keywords)])


def _may_be_an_iterator(value: ast.AST, modules) -> bool:
    if type(value) is ast.Call and type(value.func) is ast.Attribute:
        return value.func.attr in ITERATOR_METHODS or makes_iterator(value, modules)
    return type(value) is ast.Starred or not isinstance(value, _NEVER_ITERATORS)


def given_objects(heap, call: ast.Call, modules=frozenset()) -> set[str]:
    """The objects a call is given themselves (`f(*it)` is given the iterator, to draw from)."""
    found = set()
    for value in [*call.args, *(k.value for k in call.keywords)]:
        if type(value) is ast.Starred:  # (and what it holds: `zip(*its)` draws on each)
            objects = objects_of(heap, value.value, modules)
            found |= objects | heap.held(objects)
        else:
            found |= objects_of(heap, value, modules)
    return found


def _on_builtin_type(expr) -> bool:
    return type(expr) is ast.Name and expr.id in BUILTIN_TYPES


def _written_changes(heap, call, written, modules) -> set[str]:
    # (a number or a string given there cannot change: `random_state=seed` is a seed)
    changed = {obj for e in written for obj in objects_of(heap, e, modules) if not immutable(obj)}
    if _holds_other_arguments(call):
        heap.hold(changed, set().union(*(objects_of(heap, a, modules) for a in call.args[1:])))
        if untracked_arguments(heap, call, modules):
            heap.spoil(changed)
    return changed


def store_changes(heap, target: ast.AST, value: frozenset[str], modules=frozenset()) -> set[str]:
    """`x[k] = v`, `x.a = v`, `m.data_[0] = v`: the object written into now holds `value`."""
    written = part_objects(heap, target.value, modules)
    heap.hold(written, value)
    if not value:  # (a new object of unknown origin)
        heap.spoil(written)
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
    """Expressions whose elements a loop over `expr` may get."""
    if isinstance(expr, ast.Call):
        func = expr.func
        if isinstance(func, ast.Name) and func.id in ITERATING_CALLS:
            return list(expr.args)
        if isinstance(func, ast.Name) and func.id == "sum":  # (`sum(lists, [])`: a list of their elements)
            return [expr, *expr.args]
        if isinstance(func, ast.Attribute) and func.attr in {"values", "items"}:
            return [func.value]
        # Any other call may hand out what its arguments hold (`itertools.chain([a], [b])`,
        # `random.sample(frames, 2)`), or what its receiver holds (`frames.copy()`).
        receiver = [func.value] if isinstance(func, ast.Attribute) else []
        return [*receiver, *expr.args, *(k.value for k in expr.keywords)]
    if isinstance(expr, (ast.GeneratorExp, ast.ListComp, ast.SetComp)):  # `(d for d in (a, b))`
        return [part for generator in expr.generators for part in iterated(generator.iter)]
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
    added = objects_of(heap, node.value, modules)
    heap.hold(changed, heap.elements(added))
    if not added:
        heap.spoil(changed)
    return set(changed)
