"""Process-wide state a step may change, saved before the step and put back after it.

Steps of different runs share worker processes (a Dask cluster, the CLI's own process under the
local engine). What one step changes for the whole process — `sys.path`, `os.environ`, the
working directory, the umask, the global random generators' seeds, `sys.modules`, a library
function it patched (`json.dumps = ...`), signal handlers, the root logger, the levels of the
other loggers, `logging.disable`, the recursion limit, the thread switch interval, gc switched off,
socket's default timeout, names added to builtins, soft resource limits (open files, stack, address
space, core size), the standard file descriptors 0–2 (closed, or pointed at a file) —
would otherwise be what a later step of another notebook sees. `ProcessState.save()` before the
step and `.restore()` after it (or the `restored_process_state()` context manager) put back what
the step changed.

What is restored, and what is left on purpose:
- Module attributes of modules imported before the step whose value the step rebound (or deleted)
  get their old object back. Attributes the step *added* stay (caches and lazy imports add them),
  and so do rebindings that are bookkeeping rather than patches: a submodule bound on its parent
  package by an import, import metadata (`__spec__`, `__file__`, ...), and every old value that is
  data rather than behaviour — only functions, classes, modules and other callables come back. A
  library's own data (a flag of lazy initialisation, a singleton made on first use, a counter, a
  timing a gc callback writes while the step runs) must not go back: undoing it would do the
  work twice or undo what someone other than the step did. The notebook's own local modules
  (files beside it that steps imported) are put back whole, data too, and lose what the step
  added: `helpers.LEVEL = 5` in one step must not reach whichever step runs next on that worker
  (the compiler replays such a statement before every later step, as top to bottom). The lists,
  dicts and sets they hold changed in place (`HIST.append(x)`, `REG["a"].append(x)`, at any depth
  within `MAX_CONTAINER_COPY` items) are replaced by copies of what they held (`LocalData`).
- `sys.path` is put back as it was. Import hooks (`sys.meta_path`, `sys.path_hooks`) the step
  added stay (a library imported in the step may depend on its hook, as `six.moves` does); hooks
  it removed or replaced come back.
- Modules the step imported first are not saved (nothing was there to save): a patch the step
  applies to a library it imported itself stays in the process, and so does what a step changes
  in a local module it imported first itself (not the imports cell): its import is the state it
  is in, and its top-level code may have changed other modules as they would have it (a plugin
  registering itself in a registry), which putting them back would undo for good. Modules the step
  added to `sys.modules` (by importing, or by hand) stay too: what imports add is the import
  system's cache, not told apart from a module put there by hand; replaced or removed ones come back.
- So `string.ascii_letters = "..."` stays: a library module's data, left as said above.
- Names the step added to builtins go, data it rebound there comes back (functions come back as
  module patches do). Names a library adds when first imported stay (`library_imports_kept`).
- Named loggers that existed before the step get their level (and `disabled`) back; loggers it
  made, and handlers it added to named loggers, stay.
- gc is switched back on if the step switched it off, never off again: gc may be off at the
  snapshot only for a moment (another thread's `dask.utils.disable_gc`).
- Of the resource limits, only the soft ones come back; a hard limit the step lowered cannot be
  raised again in the process, which the warning says.
- The global random generators (`random`, numpy's legacy RandomState) that the step seeded or
  drew from are reseeded from fresh entropy rather than put back: a seed does not reach later
  steps, and later steps do not all draw the same numbers (the worker's own threads draw from
  `random` too).
- Attributes of classes (`pandas.DataFrame.head = ...`) are not saved: that would mean copying the
  dict of every class of every loaded module before each step (tens of thousands of classes,
  where the module check costs about a millisecond with pandas and scikit-learn loaded).
- The state of objects changed in place (a library's registry) is not saved here; the options of
  numpy, pandas and scikit-learn (`pd.set_option`, ...) are put back by
  `kernel_libraries.LibrarySettings`, matplotlib's rcParams by `kernel_libraries` too.
- `sys.stdout`/`sys.stderr`, `sys` hooks, builtins IPython installs and the warning filters are
  put back by the step shell (`shell.StepEnvironment`); they are not repeated here. (While a cell
  runs, IPython itself holds `sys.excepthook`, and puts back the one it found after the cell, so a
  step's `sys.excepthook = ...` ends with its cell. `threading.excepthook` and `sys.unraisablehook`
  are module functions: a step's replacement comes back as any patch does.)

Checking the modules is exact and cheap. The saved state holds a copy of the dict of every loaded
module (the copies keep the old objects alive, so identity comparisons are sound). On CPython
every change to a dict gives it a new version number (PEP 509's `ma_version_tag`, read through
ctypes after a self-test at import): a module whose dict kept its version is unchanged, and a copy
made for an earlier step is reused while the version holds, so a step pays for the few modules
it changed, not for all 1,000+. Without version numbers (another interpreter, or a layout the
self-test rejects) every dict is copied and compared by identity, a module at a time in C
(`map(operator.is_, ...)`) — 20–40 ms a step with pandas and scikit-learn loaded
(`bench/bench_isolation.py`). Either way, only a module that differs is looked at name by name.
"""

from __future__ import annotations

import builtins
import collections
import ctypes
import gc
import itertools
import logging
import operator
import os
import random
import signal
import socket
import sys
import threading
import time
import types
from contextlib import contextmanager

try:
    import resource
except ImportError:  # not on Windows
    resource = None

__all__ = ["DECIMAL_CONTEXT", "NUMPY_RANDOM_STATE", "RANDOM_STATE", "LocalData", "ModuleDicts", "ProcessState",
           "changed_indexes", "dict_version", "environment", "proc_status_field", "restored_process_state",
           "set_environ", "version_slots", "versions_at"]

_ABSENT = object()
# Module attributes the import system owns: rebinding them is not a patch (importlib.reload,
# dependency tracking compares `__spec__` objects).
IMPORT_METADATA = frozenset({"__spec__", "__loader__", "__file__", "__cached__", "__path__", "__package__",
                             "__name__", "__doc__", "__builtins__", "__warningregistry__"})
SYS_LISTS = ("path", "meta_path", "path_hooks")
KEEP_ADDED = ("meta_path", "path_hooks")  # lists whose added entries stay
RANDOM_STATE, NUMPY_RANDOM_STATE = "random (global state)", "numpy.random (global state)"
DECIMAL_CONTEXT = "decimal's context (precision, rounding, traps)"
STD_FD_NAMES = {0: "standard input (file descriptor 0)", 1: "standard output (file descriptor 1)",
                2: "standard error (file descriptor 2)"}
HANDLED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGCHLD", "SIGPIPE",
                   "SIGWINCH", "SIGBREAK")
# Limits a step may lower for itself (`resource.setrlimit`); only their soft limits come back.
SOFT_RLIMITS = ("RLIMIT_NOFILE", "RLIMIT_STACK", "RLIMIT_AS", "RLIMIT_CORE")
_LOGGER_SETTINGS = operator.attrgetter("level", "disabled")  # (dictConfig disables the loggers it finds)


_active: list[ProcessState] = []  # the snapshots whose blocks run now (a step's, one at a time)


@contextmanager
def restored_process_state():
    """Save process-wide state, run the block, put back what it changed (also when it raises);
    `.restored` of the state it yields then names what was put back."""
    state = ProcessState.save()
    _active.append(state)
    try:
        yield state
    finally:
        _active.remove(state)
        state.restored = state.restore()


@contextmanager
def library_imports_kept():
    """Environment variables the block sets while it imports modules new to the process stay after
    the step (the running snapshot takes them) and are no change to warn about: a library sets them
    for itself when first imported (scikit-learn's KMP_* variables) and stays imported, so every
    later step runs with them, as in a kernel. The imports cell runs in this block. The notebook's
    local modules it imported first are saved as they are after it, to be put back after the step."""
    before_env, before_modules = _environ_data(os.environ), len(sys.modules)
    before_builtins = builtins.__dict__.copy()
    if before_env is None:  # no encoded entries to copy in C: the decoded ones
        before_env = os.environ.copy()
    try:
        yield
    finally:
        if _active and len(sys.modules) > before_modules:
            _keep_environment_changes(_active[-1], _decoded(before_env), os.environ.copy())
            _keep_new_builtins(_active[-1], before_builtins)
            _active[-1].save_new_local_modules()


def _decoded(environ: dict) -> dict:
    """`os.environ`'s entries from `_environ_data` (or already decoded ones, as they are)."""
    decode_key, decode_value = getattr(os.environ, "decodekey", None), getattr(os.environ, "decodevalue", None)
    if decode_key is None or decode_value is None or not all(isinstance(k, bytes) for k in environ):
        return environ
    return {decode_key(k): decode_value(v) for k, v in environ.items()}


def _keep_new_builtins(state: ProcessState, before: dict) -> None:
    """Names a library adds to builtins when first imported stay, as its environment variables do:
    it stays imported and would not add them again."""
    for name, value in builtins.__dict__.items():
        if name not in before:
            state.builtins[name] = value


def _keep_environment_changes(state: ProcessState, before: dict, now: dict) -> None:
    state.environ_data = None  # what to put back is `environ_items` now, not the saved copy
    for name in before.keys() | now.keys():
        if before.get(name) == now.get(name):
            continue
        if name in now:
            state.environ_items[name] = now[name]
        else:
            state.environ_items.pop(name, None)


class ProcessState:
    """A snapshot of process-wide state; `restore()` puts back what changed since and says what."""

    def __init__(self):
        self.modules: dict = {}
        self.modules_version: int | None = None
        self.module_dicts: tuple = ([], [], [], None, [])  # see ModuleDicts.snapshot
        self.sys_lists: dict[str, tuple[list, list]] = {}
        self.environ = self.environ_items = None
        self.environ_data: dict | None = None  # os.environ's own (encoded) entries, to see no change in C
        self.cwd: str | None = None
        self.umask = 0
        self.random_state = None
        self.numpy_state = None
        self.decimal_context = None  # a copy of the thread's, when decimal is loaded
        self.signals: dict = {}
        self.recursion_limit = 0
        self.switch_interval = 0.0
        self.int_max_str_digits: int | None = None  # (Python 3.11+)
        self.gc_enabled, self.gc_threshold = True, ()
        self.socket_timeout: float | None = None
        self.builtins: dict = {}
        self.rlimits: dict[str, tuple[int, tuple[int, int]]] = {}  # name → resource, (soft, hard)
        self.logging_disable = 0
        self.loggers: list[logging.Logger] = []  # the named loggers there were, and their settings
        self.logger_settings: list[tuple[int, bool]] = []
        self.root_handlers: list = []
        self.root_level = 0
        self.std_fds: dict[int, tuple[int, tuple]] = {}  # 0, 1, 2 → a copy of the descriptor, what it was
        self.new_local_modules: dict[str, tuple[types.ModuleType, dict]] = {}  # name → module, its dict's copy
        self.local_data = LocalData()  # the lists, dicts and sets of the local modules, and copies of them
        self.restored: list[str] = []  # set by restored_process_state()

    @classmethod
    def save(cls) -> ProcessState:
        state = cls()
        state.modules_version = dict_version(sys.modules)
        state.modules = dict(sys.modules)
        state.module_dicts = _MODULE_DICTS.snapshot()
        state.local_data.add(_local_modules())
        state.sys_lists = {name: (getattr(sys, name), list(getattr(sys, name))) for name in SYS_LISTS}
        state.environ, state.environ_items = os.environ, dict(os.environ)
        state.environ_data = _environ_data(os.environ)
        state.cwd = _cwd()
        state.umask = _umask()
        state.random_state = random.getstate()
        state.numpy_state = _numpy_state()
        state.decimal_context = _decimal_context()
        state.signals = _signal_handlers()
        state.recursion_limit = sys.getrecursionlimit()
        state.switch_interval = sys.getswitchinterval()
        state.int_max_str_digits = _int_max_str_digits()
        state.gc_enabled, state.gc_threshold = gc.isenabled(), gc.get_threshold()
        state.socket_timeout = socket.getdefaulttimeout()
        state.builtins = builtins.__dict__.copy()
        state.rlimits = _rlimits()
        root = logging.getLogger()
        state.root_handlers, state.root_level = list(root.handlers), root.level
        state.logging_disable = root.manager.disable
        state.loggers = _named_loggers()
        state.logger_settings = list(map(_LOGGER_SETTINGS, state.loggers))
        state.std_fds = _saved_std_fds()
        return state

    def save_new_local_modules(self) -> None:
        """Save the dicts of the local modules loaded since `save()` (by the imports cell): `restore`
        puts them back as they are now."""
        for name in _local_modules():
            module = sys.modules.get(name)
            if name not in self.modules and name not in self.new_local_modules and _is_module(module):
                self.new_local_modules[name] = (module, module.__dict__.copy())
                self.local_data.add([name])

    def restore(self) -> list[str]:
        """Put back what changed since `save()`; the names of what was put back, e.g. `json.dumps`."""
        changed: list[str] = []
        for part in (self._restore_modules, self._restore_attributes, self._restore_sys_lists,
                     self._restore_environ, self._restore_cwd, self._restore_random, self._restore_decimal,
                     self._restore_misc, self._restore_interpreter, self._restore_gc,
                     self._restore_socket_timeout, self._restore_builtins, self._restore_rlimits,
                     self._restore_logging_disable, self._restore_logger_settings, self._restore_std_fds):
            try:
                changed.extend(part())
            except Exception as exc:  # noqa: BLE001 - one part failing must not stop the others
                changed.append(f"<could not restore: {exc!r}>")
        return changed

    # --- modules ---------------------------------------------------------------------------------
    def _restore_modules(self) -> list[str]:
        if self.modules_version is not None and dict_version(sys.modules) == self.modules_version:
            return []
        if _same_entries(sys.modules, self.modules):  # the step shell swapped `__main__` and back: in C
            return []
        changed = []
        for name, module in self.modules.items():
            if sys.modules.get(name, _ABSENT) is not module:
                sys.modules[name] = module
                changed.append(f"sys.modules[{name!r}]")
        return changed

    def _restore_attributes(self) -> list[str]:
        modules, dicts, slots, versions, copies = self.module_dicts
        if versions is None:  # no version numbers: every module is compared
            suspects = range(len(modules))
        else:
            suspects = changed_indexes(versions_at(slots), versions)
        changed, local = [], None
        for i in suspects:
            now, old = dicts[i], copies[i]
            if len(now) == len(old) and all(map(operator.is_, now.values(), old.values())):
                continue  # changed and changed back, or no version numbers: decided in C
            if local is None:
                local = _local_modules()
            changed.extend(_restore_module(modules[i], old, modules[i].__name__ in local))
        for module, old in self.new_local_modules.values():
            changed.extend(_restore_module(module, old, local=True))
        self.local_data.restore()  # (data: not named)
        return changed

    # --- interpreter and OS state ------------------------------------------------------------------
    def _restore_sys_lists(self) -> list[str]:
        changed = []
        for name, (obj, items) in self.sys_lists.items():
            if getattr(sys, name) is not obj:
                setattr(sys, name, obj)
                changed.append(f"sys.{name}")
            if len(obj) == len(items) and all(map(operator.is_, obj, items)):
                continue
            added = [x for x in obj if not any(x is y for y in items)] if name in KEEP_ADDED else []
            if added and len(obj) - len(added) == len(items):
                continue  # only additions, which stay
            obj[:] = items + added
            changed.append(f"sys.{name}")
        return changed

    def _restore_environ(self) -> list[str]:
        changed = []
        if os.environ is not self.environ:
            os.environ = self.environ  # noqa: B003 - the mapping that calls putenv, put back
            changed.append("os.environ")
        elif self.environ_data is not None and _environ_data(os.environ) == self.environ_data:
            return []  # nothing set or deleted: compared without decoding every variable
        return changed + [f"os.environ[{name!r}]" for name in set_environ(self.environ_items)]

    def _restore_cwd(self) -> list[str]:
        if self.cwd is None or _cwd() == self.cwd:
            return []
        try:
            os.chdir(self.cwd)
        except OSError:  # the folder went away: nothing to go back to
            return []
        return ["the working directory"]

    def _restore_random(self) -> list[str]:
        """Reseed the global generators the step used or seeded from fresh entropy, as a new process
        has them: putting the old state back would hand every later step the same numbers."""
        changed = []
        if random.getstate() != self.random_state:
            random.seed()
            changed.append(RANDOM_STATE)
        numpy_random = sys.modules.get("numpy.random")
        if numpy_random is None:
            return changed
        if self.numpy_state is None or not _same_numpy_state(numpy_random.get_state(), self.numpy_state):
            numpy_random.seed()
            changed.append(NUMPY_RANDOM_STATE)
        return changed

    def _restore_decimal(self) -> list[str]:
        """decimal's context of this thread: a precision a step set would reach the next step (or the
        next run's, on a shared worker) that runs in the thread."""
        decimal = sys.modules.get("decimal")
        if decimal is None:
            return []
        saved = self.decimal_context if self.decimal_context is not None else decimal.Context()
        if _decimal_settings(decimal.getcontext()) == _decimal_settings(saved):
            return []
        decimal.setcontext(saved)
        return [DECIMAL_CONTEXT]

    def _restore_misc(self) -> list[str]:
        changed = []
        if os.umask(self.umask) != self.umask:
            changed.append("umask")
        if sys.getrecursionlimit() != self.recursion_limit:
            sys.setrecursionlimit(self.recursion_limit)
            changed.append("recursion limit")
        for signum, handler in self.signals.items():
            if signal.getsignal(signum) is not handler and handler is not None:
                signal.signal(signum, handler)
                changed.append(f"signal handler {signum}")
        root = logging.getLogger()
        if root.handlers != self.root_handlers or root.level != self.root_level:
            root.handlers[:] = self.root_handlers
            root.setLevel(self.root_level)
            changed.append("root logger")
        return changed

    def _restore_interpreter(self) -> list[str]:
        """The interpreter's own settings: the thread switch interval (a step's 0.5 s would make
        every other thread of the worker, its heartbeats too, wait that long for the GIL)."""
        changed = []
        if sys.getswitchinterval() != self.switch_interval:
            sys.setswitchinterval(self.switch_interval)
            changed.append("sys.setswitchinterval")
        if _int_max_str_digits() != self.int_max_str_digits:
            sys.set_int_max_str_digits(self.int_max_str_digits)
            changed.append("sys.set_int_max_str_digits")
        return changed

    def _restore_gc(self) -> list[str]:
        """Garbage collection switched off (or its thresholds changed) by the step. Only switched back
        on, never off: gc may have been off at `save()` only for a moment (dask's `disable_gc` in
        another thread), and a worker left without it grows without bound."""
        changed = []
        if self.gc_enabled and not gc.isenabled():
            gc.enable()
            changed.append("gc.disable")
        if gc.get_threshold() != self.gc_threshold:
            gc.set_threshold(*self.gc_threshold)
            changed.append("gc.set_threshold")
        return changed

    def _restore_socket_timeout(self) -> list[str]:
        """The timeout of every socket made without one: a step's 1 ms would fail a later step's
        downloads (and the worker's own connections)."""
        if socket.getdefaulttimeout() == self.socket_timeout:
            return []
        socket.setdefaulttimeout(self.socket_timeout)
        return ["socket.setdefaulttimeout"]

    def _restore_builtins(self) -> list[str]:
        """Names the step added to builtins go, and data it rebound there comes back (the functions
        came back with the modules' patches, and the step shell puts back the names IPython sets):
        a builtin is a name every later step's code sees."""
        now, saved = builtins.__dict__, self.builtins
        if _same_entries(now, saved):
            return []
        changed = []
        for name in [name for name in now if name not in saved]:
            del now[name]
            changed.append(f"builtins.{name}")
        for name, value in saved.items():
            if now.get(name, _ABSENT) is not value:
                now[name] = value
                changed.append(f"builtins.{name}")
        return changed

    def _restore_rlimits(self) -> list[str]:
        """Soft limits the step changed (64 open files would fail a later step). A hard limit it
        lowered cannot be raised again without privilege: the soft one comes back as far as it
        allows, and the warning says so."""
        changed = []
        for name, (which, (soft, hard)) in self.rlimits.items():
            now_soft, now_hard = resource.getrlimit(which)
            target = _lower_limit(soft, now_hard)
            if now_soft != target:
                resource.setrlimit(which, (target, now_hard))
                changed.append(f"{name} (soft limit)")
            if now_hard != hard and _lower_limit(now_hard, hard) == now_hard:
                changed.append(f"{name}: the step lowered its hard limit to {now_hard}, which cannot be raised "
                               "again in this process (restart the workers to undo it)")
        return changed

    def _restore_logging_disable(self) -> list[str]:
        if logging.root.manager.disable == self.logging_disable:
            return []
        logging.disable(self.logging_disable)
        return ["logging.disable"]

    def _restore_logger_settings(self) -> list[str]:
        """The level (and `disabled`) of the named loggers there were before the step: a library's
        logger a step quietened would stay quiet for every later run. Loggers the step made stay."""
        now = list(map(_LOGGER_SETTINGS, self.loggers))
        if now == self.logger_settings:
            return []
        changed = []
        for logger, (level, disabled), current in zip(self.loggers, self.logger_settings, now):
            if current != (level, disabled):
                logger.setLevel(level)  # (clears the loggers' cached levels too)
                logger.disabled = disabled
                changed.append(f"logging.getLogger({logger.name!r})")
        return changed

    def _restore_std_fds(self) -> list[str]:
        """Standard input, output and error as the process had them. A step that closed descriptor 1
        would leave it to the next file opened (a later step's store file would get what C code
        prints); one that pointed it at a file would send every later step's output there."""
        changed = []
        saved, self.std_fds = self.std_fds, {}
        for fd, (copy, before) in saved.items():
            try:
                if _fd_identity(fd) != before:
                    os.dup2(copy, fd)
                    changed.append(STD_FD_NAMES[fd])
            finally:
                os.close(copy)
        return changed


# --- module dicts and their version numbers ---------------------------------------------------------


class ModuleDicts:
    """Copies of the dicts of the loaded modules, kept from one snapshot to the next: a copy is
    made again only for a module whose dict has a new version number. Lists, not a dict by name,
    so that comparing 1,000+ version numbers is a few passes in C."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sys_modules_version: int | None = None
        self.loaded: tuple[list, list] = ([], [])  # `loaded_modules()` as last listed
        self.modules: list[types.ModuleType] = []
        self.dicts: list[dict] = []
        self.slots: list[int] = []  # where each dict keeps its version number
        self.versions: list = []
        self.copies: list[dict] = []

    def snapshot(self) -> tuple[list, list, list, list | None, list]:
        """(modules, their dicts, the dicts' version slots, their versions or None, copies of the
        dicts) as they are now."""
        with self.lock:
            if _VERSION_WORD is None:
                self._load(sys.modules)
                return self.modules, self.dicts, [], None, [d.copy() for d in self.dicts]
            sys_modules_version = dict_version(sys.modules)
            if sys_modules_version != self.sys_modules_version and self._loaded_changed():
                self._load(sys.modules)
            self.sys_modules_version = sys_modules_version
            versions = versions_at(self.slots)
            for i in changed_indexes(versions, self.versions):
                self.copies[i] = self.dicts[i].copy()
            self.versions = versions
            return self.modules, self.dicts, self.slots, versions, list(self.copies)

    def _loaded_changed(self) -> bool:
        """Whether other modules are loaded now than at the last snapshot (the step shell swaps
        `__main__` in and out, which gives sys.modules a new version number at every step)."""
        loaded = loaded_modules()
        if same_modules(loaded, self.loaded):
            return False
        self.loaded = loaded
        return True

    def _load(self, loaded: dict) -> None:
        """The loaded modules changed: list them again, keeping the copies still valid. Not the
        program's `__main__`: a step gets its own, and the program's globals are its own business."""
        kept = {id(m): (v, c) for m, v, c in zip(self.modules, self.versions, self.copies)}
        main = loaded.get("__main__")  # also registered as `__mp_main__` by multiprocessing
        self.modules = [m for m in list(loaded.values()) if m is not main and _is_module(m)]
        self.dicts = [m.__dict__ for m in self.modules]
        self.slots = version_slots(self.dicts) if _VERSION_WORD is not None else []
        old = [kept.get(id(m), (-1, None)) for m in self.modules]
        self.versions = [v for v, _ in old]  # -1: no copy yet, made by the caller
        self.copies = [c for _, c in old]


def loaded_modules() -> tuple[list, list]:
    """The names and modules in sys.modules, `__main__` as None (the step shell swaps it in and
    out at every step)."""
    names, modules = list(sys.modules), list(sys.modules.values())
    if "__main__" in sys.modules:
        modules[names.index("__main__")] = None
    return names, modules


def same_modules(now: tuple[list, list], before: tuple[list, list]) -> bool:
    """Whether two `loaded_modules()` hold the same modules under the same names, compared in C (a
    step that imports nothing new, the common case, pays for no walk over thousands of modules)."""
    return now[0] == before[0] and all(map(operator.is_, now[1], before[1]))


def _find_version_word() -> tuple[memoryview | None, int | None]:
    """This process's memory as 64-bit words, and which word of a dict holds its version number
    (CPython's `ma_version_tag`, after PyObject_HEAD and `ma_used`) — or (None, None) when this
    interpreter has none there: tried on a dict whose changes are known.

    One view of the whole address space, made once, rather than a ctypes object per read: each of
    those raises a `ctypes.cdata` audit event, which the dependency recorder's hook sees."""
    if sys.implementation.name != "cpython" or ctypes.sizeof(ctypes.c_void_p) != 8:
        return None, None
    used_word, version_word = 2, 3  # ob_refcnt, ob_type, ma_used, ma_version_tag
    try:
        words = memoryview((ctypes.c_uint64 * (1 << 59)).from_address(0)).cast("B").cast("Q")
        probe = types.ModuleType("nbscale_probe").__dict__
        base = id(probe) >> 3
        if id(probe) % 8:
            return None, None
        seen = [words[base + version_word]]
        for change in (lambda: probe.__setitem__("x", 1), lambda: probe.__setitem__("x", 2),
                       lambda: probe.pop("x"), lambda: probe.update(y=3)):
            change()
            seen.append(words[base + version_word])
            if words[base + used_word] != len(probe):
                return None, None
    except (ValueError, TypeError, OSError, OverflowError, IndexError):
        return None, None
    return (words, version_word) if len(set(seen)) == len(seen) else (None, None)


_WORDS, _VERSION_WORD = _find_version_word()


def dict_version(d: dict) -> int | None:
    """The dict's version number: a new one after every change (None when not available)."""
    if _VERSION_WORD is None:
        return None
    return _WORDS[(id(d) >> 3) + _VERSION_WORD]


def version_slots(dicts: list[dict]) -> list[int]:
    """Where each dict keeps its version number, for `versions_at` (valid while the dicts live)."""
    return [(id(d) >> 3) + _VERSION_WORD for d in dicts]


def versions_at(slots: list[int]) -> list[int]:
    """The version numbers at these slots, read in C."""
    return list(map(_WORDS.__getitem__, slots))


def changed_indexes(now: list, before: list) -> list[int]:
    """Indexes where two equally long lists differ, found in C."""
    return list(itertools.compress(itertools.count(), map(operator.ne, now, before)))


_MODULE_DICTS = ModuleDicts()


def _restore_module(module: types.ModuleType, old: dict, local: bool = False) -> list[str]:
    """Put back the rebound or deleted attributes of one module that should be put back; those
    of a `local` module (the notebook's own, `dependencies.step_local_module_names`) all, data too, and
    the ones the step added go. The patches put back (behaviour, not data)."""
    now, name, changed = module.__dict__, module.__name__, []
    for key, value in old.items():
        current = now.get(key, _ABSENT)
        if current is value or _is_bookkeeping(name, key, current):
            continue
        if _is_patch(value):
            changed.append(f"{name}.{key}")
        elif not local:
            continue
        now[key] = value
    if local:
        for key in [key for key in now if key not in old and not _is_bookkeeping(name, key, now[key])]:
            del now[key]
    return changed


class LocalData:
    """The lists, dicts and sets the notebook's local modules hold, and those they hold in turn, with
    a copy of the items of each: put back after a step, a local module's data changed in place too
    (`HIST.append(x)` in a helper module, `REG["a"].append(x)`: a step after it on the same worker saw
    it, another worker's did not, and a cached step had read it).

    From each list, dict or set at a module's top level of at most `MAX_CONTAINER_COPY` items, the
    ones it holds are followed (breadth first, lists and dicts holding them at any depth) while the
    items of all of them together stay within that many: a structure beyond that is not followed
    further (what it holds stays as the step left it). Each container is looked at once however many
    names and containers hold it (`A = []; REG = {"a": A}`), so that names which alias it still do
    after it is put back."""

    def __init__(self):
        self.saved: dict[int, tuple] = {}  # id → (container, a shallow copy of it: the objects it held)
        self.holders: dict[int, list] = {}  # id of a container → the saved containers that held it
        self.modules: dict[int, dict] = {}  # id → the dict of a module whose containers were saved

    def add(self, names) -> None:
        """Save the containers of the modules named (those saved already are not saved again)."""
        for name in names:
            attributes = getattr(sys.modules.get(name), "__dict__", None)
            if not isinstance(attributes, dict):
                continue
            self.modules[id(attributes)] = attributes
            for key, value in list(attributes.items()):
                if type(value) in _CONTAINER_TYPES and len(value) <= MAX_CONTAINER_COPY and not key.startswith("__"):
                    self._follow(value)

    def _follow(self, top) -> None:
        if id(top) in self.saved:
            return
        budget = MAX_CONTAINER_COPY - len(top)
        self.saved[id(top)] = (top, top.copy())
        queue = collections.deque([top])
        while queue:
            container = queue.popleft()
            for inner in _inner_containers(container):
                self.holders.setdefault(id(inner), []).append(container)
                if id(inner) not in self.saved and len(inner) <= budget:
                    budget -= len(inner)
                    self.saved[id(inner)] = (inner, inner.copy())
                    queue.append(inner)

    def restore(self) -> None:
        """Each container changed, and each that holds one changed (at any depth), is replaced by a copy
        of what it held — under every name of the modules and as every default of their functions
        (`def add(x, into=HIST)`) that had it: not the container changed back, which the step may hand on
        (`h = helpers.HIST`) or keep. Containers no change reached stay themselves."""
        stack = [container for container, items in self.saved.values() if not _same_items(container, items)]
        if not stack:
            return
        changed: set[int] = set()
        while stack:  # a change inside a container is a change of every container holding it
            container = stack.pop()
            if id(container) not in changed:
                changed.add(id(container))
                stack.extend(self.holders.get(id(container), ()))
        copies = {key: self.saved[key][1].copy() for key in changed}
        for copy in copies.values():  # what they hold that changed: its copy, so `REG["a"] is A` stays true
            _replace_items(copy, copies)
        for attributes in self.modules.values():  # (once per module, whatever number of containers changed)
            for key, value in list(attributes.items()):
                if id(value) in copies and type(value) in _CONTAINER_TYPES:  # (a saved container: its id is its own)
                    attributes[key] = copies[id(value)]
            for function in [f for f in attributes.values() if isinstance(f, types.FunctionType)]:
                defaults, kwdefaults = function.__defaults__, function.__kwdefaults__
                if defaults and any(id(d) in copies for d in defaults):
                    function.__defaults__ = tuple(_replaced(d, copies) for d in defaults)
                if kwdefaults and any(id(d) in copies for d in kwdefaults.values()):
                    function.__kwdefaults__ = {k: _replaced(d, copies) for k, d in kwdefaults.items()}


def _inner_containers(container) -> list:
    """The lists, dicts and sets a list or dict holds (a set holds none: they cannot be hashed)."""
    if type(container) in _SETS:
        return []
    items = container.values() if type(container) in _DICTS else container
    if _CONTAINER_TYPES.isdisjoint(map(type, items)):  # (the common case, decided in C)
        return []
    return [item for item in items if type(item) in _CONTAINER_TYPES]


def _replaced(value, copies: dict):
    """`value`'s copy if it is a container put back, else `value`."""
    return copies[id(value)] if id(value) in copies and type(value) in _CONTAINER_TYPES else value


def _replace_items(copy, copies: dict) -> None:
    """In a copy of a list or dict, the copies of the containers it holds that are put back."""
    if type(copy) in _LISTS:
        if not _CONTAINER_TYPES.isdisjoint(map(type, copy)):
            items = [_replaced(item, copies) for item in copy]
            copy.clear()
            copy.extend(items)
    elif type(copy) in _DICTS and not _CONTAINER_TYPES.isdisjoint(map(type, copy.values())):
        for key, item in list(copy.items()):
            copy[key] = _replaced(item, copies)


def _same_items(container, copy) -> bool:
    if type(container) in _LISTS:
        return len(container) == len(copy) and all(map(operator.is_, container, copy))
    if type(container) in _DICTS:  # (in order: an OrderedDict's `move_to_end` is a change)
        return list(container) == list(copy) and all(map(operator.is_, container.values(), copy.values()))
    return container == copy


# the lists, dicts and sets put back, by kind (the standard library's: a class of its own may not copy)
_LISTS = frozenset({list, collections.deque})
_DICTS = frozenset({dict, collections.defaultdict, collections.OrderedDict, collections.Counter})
_SETS = frozenset({set})
_CONTAINER_TYPES = _LISTS | _DICTS | _SETS
MAX_CONTAINER_COPY = 100_000


def _is_bookkeeping(module_name: str, key: str, new) -> bool:
    """Whether a rebinding is the import system's doing: import metadata, or the (re-)imported
    submodule `import pkg.sub` binds on its parent."""
    return key in IMPORT_METADATA or (
        isinstance(new, types.ModuleType) and sys.modules.get(f"{module_name}.{key}") is new)


def _is_patch(old) -> bool:
    """Whether a rebinding replaced behaviour; a library's data is its own bookkeeping (see the
    module docstring for what is left)."""
    return callable(old) or isinstance(old, types.ModuleType)


def _local_modules() -> set[str]:
    from .dependencies import step_local_module_names  # (it imports this module)

    return set(step_local_module_names())


def set_environ(items: dict) -> list[str]:
    """Make `os.environ` hold exactly `items` (the C library's environment too); the names changed."""
    now, changed = dict(os.environ), []
    for name in now.keys() - items.keys():
        del os.environ[name]
        changed.append(name)
    for name, value in items.items():
        if now.get(name) != value:
            os.environ[name] = value
            changed.append(name)
    if "TZ" in changed and hasattr(time, "tzset"):
        time.tzset()
    return changed


@contextmanager
def environment(environ: dict | None):
    """Run the block with exactly the variables `environ` (None: as they are), then put back the
    ones it found."""
    if environ is None:
        yield
        return
    before = dict(os.environ)
    set_environ(environ)
    try:
        yield
    finally:
        set_environ(before)


def _environ_data(environ) -> dict | None:
    """A copy of `os.environ`'s encoded entries (CPython's `_Environ._data`), None where it has none."""
    data = getattr(environ, "_data", None)
    return dict(data) if isinstance(data, dict) else None


def _same_entries(now: dict, before: dict) -> bool:
    """Whether two dicts hold the same objects under the same names in the same order (compared in C)."""
    return (len(now) == len(before) and all(map(operator.is_, now.values(), before.values()))
            and list(now) == list(before))


def _is_module(value) -> bool:
    return isinstance(value, types.ModuleType) and isinstance(getattr(value, "__dict__", None), dict)


def proc_status_field(name: bytes) -> bytes | None:
    """A field of /proc/self/status (`b"VmHWM"` → `b"1234 kB"`), None where there is none. One read
    of the whole file: a step reads two fields of it."""
    try:
        with open("/proc/self/status", "rb", buffering=0) as f:
            text = b"\n" + f.read(16384)  # every field after a newline, the first one too
    except OSError:
        return None
    start = text.find(b"\n" + name + b":")
    if start < 0:
        return None
    start += len(name) + 2
    end = text.find(b"\n", start)
    return text[start:end if end >= 0 else None].strip() or None


def _saved_std_fds() -> dict[int, tuple[int, tuple]]:
    saved = {}
    for fd in STD_FD_NAMES:
        identity = _fd_identity(fd)
        if identity is not None:  # a daemon's closed stdin stays closed
            saved[fd] = (os.dup(fd), identity)
    return saved


def _fd_identity(fd: int) -> tuple | None:
    try:
        info = os.fstat(fd)
    except OSError:
        return None
    return info.st_dev, info.st_ino, info.st_mode


def _umask() -> int:
    """The umask, read without changing it where Linux shows it (another thread may be creating files)."""
    value = proc_status_field(b"Umask")
    if value:
        try:
            return int(value, 8)
        except ValueError:
            pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _numpy_state():
    """numpy's legacy global RandomState, if `numpy.random` is loaded (None if not)."""
    numpy_random = sys.modules.get("numpy.random")
    try:
        return numpy_random.get_state() if numpy_random is not None else None
    except Exception:  # noqa: BLE001 - a half-imported or replaced numpy: treated as not loaded
        return None


def _decimal_context():
    """A copy of this thread's decimal context, if `decimal` is loaded (None if not)."""
    decimal = sys.modules.get("decimal")
    return decimal.getcontext().copy() if decimal is not None else None


def _decimal_settings(context) -> tuple:
    """What a context decides (not its flags, which record what happened in it)."""
    return (context.prec, context.rounding, context.Emin, context.Emax, context.capitals, context.clamp,
            sorted(str(signal) for signal, on in context.traps.items() if on))


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # the folder was removed
        return None


def _int_max_str_digits() -> int | None:
    get = getattr(sys, "get_int_max_str_digits", None)
    return get() if get is not None else None


def _named_loggers() -> list[logging.Logger]:
    """The loggers made so far (not the placeholders `getLogger("a.b")` leaves for "a")."""
    return [logger for logger in list(logging.Logger.manager.loggerDict.values())
            if isinstance(logger, logging.Logger)]


def _rlimits() -> dict[str, tuple[int, tuple[int, int]]]:
    if resource is None:
        return {}
    limits = {}
    for name in SOFT_RLIMITS:
        which = getattr(resource, name, None)
        if which is not None:
            limits[name] = (which, resource.getrlimit(which))
    return limits


def _lower_limit(a: int, b: int) -> int:
    """The lower of two resource limits (RLIM_INFINITY, -1 here, is the highest)."""
    if a == resource.RLIM_INFINITY:
        return b
    if b == resource.RLIM_INFINITY:
        return a
    return min(a, b)


def _signal_handlers() -> dict:
    """Handlers of the signals programs handle, in the main thread only (only it can change them)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    handlers = {}
    for name in HANDLED_SIGNALS:
        signum = getattr(signal, name, None)
        if signum is not None:
            handlers[signum] = signal.getsignal(signum)
    return handlers


def _same_numpy_state(a, b) -> bool:
    # ('MT19937', keys array, pos, has_gauss, cached_gaussian)
    return a[0] == b[0] and a[2:] == b[2:] and (a[1] == b[1]).all()
