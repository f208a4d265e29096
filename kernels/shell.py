"""The process's IPython step shell, and the process-wide state a step borrows while it runs.

One IPython shell serves the whole process, handed to one step at a time by `step_shell()`: stdout,
the working directory and `sys.modules["__main__"]` are process-wide. The shell runs cells with
`%magic`, `%%cellmagic` and `!shell` as in the notebook, names their code after notebook cells
(`tracebacks.CellCompiler`), and hands displays, cell results and the tracebacks it would print
to the running step's `capture.StepRun` instead of printing them.

`StepEnvironment` gives each step a fresh user namespace (a new `__main__` module), its captures,
its working directory and the libraries set up as in a kernel (`kernel_libraries`), and puts back
everything else afterwards: process-wide state that IPython and the step change (`sys` hooks,
builtins, IPython's singleton, warning filters), and the shell's own state that could carry
values from one step to the next (output history, `_`, `__future__` flags, event callbacks).
"""

from __future__ import annotations

import builtins
import getpass
import inspect
import multiprocessing.util
import os
import shutil
import sys
import tempfile
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

from IPython.core.display_functions import display as ipython_display
from IPython.core.displayhook import DisplayHook
from IPython.core.displaypub import DisplayPublisher
from IPython.core.error import StdinNotImplementedError
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magics.execution import ExecutionMagics
from IPython.core.profiledir import ProfileDir
from traitlets import Type
from traitlets.config import Config

from .capture import StepRun
from .dependencies import SHELL_HOME_NAME, SHELL_HOME_PREFIX
from .kernel_libraries import LibrarySetup, inline_in_use, set_up_inline
from .liveness import process_alive
from .tracebacks import CellCompiler, format_exception

__all__ = ["StepEnvironment", "StepShell", "step_shell"]


class _StepDisplayHook(DisplayHook):
    """Records a cell's last expression as an execute_result instead of printing `Out[n]:`."""

    def start_displayhook(self):
        pass

    def write_output_prompt(self):
        pass

    def write_format_data(self, format_dict, md_dict=None) -> None:
        run = getattr(self.shell, "step_run", None)
        if run is None:
            return super().write_format_data(format_dict, md_dict)
        # prompt_count, not the shell's count: IPython 9 counts the cell up before running it
        run.add_display("execute_result", format_dict, md_dict, execution_count=self.prompt_count)

    def finish_displayhook(self):
        pass


class _StepDisplayPublisher(DisplayPublisher):
    """Records `display(...)` output as display_data."""

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kw):
        run = getattr(self.shell, "step_run", None)
        if run is None:
            return super().publish(data, metadata, transient=transient, update=update)
        run.add_display("display_data", data, metadata, transient=transient, update=update)

    def clear_output(self, wait=False):
        run = getattr(self.shell, "step_run", None)
        if run is not None:
            run.clear(wait)


# The code of the %time/%%time magic: IPython 8's catches a failure of the code it times, shows
# it and lets the cell go on; IPython 9's raises it again, which fails the cell.
_TIME_MAGIC = inspect.unwrap(ExecutionMagics.time).__code__


def _caught_by_time_magic(exc: BaseException) -> bool:
    tb = exc.__traceback__
    return tb is not None and tb.tb_frame.f_code is _TIME_MAGIC and tb.tb_next is not None


class StepShell(InteractiveShell):
    """An InteractiveShell whose output goes to the running step (`step_run`) while one runs.

    To the libraries a step uses it looks like ipykernel's shell, as under papermill: pandas tells
    a kernel from a terminal by "zmq" in the shell's type and a `kernel` attribute (and then
    prints wide frames wrapped, not cut to a terminal), rich and many notebooks by the class name.
    """

    displayhook_class = Type(_StepDisplayHook)
    display_pub_class = Type(_StepDisplayPublisher)
    compiler_class = Type(CellCompiler)

    kernel = None  # no kernel to talk to: libraries only ask whether there is the attribute
    step_run: StepRun | None = None
    _depth = 0

    def enable_matplotlib(self, gui=None):
        """`%matplotlib inline` where pyplot already uses it (each step after the first on a
        worker, whose imports cell has it): set up the step's figures without switching pyplot's
        backend again. Switching rebinds pyplot's functions, which the step's isolation would take
        for a patch of a library to put back and warn about."""
        if gui == "inline" and self.step_run is not None and inline_in_use():
            set_up_inline(self)
            return None, "inline"
        return super().enable_matplotlib(gui)

    def enable_gui(self, gui=None):
        """A step has no GUI event loop to integrate (`%matplotlib inline` asks for none; IPython's
        base shell refuses every request): as in ipykernel with the inline backend, nothing to do."""

    def should_run_async(self, raw_cell, *, transformed_cell=None, preprocessing_exc_tuple=None):
        """IPython compiles the whole cell once more to find a top-level `await`: not for a cell
        without the words that can begin one (`await`, `async for`, `async with`)."""
        cell = raw_cell if transformed_cell is None else transformed_cell
        if "await" not in cell and "async" not in cell:
            return False
        return super().should_run_async(raw_cell, transformed_cell=transformed_cell,
                                        preprocessing_exc_tuple=preprocessing_exc_tuple)

    def ask_exit(self):
        """`exit()` or `quit()` in a step (IPython's, which ask the shell): the step's code ends there,
        as `sys.exit()` ends it, and as they end a script run top to bottom. (Without it, an
        AttributeError on the shell.)"""
        raise SystemExit(0)

    def run_cell(self, *args, **kwargs):
        self._depth += 1
        try:
            return super().run_cell(*args, **kwargs)
        finally:
            self._depth -= 1

    def showtraceback(self, exc_tuple=None, filename=None, tb_offset=None,
                      exception_only=False, running_compiled_code=False):
        if self.step_run is None:
            return super().showtraceback(exc_tuple, filename, tb_offset, exception_only,
                                         running_compiled_code)
        try:
            _, value, _ = self._get_exc_info(exc_tuple)
        except ValueError:
            return
        if _caught_by_time_magic(value):
            # A timed body that fails fails its cell, on IPython 8 as on IPython 9.
            raise value
        self._show(value)

    def showsyntaxerror(self, filename=None, running_compiled_code=False):
        if self.step_run is None:
            return super().showsyntaxerror(filename, running_compiled_code)
        _, value, _ = self._get_exc_info()
        self._show(value)

    def _show(self, value: BaseException) -> None:
        # At the top level it may be the cell's failure, which the StepResult reports. In a
        # nested run_cell (the body of %%capture) IPython prints it and the cell goes on.
        if self._depth <= 1:
            self.step_run.pending_tracebacks.append(value)
        else:
            print(format_exception(value, self.step_run.sources), end="")


# The name libraries look for (see StepShell); the module still says whose class it is.
StepShell.__name__ = StepShell.__qualname__ = "ZMQInteractiveShell"


_LOCK = threading.RLock()
_SHELL: StepShell | None = None


def _reinit_lock_after_fork() -> None:
    global _LOCK
    _LOCK = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_lock_after_fork)


@contextmanager
def step_shell():
    """The process's step shell, held by this step: steps in one process run one at a time."""
    with _LOCK:
        shell = _get_shell()
        if shell.step_run is not None:
            raise RuntimeError("execute_step cannot run inside a step that is running")
        yield shell


@contextmanager
def no_step_meanwhile():
    """No step of this process starts or ends while the block runs: for work in another thread
    that changes process-wide state a step would snapshot and put back (a Dask cluster starting
    imports modules, sets signal handlers and forks or spawns its workers)."""
    with _LOCK:
        yield


def _get_shell() -> StepShell:
    """The process's step shell: no history file, no profile in the user's home, quiet."""
    global _SHELL
    if _SHELL is None:
        home = _shell_home()
        config = Config()
        config.HistoryManager.enabled = False
        config.HistoryManager.hist_file = ":memory:"
        config.InteractiveShell.colors = "nocolor"  # IPython 8 reads it without case
        config.InteractiveShell.warn_venv = False
        config.InteractiveShell.autocall = 0
        profile = ProfileDir.create_profile_dir(os.path.join(home, "profile_default"), config)
        # Creating a shell installs it process-wide (sys.modules["__main__"], builtins, prompts);
        # undo that, and install ours only while a step runs.
        state = _ProcessState.save()
        try:
            shell = StepShell(config=config, ipython_dir=home, profile_dir=profile)
        finally:
            state.restore()
        shell.base_compiler_flags = shell.compile.flags
        _SHELL = shell
    return _SHELL


def _shell_home() -> str:
    """A new temporary IPython folder for this process's shell, removed when the process ends.

    Its name carries the process id: a process killed outright (a Dask worker restarted to stop a
    step) cannot remove its folder, so each new one removes those of ended processes."""
    _remove_folders_of_ended_processes()
    home = tempfile.mkdtemp(prefix=f"{SHELL_HOME_PREFIX}{os.getpid()}-")
    # Not atexit: a forked multiprocessing child (a Dask worker) ends with os._exit and never runs
    # it, and a child forked from this process that does run it would remove our folder.
    # multiprocessing's finalizers run in both kinds of process, only in the one that made them.
    multiprocessing.util.Finalize(None, shutil.rmtree, args=(home, True), exitpriority=0)
    return home


def _remove_folders_of_ended_processes() -> None:
    with os.scandir(tempfile.gettempdir()) as entries:
        for entry in entries:
            match = SHELL_HOME_NAME.fullmatch(entry.name)
            if match and _ours(entry) and not process_alive(int(match.group(1)), None):
                shutil.rmtree(entry.path, ignore_errors=True)


def _ours(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False) and entry.stat(
            follow_symlinks=False).st_uid == os.getuid()
    except OSError:
        return False


_ABSENT = object()
_NO_RESULT = ""  # what IPython's display hook holds before any result


class _ProcessState:
    """Process-wide things IPython (and a step) change: saved and put back."""

    SYS_ATTRS = ("stdout", "stderr", "ps1", "ps2", "ps3", "excepthook", "displayhook",
                 "last_type", "last_value", "last_traceback", "last_exc")
    BUILTINS = ("display", "__IPYTHON__", "input")

    @classmethod
    def save(cls) -> _ProcessState:
        state = cls()
        state.sys = {a: getattr(sys, a, _ABSENT) for a in cls.SYS_ATTRS}
        state.builtins = {a: builtins.__dict__.get(a, _ABSENT) for a in cls.BUILTINS}
        state.getpass = getpass.getpass
        state.main = sys.modules.get("__main__", _ABSENT)
        state.singletons = {c: c.__dict__.get("_instance", _ABSENT)
                            for c in (InteractiveShell, StepShell)}
        return state

    def restore(self) -> None:
        for attr, value in self.sys.items():
            if value is _ABSENT:
                if hasattr(sys, attr):
                    delattr(sys, attr)
            else:
                setattr(sys, attr, value)
        for name, value in self.builtins.items():
            if value is _ABSENT:
                builtins.__dict__.pop(name, None)
            else:
                builtins.__dict__[name] = value
        getpass.getpass = self.getpass
        if self.main is _ABSENT:
            sys.modules.pop("__main__", None)
        else:
            sys.modules["__main__"] = self.main
        for cls, value in self.singletons.items():
            if value is _ABSENT:
                if "_instance" in cls.__dict__:
                    delattr(cls, "_instance")
            else:
                cls._instance = value


def _stdin_is_a_terminal() -> bool:
    try:
        return os.isatty(0)
    except OSError:
        return False


def _input_refused(prompt="", *args, **kwargs):
    """`input()` and `getpass.getpass()` in a step whose process has no terminal: nobody is there to answer
    (a worker, a batch run, the server's runs), and reading a pipe would hang the run; papermill's kernels
    refuse it alike."""
    raise StdinNotImplementedError(
        "a pipeline step cannot ask for input (input() or getpass() was called): make the value a parameter "
        "(a `parameters` cell, `nbscale run -p NAME=VALUE`), or read it from a file or an environment variable")


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """The standard way of showing a warning, to the step's stderr."""
    text = warnings.formatwarning(message, category, filename, lineno, line)
    try:
        (file or sys.stderr).write(text)
    except (OSError, ValueError):
        pass


class StepEnvironment:
    """Installs a fresh user namespace, the captures and the working directory for one step."""

    def __init__(self, shell: StepShell, run: StepRun, *, cwd: str | None, notebook: str):
        self.shell, self.run, self.cwd, self.notebook = shell, run, cwd, notebook

    def __enter__(self) -> dict:
        shell = self.shell
        self.saved_cwd = os.getcwd()
        self.saved_path = None
        self.state = _ProcessState.save()
        self.saved_shell = (shell.user_module, shell.user_ns, shell.user_ns_hidden, shell.ns_table)
        self.saved_events = {k: list(v) for k, v in shell.events.callbacks.items()}
        # Warning filters the step sets stay in the step; its warnings go to its stderr.
        self.warnings = warnings.catch_warnings()
        self.warnings.__enter__()
        warnings.showwarning = _show_warning
        warnings.filterwarnings("ignore", message="To exit: use 'exit'", category=UserWarning)
        self.libraries = LibrarySetup(shell)
        try:
            self._enter_cwd()
            ns = self._install_namespace()
            sys.stdout, sys.stderr = self.run.stdout, self.run.stderr
            self.libraries.start()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return ns

    def _enter_cwd(self) -> None:
        if self.cwd is None:
            return
        os.chdir(self.cwd)
        here = os.getcwd()
        if here not in sys.path and "" not in sys.path:  # local imports, as in Jupyter
            sys.path.insert(0, here)
            self.saved_path = here

    def _install_namespace(self) -> dict:
        shell = self.shell
        module, ns = shell.prepare_user_module()
        shell.user_module, shell.user_ns, shell.user_ns_hidden = module, ns, {}
        shell.ns_table = {"user_global": ns, "user_local": ns, "builtin": builtins.__dict__}
        self._reset_shell_state()
        shell.init_user_ns()
        unders = {"_": _NO_RESULT, "__": _NO_RESULT, "___": _NO_RESULT}
        ns.update(unders)  # as a new kernel has them
        shell.user_ns_hidden.update(unders)
        if self.notebook:
            ns["__session__"] = self.notebook  # as ipykernel sets it
            shell.user_ns_hidden["__session__"] = self.notebook
        sys.modules["__main__"] = module  # pickle and friends find the step's classes
        builtins.__dict__["display"] = ipython_display
        builtins.__dict__["__IPYTHON__"] = True
        if not _stdin_is_a_terminal():  # a person at a terminal may answer (`breakpoint()` under --engine local)
            builtins.__dict__["input"] = _input_refused
            getpass.getpass = _input_refused
        for cls in (InteractiveShell, StepShell):  # get_ipython() and display() use it
            cls._instance = shell
        shell.step_run = self.run
        return ns

    def __exit__(self, *exc) -> bool:
        shell = self.shell
        try:
            self.libraries.finish()  # while the step's streams are installed: closing may warn
        except Exception as error:  # noqa: BLE001 - a library's clean-up must not hide the step's result
            print(f"nbscale: could not close the step's figures: {error!r}", file=sys.stderr)
        shell.step_run = None
        self.state.restore()
        shell.user_module, shell.user_ns, shell.user_ns_hidden, shell.ns_table = self.saved_shell
        shell.events.callbacks.clear()
        shell.events.callbacks.update(self.saved_events)
        self.warnings.__exit__(None, None, None)
        self._reset_shell_state()
        if self.saved_path is not None and self.saved_path in sys.path:
            sys.path.remove(self.saved_path)
        os.chdir(self.saved_cwd)
        return False

    def _reset_shell_state(self) -> None:
        """Forget everything the shell keeps between cells: nothing may reach the next step."""
        shell = self.shell
        history = shell.history_manager
        history.input_hist_parsed[:] = [""]
        history.input_hist_raw[:] = [""]
        history.output_hist.clear()
        history.output_hist_reprs.clear()
        outputs = getattr(history, "outputs", None)  # IPython 9 keeps a copy of every write here
        if hasattr(outputs, "clear"):
            outputs.clear()
        history.dir_hist[:] = [Path.cwd()]
        hook = shell.displayhook
        for name in ("_", "__", "___"):  # the hook's own references to the last results
            setattr(hook, name, _NO_RESULT)
        hook.exec_result = None
        shell.last_execution_result = None
        shell.execution_count = 1
        shell.compile.flags = shell.base_compiler_flags
        shell.compile._filename_map.clear()
        shell._main_mod_cache.clear()
