"""process_state: what a step changes process-wide is put back, and what it may keep stays."""

from __future__ import annotations

import ast
import json
import logging
import os
import random
import subprocess
import sys
import types

import numpy as np
import pytest

from nbscale.kernels.process_state import DECIMAL_CONTEXT, ProcessState, restored_process_state


def test_environ_path_cwd_and_umask_come_back(tmp_path):
    cwd, path = os.getcwd(), list(sys.path)
    os.environ["NBSCALE_TEST_KEPT"] = "before"
    try:
        with restored_process_state():
            os.environ["NBSCALE_TEST_NEW"] = "1"
            os.environ["NBSCALE_TEST_KEPT"] = "changed"
            sys.path.insert(0, "/evil")
            os.chdir(tmp_path)
            os.umask(0o077)
        assert "NBSCALE_TEST_NEW" not in os.environ and os.environ["NBSCALE_TEST_KEPT"] == "before"
        assert os.getenv("NBSCALE_TEST_NEW") is None  # putenv/unsetenv too, not only the dict
        assert sys.path == path and os.getcwd() == cwd
        mask = os.umask(0)
        os.umask(mask)
        assert mask != 0o077
    finally:
        os.environ.pop("NBSCALE_TEST_KEPT", None)


def test_a_deleted_variable_and_a_replaced_path_list_come_back():
    path = sys.path
    name = next(iter(os.environ))
    value = os.environ[name]
    with restored_process_state():
        del os.environ[name]
        sys.path = ["/elsewhere"]
    assert os.environ[name] == value and sys.path is path and "/elsewhere" not in sys.path


def test_patched_functions_and_deleted_attributes_come_back():
    dumps, join = json.dumps, os.path.join
    state = ProcessState.save()
    json.dumps = lambda *a, **k: "patched"
    os.path.join = lambda *a: "patched"
    del json.loads
    changed = state.restore()
    assert json.dumps is dumps and os.path.join is join and json.loads("[1]") == [1]
    assert {"json.dumps", "posixpath.join", "json.loads"} <= set(changed)


def test_added_attributes_lazy_initialisation_and_counters_stay():
    module = types.ModuleType("nbscale_test_lazy")
    module.cache, module.installed, module.count = None, False, 0
    sys.modules[module.__name__] = module
    try:
        with restored_process_state():
            module.cache, module.installed, module.count = {"made": 1}, True, 5
            module.added = "new"
        assert module.cache == {"made": 1} and module.installed is True and module.count == 5
        assert module.added == "new"
    finally:
        del sys.modules[module.__name__]


def test_a_replaced_module_and_a_rebound_submodule():
    real = sys.modules["json"]
    with restored_process_state():
        sys.modules["json"] = types.ModuleType("json")
    assert sys.modules["json"] is real
    # an import binding a fresh submodule on its package is the import system's doing: it stays
    package = types.ModuleType("nbscale_test_pkg")
    package.sub = old_sub = types.ModuleType("nbscale_test_pkg.sub")
    sys.modules.update({"nbscale_test_pkg": package})
    try:
        with restored_process_state():
            new_sub = types.ModuleType("nbscale_test_pkg.sub")
            sys.modules["nbscale_test_pkg.sub"] = package.sub = new_sub
        assert package.sub is new_sub and package.sub is not old_sub
    finally:
        sys.modules.pop("nbscale_test_pkg", None)
        sys.modules.pop("nbscale_test_pkg.sub", None)


def test_a_seed_set_in_the_step_does_not_reach_later_code():
    with restored_process_state():
        random.seed(1)
        np.random.seed(1)
    after = (random.random(), np.random.random())
    random.seed(1)
    np.random.seed(1)
    assert after != (random.random(), np.random.random()), "reseeded from fresh entropy, not left seeded"


def test_numpy_random_loaded_and_seeded_by_the_step_is_reseeded():
    state = ProcessState.save()
    state.numpy_state = None  # as if numpy.random was first loaded in the step
    np.random.seed(1)
    assert "numpy.random (global state)" in state.restore()
    np.random.seed(1)
    first = np.random.random()
    state = ProcessState.save()
    state.numpy_state = None
    np.random.seed(1)
    state.restore()
    assert np.random.random() != first


def test_import_hooks_a_step_adds_stay_and_removed_ones_come_back():
    class Finder:
        def find_spec(self, *args):
            return None

    hooks, finder = list(sys.meta_path), Finder()
    with restored_process_state():
        sys.meta_path.append(finder)
    assert sys.meta_path[-1] is finder
    sys.meta_path.remove(finder)
    with restored_process_state():
        sys.meta_path.pop(0)
    assert sys.meta_path == hooks


def test_root_logger_and_recursion_limit_come_back():
    root, limit = logging.getLogger(), sys.getrecursionlimit()
    handlers, level = list(root.handlers), root.level
    with restored_process_state():
        logging.basicConfig(level=logging.DEBUG, force=True)
        sys.setrecursionlimit(limit + 100)
    assert root.handlers == handlers and root.level == level and sys.getrecursionlimit() == limit


def test_the_decimal_context_a_step_changes_comes_back_and_computing_with_it_is_no_change():
    """It is the thread's: on a shared worker, a precision a step set reached another run's steps."""
    import decimal

    before = decimal.getcontext().prec
    with restored_process_state() as state:
        decimal.getcontext().prec = 4
        decimal.getcontext().traps[decimal.Inexact] = True
    assert decimal.getcontext().prec == before and not decimal.getcontext().traps[decimal.Inexact]
    assert state.restored == [DECIMAL_CONTEXT]
    with restored_process_state() as state:
        assert str(decimal.Decimal(1) / decimal.Decimal(3)).startswith("0.333")  # sets flags only
    assert state.restored == []


def test_restoring_also_happens_when_the_block_raises():
    dumps = json.dumps
    try:
        with restored_process_state():
            json.dumps = None
            raise RuntimeError("step failed")
    except RuntimeError:
        pass
    assert json.dumps is dumps


def test_nothing_changed_reports_nothing():
    state = ProcessState.save()
    assert state.restore() == []


def test_dict_versions_change_with_every_change():
    from nbscale.kernels.process_state import changed_indexes, dict_version, version_slots, versions_at

    namespace = types.ModuleType("nbscale_test_versions").__dict__
    # CPython up to 3.13 keeps a version number in every dict; elsewhere the self-test finds none
    # and every module is compared instead (what test_later_snapshots_... covers either way)
    has_versions = sys.implementation.name == "cpython" and sys.version_info < (3, 14)
    assert (dict_version(namespace) is not None) == has_versions
    if not has_versions:
        return
    seen = [dict_version(namespace)]
    for change in (lambda: namespace.update(x=1), lambda: namespace.update(x=2), lambda: namespace.pop("x")):
        change()
        seen.append(dict_version(namespace))
    assert len(set(seen)) == len(seen)
    other = {}
    slots = version_slots([namespace, other])
    before = versions_at(slots)
    other["y"] = 1
    assert changed_indexes(versions_at(slots), before) == [1]


def test_later_snapshots_see_changes_made_between_steps():
    """Copies are kept from one snapshot to the next: one made stale by a change between steps
    must not come back."""
    module = types.ModuleType("nbscale_test_between")
    module.setting = original = (lambda: None)
    sys.modules[module.__name__] = module
    try:
        with restored_process_state():
            module.setting = (lambda: None)
        assert module.setting is original
        module.setting = between = (lambda: None)  # outside any step: the process's own business
        with restored_process_state():
            module.setting = (lambda: None)
        assert module.setting is between
        with restored_process_state():
            del module.setting
        assert module.setting is between
    finally:
        del sys.modules[module.__name__]


def test_the_programs_own_globals_are_left_alone():
    main, mp_main = sys.modules["__main__"], sys.modules.get("__mp_main__")
    sys.modules["__mp_main__"] = main  # as multiprocessing registers it
    marker = object()
    main.nbscale_test_global = marker
    try:
        with restored_process_state():
            main.nbscale_test_global = "the program changed it meanwhile"
        assert main.nbscale_test_global == "the program changed it meanwhile"
    finally:
        del main.nbscale_test_global
        if mp_main is None:
            del sys.modules["__mp_main__"]


def test_a_module_moved_to_another_name_comes_back():
    """The same module objects in the same number are not enough: under their names, in order."""
    module = types.ModuleType("nbscale_test_moved")
    sys.modules[module.__name__] = module  # the last entry
    try:
        state = ProcessState.save()
        del sys.modules[module.__name__]
        sys.modules["nbscale_test_renamed"] = module
        changed = state.restore()
        assert sys.modules.get(module.__name__) is module and "sys.modules['nbscale_test_moved']" in changed
    finally:
        sys.modules.pop(module.__name__, None)
        sys.modules.pop("nbscale_test_renamed", None)


def test_a_variable_a_library_sets_on_first_import_stays_and_others_come_back(tmp_path):
    """What an import new to the process sets stays (`library_imports_kept`), also when the step then
    removes it and leaves the environment as it was before the step; the step's own change is put back."""
    from nbscale.kernels.process_state import library_imports_kept

    (tmp_path / "nbscale_test_sets_env.py").write_text("import os\nos.environ['NBSCALE_TEST_LIBRARY'] = '1'\n")
    sys.path.insert(0, str(tmp_path))
    os.environ["NBSCALE_TEST_STEP"] = "before"
    try:
        with restored_process_state() as state:
            os.environ["NBSCALE_TEST_STEP"] = "changed"
            with library_imports_kept():
                import nbscale_test_sets_env  # noqa: F401
        assert os.environ.get("NBSCALE_TEST_LIBRARY") == "1" and os.environ["NBSCALE_TEST_STEP"] == "before"
        assert "os.environ['NBSCALE_TEST_LIBRARY']" not in state.restored
        del os.environ["NBSCALE_TEST_LIBRARY"]
        sys.modules.pop("nbscale_test_sets_env")
        with restored_process_state():
            with library_imports_kept():
                import nbscale_test_sets_env  # noqa: F401, F811
            del os.environ["NBSCALE_TEST_LIBRARY"]  # the environment is as before the step again
        assert os.environ.get("NBSCALE_TEST_LIBRARY") == "1"
        with restored_process_state() as state:  # nothing changed: nothing put back
            pass
        assert state.restored == []
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("nbscale_test_sets_env", None)
        for name in ("NBSCALE_TEST_LIBRARY", "NBSCALE_TEST_STEP"):
            os.environ.pop(name, None)


def test_a_proc_status_field_is_read_and_the_umask_from_it_without_changing_it():
    from nbscale.kernels.process_state import _umask, proc_status_field

    old = os.umask(0o027)
    try:
        assert _umask() == 0o027 and proc_status_field(b"Umask") == b"0027"
        assert os.umask(0o027) == 0o027, "reading the umask changed it"
    finally:
        os.umask(old)
    assert proc_status_field(b"VmHWM").endswith(b" kB")
    assert proc_status_field(b"Name")  # the first line
    assert proc_status_field(b"NoSuchField") is None


def test_standard_descriptors_a_step_closed_or_redirected_come_back(tmp_path):
    before = {fd: os.fstat(fd) for fd in (1, 2)}
    spare = {fd: os.dup(fd) for fd in (1, 2)}  # to mend the test's own descriptors if restoring fails
    try:
        with restored_process_state() as state:
            os.close(1)
            reused = os.open(tmp_path / "store-file", os.O_WRONLY | os.O_CREAT)  # the lowest free: 1
            assert reused == 1
            os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
        for fd in (1, 2):
            now = os.fstat(fd)
            assert (now.st_dev, now.st_ino) == (before[fd].st_dev, before[fd].st_ino)
        assert {"standard output (file descriptor 1)", "standard error (file descriptor 2)"} <= set(state.restored)
        os.write(1, b"")  # usable again
        assert (tmp_path / "store-file").read_bytes() == b""
    finally:
        for fd, copy in spare.items():
            if os.fstat(fd).st_ino != before[fd].st_ino:
                os.dup2(copy, fd)
            os.close(copy)


def test_unchanged_descriptors_are_not_reported_and_no_copy_is_left_open():
    # Only the copies the state made are checked: other tests' threads may open or
    # close descriptors of this process meanwhile.
    with restored_process_state() as state:
        copies = [copy for copy, _ in state.std_fds.values()]
    assert copies, "the state kept no copy of stdin, stdout or stderr"
    assert not [what for what in state.restored if "descriptor" in what]
    assert not [copy for copy in copies if _is_open(copy)]


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_gc_switched_off_and_its_thresholds_come_back():
    import gc

    threshold = gc.get_threshold()
    try:
        with restored_process_state() as state:
            gc.disable()
            gc.set_threshold(1, 1, 1)
        assert gc.isenabled() and gc.get_threshold() == threshold
        assert {"gc.disable", "gc.set_threshold"} <= set(state.restored)
    finally:
        gc.enable()
        gc.set_threshold(*threshold)


def test_socket_default_timeout_comes_back():
    import socket

    before = socket.getdefaulttimeout()
    try:
        with restored_process_state() as state:
            socket.setdefaulttimeout(0.001)
        assert socket.getdefaulttimeout() == before and state.restored == ["socket.setdefaulttimeout"]
    finally:
        socket.setdefaulttimeout(before)


def test_switch_interval_and_int_digit_limit_come_back():
    interval, digits = sys.getswitchinterval(), sys.get_int_max_str_digits()
    try:
        with restored_process_state() as state:
            sys.setswitchinterval(0.5)
            sys.set_int_max_str_digits(0)
        assert sys.getswitchinterval() == interval and sys.get_int_max_str_digits() == digits
        assert {"sys.setswitchinterval", "sys.set_int_max_str_digits"} <= set(state.restored)
    finally:
        sys.setswitchinterval(interval)
        sys.set_int_max_str_digits(digits)


def test_logging_disable_comes_back():
    before = logging.root.manager.disable
    try:
        with restored_process_state() as state:
            logging.disable(logging.CRITICAL)
        assert logging.root.manager.disable == before and state.restored == ["logging.disable"]
        assert logging.getLogger("nbscale_test").isEnabledFor(logging.CRITICAL)
    finally:
        logging.disable(before)


def test_levels_of_loggers_there_were_come_back_and_new_loggers_stay():
    existing = logging.getLogger("nbscale_test_existing.lib")
    existing.setLevel(logging.INFO)
    with restored_process_state() as state:
        existing.setLevel(logging.CRITICAL)
        logging.getLogger("nbscale_test_new").setLevel(logging.ERROR)
        existing.disabled = True  # as `logging.config.dictConfig` leaves the loggers it finds
    assert existing.level == logging.INFO and not existing.disabled and existing.isEnabledFor(logging.INFO)
    assert logging.getLogger("nbscale_test_new").level == logging.ERROR
    assert "logging.getLogger('nbscale_test_existing.lib')" in state.restored


def test_soft_resource_limits_come_back():
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        with restored_process_state() as state:
            resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (soft, hard)
        assert state.restored == ["RLIMIT_NOFILE (soft limit)"]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_lowered_hard_limit_is_said_and_the_soft_one_comes_back_as_far_as_it_allows():
    """In a process of its own: a lowered hard limit may stay lowered for good."""
    code = """if True:
        import resource
        from nbscale.kernels.process_state import restored_process_state
        which = resource.RLIMIT_NOFILE
        with restored_process_state() as state:
            resource.setrlimit(which, (64, 64))
        print(repr((resource.getrlimit(which), state.restored)))
    """
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    limits, restored = ast.literal_eval(out)
    assert limits == (64, 64)
    assert len(restored) == 1 and restored[0].startswith("RLIMIT_NOFILE: the step lowered its hard limit to 64")


def test_names_added_to_builtins_go_and_rebound_ones_come_back(tmp_path):
    import builtins

    from nbscale.kernels.process_state import library_imports_kept

    credits = builtins.credits
    (tmp_path / "nbscale_test_adds_builtin.py").write_text("import builtins\nbuiltins.NBSCALE_TEST_LIB = 1\n")
    sys.path.insert(0, str(tmp_path))
    try:
        with restored_process_state() as state:
            builtins.NBSCALE_TEST_LEAKED = "A"
            builtins.credits = "rebound"
            with library_imports_kept():
                import nbscale_test_adds_builtin  # noqa: F401
        assert not hasattr(builtins, "NBSCALE_TEST_LEAKED") and builtins.credits is credits
        assert {"builtins.NBSCALE_TEST_LEAKED", "builtins.credits"} <= set(state.restored)
        assert builtins.NBSCALE_TEST_LIB == 1, "what a library adds when first imported stays"
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("nbscale_test_adds_builtin", None)
        for name in ("NBSCALE_TEST_LEAKED", "NBSCALE_TEST_LIB"):
            builtins.__dict__.pop(name, None)
        builtins.credits = credits


def test_thread_and_unraisable_hooks_come_back_as_patches():
    import threading

    hooks = threading.excepthook, sys.unraisablehook
    with restored_process_state() as state:
        threading.excepthook = sys.unraisablehook = lambda *args: None
    assert (threading.excepthook, sys.unraisablehook) == hooks
    assert {"threading.excepthook", "sys.unraisablehook"} <= set(state.restored)


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_a_local_modules_data_changed_in_place_is_put_back_after_the_step(tmp_path, engine):
    # as its rebound names are: a later step on the same process saw the list `fit` filled, one on
    # another worker did not, and the cached `report` kept what it saw after `fit` ran again (the
    # call reads a name of the step: it cannot be replayed before later steps, and `check` says so)
    from conftest import make_notebook

    from nbscale.kernels.runner import RunOptions, run_notebook

    (tmp_path / "mlog.py").write_text("HIST = ALIAS = []\nSEEN = set()\nBY = {'a': 1}\n"
                                      "def log(k, v, into=HIST):\n    into.append((k, v)); SEEN.add(k); BY[k] = v\n")
    cells = [("import json\nimport mlog", ["imports"]), ("C = 1.0", ["parameters"]),
             ("score = C * 10\nmlog.log('lr', score)", ["step:fit"]),
             ("json.dump([mlog.HIST, sorted(mlog.SEEN), mlog.BY, mlog.ALIAS is mlog.HIST is mlog.log.__defaults__[0]],"
              " open('out.json', 'w'))", ["step:report"]),
             ("score2 = C * 10\nmlog.log('kept', score2)\nkept = mlog.HIST", ["step:keeps"]),
             ("json.dump(kept, open('kept.json', 'w'))", ["step:reads"])]  # the list itself handed on
    nb = make_notebook(tmp_path, cells, name="state")
    options = RunOptions(engine=engine, workers=1 if engine == "dask" else None)
    for value in (1.0, 2.0):
        result = run_notebook(nb, {"C": value}, options=options)
        assert result.ok and json.loads((tmp_path / "out.json").read_text()) == [[], [], {"a": 1}, True]
        assert json.loads((tmp_path / "kept.json").read_text()) == [["kept", value * 10]]
    assert [s["cached"] for s in result.steps] == [False, True, False, False]  # `report` read nothing `fit` did


@pytest.fixture
def local_module(tmp_path, monkeypatch):
    """write(source) → a module beside a notebook (in tmp_path), imported as a step imports one: a
    local module of the notebook's (`dependencies.step_local_module_names`). Forgotten afterwards."""
    from nbscale.kernels import dependencies

    monkeypatch.syspath_prepend(str(tmp_path))
    names = []

    def write(source, imported=True):
        name = f"nbscale_local_{len(names)}_{os.getpid()}_{id(names)}"
        (tmp_path / f"{name}.py").write_text(source)
        names.append(name)
        dependencies._STEP_IMPORTS.add(name)  # as the import of a step is seen
        return __import__(name) if imported else name

    yield write
    for name in names:
        sys.modules.pop(name, None)
        dependencies._STEP_IMPORTS.discard(name)


def test_containers_a_local_modules_containers_hold_are_put_back_and_their_aliases_stay(local_module):
    m = local_module("A = []\nREG = {'a': A, 'b': {'c': [1]}}\nROWS = [[1], [2]]\nLOOP = []\nLOOP.append(LOOP)\n"
                     "def add(x, into=REG['a'], *, deep=REG['b']['c']):\n    into.append(x)\n    deep.append(x)\n")
    rows, inner = m.ROWS, m.REG["b"]["c"]
    state = ProcessState.save()
    m.add(5)  # through the nested containers only: REG and its dict "b" hold the same objects as before
    kept = m.REG["b"]  # handed on by the step: it keeps what the step made
    m.LOOP[0].append(2)
    m.ROWS[0].extend([])  # no change
    assert state.restore() == []  # (data: not named)
    assert m.REG == {"a": [], "b": {"c": [1]}} and m.A == [] and m.LOOP[0] is m.LOOP and len(m.LOOP) == 1
    assert m.REG["a"] is m.A is m.add.__defaults__[0], "names and defaults that held one list still do"
    assert m.REG["b"]["c"] is m.add.__kwdefaults__["deep"] and m.REG["b"]["c"] is not inner
    assert kept == {"c": [1, 5]} and kept is not m.REG["b"] and inner == [1, 5]
    assert m.ROWS is rows and m.ROWS[0] is rows[0], "what no change reached stays itself"
    m.add(6)
    assert m.REG == {"a": [6], "b": {"c": [1, 6]}}, "the module's functions use the copies"


def test_the_standard_librarys_dicts_and_deques_are_put_back_too(local_module):
    m = local_module("from collections import Counter, OrderedDict, defaultdict, deque\n"
                     "COUNTS = Counter()\nBY = defaultdict(list)\nORDER = OrderedDict(a=1, b=2)\nQ = deque(maxlen=3)\n")
    state = ProcessState.save()
    m.COUNTS["x"] += 1
    m.BY["k"].append(1)
    m.ORDER.move_to_end("a")
    m.Q.append(1)
    state.restore()
    assert (m.COUNTS, dict(m.BY), list(m.ORDER), list(m.Q)) == ({}, {}, ["a", "b"], [])
    assert type(m.COUNTS).__name__ == "Counter" and m.BY.default_factory is list and m.Q.maxlen == 3
    m.BY["z"].append(2)
    assert m.BY == {"z": [2]}


def test_containers_are_followed_within_the_item_limit(local_module, monkeypatch):
    from nbscale.kernels import process_state

    m = local_module("WIDE = [[1, 2], [3, 4], [5]]\nSHORT = [[1], [[2]]]\n")
    monkeypatch.setattr(process_state, "MAX_CONTAINER_COPY", 5)  # WIDE's 3 items and [1, 2]; not [3, 4] too
    state = ProcessState.save()
    for inner in (m.WIDE[0], m.WIDE[1], m.WIDE[2], m.SHORT[1][0]):
        inner.append(0)
    state.restore()
    assert m.WIDE == [[1, 2], [3, 4, 0], [5, 0]], "beyond the limit a nested list is not followed"
    assert m.SHORT == [[1], [[2]]], "at any depth within the limit"


def test_what_a_local_module_imported_in_a_step_does_to_another_at_import_stays(tmp_path):
    # a plugin a step imports registers itself in a registry it imports too: putting the registry
    # back after the step emptied it for good (the plugin stays imported, its import never runs again)
    from conftest import make_notebook

    from nbscale.kernels.runner import RunOptions, run_notebook

    (tmp_path / "registry.py").write_text("PLUGINS = {}\ndef register(f):\n    PLUGINS[f.__name__] = f\n    return f\n")
    (tmp_path / "plugin_a.py").write_text("from registry import register\n@register\ndef alpha():\n    return 1\n")
    nb = make_notebook(tmp_path, [("import json", ["imports"]),
                                  ("import plugin_a, registry\nn1 = sorted(registry.PLUGINS)", ["step:one"]),
                                  ("import plugin_a, registry\nn2 = sorted(registry.PLUGINS)", ["step:two"])])
    result = run_notebook(nb, options=RunOptions(engine="local", use_cache=False))
    assert result.ok and (result.load("one")["n1"], result.load("two")["n2"]) == (["alpha"], ["alpha"])
