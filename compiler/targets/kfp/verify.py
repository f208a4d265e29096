"""Checks the generated DSL module's shape with `ast` before anything imports it.

`yaml.write_yaml` imports the module so that the kfp SDK can compile it, and importing runs it.
`dsl` writes every value as a literal, so the module has one fixed shape; `verify_module` walks
it against a whitelist of that shape and raises `UnsafeGeneratedCode` on anything else — a second
line of defence, should notebook text ever slip out of its literal. It is a whitelist, not a
sandbox: what passes only defines functions, calls the kfp SDK with literals, and wires tasks.
"""

from __future__ import annotations

import ast

from ...errors import UnsafeGeneratedCode
from ...pyparse import parse_text
from .dsl import DSL_ALIAS, RUNTIME, RUNTIME_ENTRY, SET_TIMEOUT, SET_TIMEOUT_NAME

MODULE_CONSTANTS = ("BASE_IMAGE", "PACKAGES_TO_INSTALL")
PARAMETER_TYPES = frozenset({"str", "int", "float", "bool"})
ARTIFACT_TYPES = {"Input": {"Dataset"}, "Output": {"Dataset", "Metrics", "Artifact"}}
TASK_METHODS = frozenset({
    "set_display_name", "after", "set_cpu_request", "set_cpu_limit", "set_memory_request", "set_memory_limit",
    "set_accelerator_type", "set_accelerator_limit", "set_retry", "set_caching_options",
})
NON_FINITE = ("inf", "-inf", "nan")  # literals.literal writes these floats as float('inf')
BUILTINS = frozenset({"dsl", DSL_ALIAS, SET_TIMEOUT_NAME, "str", "int", "float", "bool", *MODULE_CONSTANTS})


def verify_module(text: str, pipeline_function: str | None = None) -> None:
    """Raise UnsafeGeneratedCode unless `text` has exactly the generated module's shape (and
    defines `pipeline_function` as its pipeline, when given)."""
    try:
        tree = parse_text(text)
    except (SyntaxError, ValueError) as exc:  # ValueError: a null byte
        raise UnsafeGeneratedCode(getattr(exc, "lineno", 1), f"not valid Python ({exc})") from None
    _Checker().module(tree, pipeline_function)


def _require(condition, node, problem: str) -> None:
    if not condition:
        raise UnsafeGeneratedCode(getattr(node, "lineno", 1), problem)


def is_data(node, names=frozenset()) -> bool:
    """A literal (constants, lists, tuples, dicts of them, -number, float('inf')), in which a bare
    name is allowed only when it is one of `names`."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Name):
        return isinstance(node.ctx, ast.Load) and node.id in names
    if isinstance(node, (ast.List, ast.Tuple)):
        return all(is_data(e, names) for e in node.elts)
    if isinstance(node, ast.Dict):
        return None not in node.keys and all(is_data(n, names) for n in (*node.keys, *node.values))
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant) \
            and type(node.operand.value) in (int, float)
    return (isinstance(node, ast.Call) and _is_name(node.func, "float") and not node.keywords
            and len(node.args) == 1 and isinstance(node.args[0], ast.Constant) and node.args[0].value in NON_FINITE)


def _is_name(node, *ids) -> bool:
    return isinstance(node, ast.Name) and node.id in ids


def _is_dsl(node, *attrs, module: str = "dsl") -> bool:
    """`dsl.ATTR` for one of `attrs` (`_dsl.ATTR` with module=DSL_ALIAS)."""
    return isinstance(node, ast.Attribute) and _is_name(node.value, module) and node.attr in attrs


def _is_docstring(node) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


class _Checker:
    def __init__(self):
        self.defined = set(BUILTINS)  # names a new function may not take
        self.components: set[str] = set()
        self.has_set_timeout = False
        self.has_alias = False  # `from kfp import dsl as _dsl`, for the pipeline's importers

    def module(self, tree: ast.Module, pipeline_function: str | None) -> None:
        body = tree.body
        _require(len(body) >= 5, tree, "too few statements")
        _require(_is_docstring(body[0]), body[0], "no module docstring")
        first = body[1]
        _require(isinstance(first, ast.ImportFrom) and first.module == "kfp" and first.level == 0
                 and [(a.name, a.asname) for a in first.names] == [("dsl", None)], first,
                 "the second statement is not 'from kfp import dsl'")
        alias = body[2]
        self.has_alias = (isinstance(alias, ast.ImportFrom) and alias.module == "kfp" and alias.level == 0
                          and [(a.name, a.asname) for a in alias.names] == [("dsl", DSL_ALIAS)])
        start = 3 if self.has_alias else 2
        _require(len(body) >= start + 3, tree, "too few statements")
        for node, name in zip(body[start:start + 2], MODULE_CONSTANTS):
            _require(isinstance(node, ast.Assign) and len(node.targets) == 1 and _is_name(node.targets[0], name)
                     and is_data(node.value), node, f"not an assignment of a literal to {name}")
        *functions, pipeline = body[start + 2:]
        for node in functions:
            if isinstance(node, ast.FunctionDef) and node.name == SET_TIMEOUT_NAME:
                _require(not self.has_set_timeout and ast.dump(node) == ast.dump(parse_text(SET_TIMEOUT).body[0]),
                         node, f"{SET_TIMEOUT_NAME} differs from nbscale's")
                self.has_set_timeout = True
            else:
                self.component(node)
        self.pipeline(pipeline, pipeline_function)

    def function(self, node, decorator: str, data_names=frozenset()) -> ast.arguments:
        """Checks shared by components and the pipeline: a plain function with one
        `@dsl.DECORATOR(...)` of literals and a fresh name; returns its arguments."""
        _require(isinstance(node, ast.FunctionDef), node, f"unexpected {type(node).__name__} statement")
        _require(node.name not in self.defined, node, f"function {node.name!r} shadows a name in use")
        self.defined.add(node.name)
        _require(len(node.decorator_list) == 1, node, f"{node.name} needs exactly one decorator")
        call = node.decorator_list[0]
        _require(isinstance(call, ast.Call) and _is_dsl(call.func, decorator) and not call.args
                 and all(k.arg and is_data(k.value, data_names) for k in call.keywords),
                 call, f"{node.name}'s decorator is not dsl.{decorator}(...) of literals")
        args = node.args
        _require(not (args.posonlyargs or args.vararg or args.kwonlyargs or args.kwarg or node.returns
                      or getattr(node, "type_params", None)), node, f"{node.name} has an unexpected signature")
        return args

    def component(self, node) -> None:
        args = self.function(node, "component", MODULE_CONSTANTS)
        _require(not args.defaults, node, f"component {node.name} has defaults")
        for arg in args.args:
            _require(_is_name(arg.annotation, *PARAMETER_TYPES) or _is_artifact(arg.annotation), arg,
                     f"argument {arg.arg} of {node.name} has an unexpected type")
        own = {a.arg for a in args.args}
        body = node.body
        _require(len(body) == 3 and _is_docstring(body[0]), node,
                 f"the body of {node.name} is not docstring, import, call")
        imp, call = body[1], body[2]
        _require(isinstance(imp, ast.ImportFrom) and imp.module == RUNTIME and imp.level == 0
                 and [(a.name, a.asname) for a in imp.names] == [(RUNTIME_ENTRY, None)], imp,
                 f"{node.name} imports something other than {RUNTIME_ENTRY}")
        _require(isinstance(call, ast.Expr) and isinstance(call.value, ast.Call)
                 and _is_name(call.value.func, RUNTIME_ENTRY) and not call.value.args
                 and all(k.arg and is_data(k.value, own) for k in call.value.keywords), call,
                 f"{node.name} does more than call {RUNTIME_ENTRY} with literals and its own arguments")
        self.components.add(node.name)

    def pipeline(self, node, expected: str | None) -> None:
        args = self.function(node, "pipeline")
        _require(expected is None or node.name == expected, node, f"the pipeline function is not {expected}")
        for arg in args.args:
            _require(_is_name(arg.annotation, *PARAMETER_TYPES), arg, f"parameter {arg.arg} has an unexpected type")
        _require(all(is_data(d) for d in args.defaults), node, "a parameter's default is not a literal")
        params = {a.arg for a in args.args}
        _require(not params & self.components, node, "a parameter shadows a component")
        self.defined -= params  # the names a parameter shadows cannot be used in the pipeline
        tasks: set[str] = set()
        for statement in node.body:
            if isinstance(statement, ast.Assign):
                self.task(statement, params, tasks)
            else:
                _require(isinstance(statement, ast.Expr), statement, f"unexpected {type(statement).__name__}")
                self.task_setting(statement.value, tasks)

    def task(self, node: ast.Assign, params: set, tasks: set) -> None:
        """`t = component(input=parameter | t0.output | t0.outputs["key"], ...)` or `t = dsl.importer(...)`."""
        _require(len(node.targets) == 1 and isinstance(node.targets[0], ast.Name), node, "not a task assignment")
        name, call = node.targets[0].id, node.value
        _require(name not in tasks | params | self.defined | BUILTINS, node, f"task {name!r} reuses a name")
        _require(isinstance(call, ast.Call) and not call.args and all(k.arg for k in call.keywords), node,
                 f"{name} is not a call with keyword arguments")
        if _is_dsl(call.func, "importer", module=DSL_ALIAS):
            literals = all(is_data(k.value) or _is_dsl(k.value, "Dataset", module=DSL_ALIAS) for k in call.keywords)
            _require(self.has_alias and DSL_ALIAS in self.defined and literals, node,
                     f"{DSL_ALIAS}.importer(...) of something other than literals")
        else:
            _require(_is_name(call.func, *self.components), node, f"{name} is not a task of a component")
            _require(all(_is_name(k.value, *params) or _is_output(k.value, tasks) for k in call.keywords), node,
                     f"{name} takes something other than parameters and task outputs")
        tasks.add(name)

    def task_setting(self, call, tasks: set) -> None:
        """`_set_timeout(task, seconds)`, or a chain of task methods on a task, with literal arguments."""
        if isinstance(call, ast.Call) and _is_name(call.func, SET_TIMEOUT_NAME):
            _require(self.has_set_timeout and SET_TIMEOUT_NAME in self.defined and len(call.args) == 2
                     and not call.keywords and _is_name(call.args[0], *tasks) and isinstance(call.args[1], ast.Constant)
                     and type(call.args[1].value) is int, call,
                     f"{SET_TIMEOUT_NAME}(...) of something other than task, int")
            return
        while True:
            _require(isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                     and call.func.attr in TASK_METHODS and not call.keywords
                     and all(is_data(a, tasks) for a in call.args), call, "not a task setting of literals")
            call = call.func.value
            if isinstance(call, ast.Name):
                _require(call.id in tasks, call, f"{call.id} is not a task")
                return


def _is_artifact(node) -> bool:
    """`dsl.Input[dsl.Dataset]`, `dsl.Output[dsl.Metrics]`, ..."""
    return (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute)
            and _is_dsl(node.value, *ARTIFACT_TYPES) and _is_dsl(node.slice, *ARTIFACT_TYPES[node.value.attr]))


def _is_output(node, tasks: set) -> bool:
    """`task.output` or `task.outputs["key"]` of an earlier task."""
    if isinstance(node, ast.Attribute):
        return node.attr == "output" and _is_name(node.value, *tasks)
    return (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str) and isinstance(node.value, ast.Attribute)
            and node.value.attr == "outputs" and _is_name(node.value.value, *tasks))
