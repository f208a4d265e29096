"""What the libraries a step uses see: a Jupyter kernel, as under papermill.

Libraries set themselves up for a notebook when they find a kernel; a step must get the same, or
its output differs from the notebook's. `LibrarySetup` does, for one step, what ipykernel's
kernel does once for its process:

- matplotlib: the inline backend (`matplotlib_inline`), as ipykernel chooses through
  `MPLBACKEND`, unless the user chose one (`MPLBACKEND` in the environment, or `matplotlib.use`
  / `%matplotlib` in the step itself). Figures are flushed into the cell that made them by
  matplotlib-inline's `flush_figures` after each cell (the step shell forgets its event
  callbacks after every step, so it is registered again for each step), and every figure still
  open is closed at the start and at the end of a step: none reaches another step. The rcParams a
  step changed are put back when it ends (backend and interactive mode included).
- pandas: `display.max_columns` is picked when pandas is imported — 20 in a kernel, 0 (fit the
  terminal) elsewhere. pandas imported before the step (by a worker unpickling a DataFrame) got
  0; the step gets 20, and so does `pd.reset_option`. What pandas asks of the shell to tell a
  kernel from a terminal (its type, a `kernel` attribute) is on `shell.StepShell`.
- Settings a step makes for the whole process — numpy's print options and floating point error
  handling, pandas' options, scikit-learn's configuration (`np.set_printoptions`, `np.seterr`,
  `pd.set_option`, `sklearn.set_config`) — are put back when it ends, to the library's defaults
  when the step imported it (`LibrarySettings`). A kernel runs one notebook; a worker runs steps of
  many, in any order: a setting must reach the later steps of its notebook by being replayed
  (`Step.settings`), not the next step that lands on the same worker.

`MPLBACKEND` as nbscale sets it is not a dependency of the step: the variable is set through the
recording `os.environ`, which counts it as written by the step, not as read.
"""

from __future__ import annotations

import contextvars
import copy
import inspect
import os
import sys
import warnings

__all__ = ["INLINE_BACKEND", "KERNEL_MAX_COLUMNS", "LibrarySettings", "LibrarySetup", "inline_in_use",
           "set_up_inline", "user_backend"]

INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
KERNEL_MAX_COLUMNS = 20  # pandas' display.max_columns when imported in a kernel (config_init.is_terminal)
_INLINE_NAMES = ("inline", INLINE_BACKEND)


def user_backend() -> str | None:
    """The backend the user chose through the environment, read without recording it: where the
    step runs, only the environment nbscale started with is the user's choice."""
    environ = getattr(os.environ, "environ", os.environ)  # under a recording, the real mapping
    return environ.get("MPLBACKEND") or None


class LibrarySetup:
    """Sets up matplotlib and pandas for one step as a kernel would; `finish()` after the step."""

    def __init__(self, shell):
        self.shell = shell
        self.backend = user_backend() or INLINE_BACKEND
        self.set_env = False
        self.saved_rc: dict | None = None
        self.had_pyplot = "matplotlib.pyplot" in sys.modules
        self.settings = LibrarySettings()

    def start(self) -> None:
        _pandas_as_in_kernel()
        self.settings.save()
        matplotlib = sys.modules.get("matplotlib")
        if matplotlib is None or not hasattr(matplotlib, "rcParams"):
            # matplotlib reads MPLBACKEND when the step imports it (ipykernel sets it at start)
            if user_backend() is None:  # (`in os.environ` would count as reading it)
                os.environ["MPLBACKEND"] = self.backend
                self.set_env = True
            return
        _close_figures()
        _register_pyplot_hook(self.shell)
        inline = sys.modules.get("matplotlib_inline.backend_inline")
        if inline is not None:  # `%config InlineBackend.close_figures = False` of an earlier step
            inline.InlineBackend.instance().close_figures = True
        self._use_backend(matplotlib)
        # what the step's changes are undone to; raw: reading the backend may resolve it
        self.saved_rc = dict(dict.items(matplotlib.rcParams))

    def _use_backend(self, matplotlib) -> None:
        from matplotlib import rcsetup

        wanted = rcsetup.validate_backend(self.backend)
        if dict.get(matplotlib.rcParams, "backend") != wanted:
            matplotlib.use(wanted, force=False)
        if wanted in _INLINE_NAMES:
            matplotlib.interactive(True)  # as IPython's activate_matplotlib sets it for the inline backend
            if "matplotlib_inline.backend_inline" in sys.modules:  # an earlier step's: set it up again
                set_up_inline(self.shell)

    def finish(self) -> None:
        """Close the step's figures and put matplotlib, numpy, pandas and scikit-learn back as the
        step found them."""
        if self.set_env and user_backend() == self.backend:
            del os.environ["MPLBACKEND"]
        self.settings.restore()
        matplotlib = sys.modules.get("matplotlib")
        if matplotlib is None or not hasattr(matplotlib, "rcParams"):
            return
        try:
            _close_figures()
        finally:
            inline = sys.modules.get("matplotlib_inline.backend_inline")
            if inline is not None:
                inline.show._draw_called, inline.show._to_draw = False, []
            if self.saved_rc is not None:
                _switch_back(matplotlib, self.saved_rc.get("backend"))
                dict.update(matplotlib.rcParams, self.saved_rc)
            else:  # imported by this step: the next step starts from the rc file and the default backend
                matplotlib.rc_file_defaults()
                self._use_backend(matplotlib)
            if not self.had_pyplot:
                _settle_backend(matplotlib)


def _switch_back(matplotlib, backend) -> None:
    """pyplot's backend as it was, if the step switched it (`matplotlib.use`, `%matplotlib`)."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if isinstance(backend, str) and dict.get(matplotlib.rcParams, "backend") != backend and pyplot is not None:
        pyplot.switch_backend(backend)


def inline_in_use() -> bool:
    """Whether pyplot already draws with the inline backend, which is set up (`%matplotlib inline`
    then only has to set it up for the step: `set_up_inline`)."""
    matplotlib = sys.modules.get("matplotlib")
    return ("matplotlib.pyplot" in sys.modules and "matplotlib_inline.backend_inline" in sys.modules
            and dict.get(getattr(matplotlib, "rcParams", {}), "backend") in _INLINE_NAMES)


def set_up_inline(shell) -> None:
    """What `%matplotlib inline` does once pyplot uses the inline backend: interactive mode, and
    figures flushed into the running cell after each cell (`flush_figures`), none pending."""
    import matplotlib

    inline = sys.modules["matplotlib_inline.backend_inline"]
    matplotlib.interactive(True)
    inline.configure_inline_support(shell, INLINE_BACKEND)
    inline.show._draw_called, inline.show._to_draw = False, []


def _register_pyplot_hook(shell) -> None:
    """pyplot's own post_execute callback, registered once per shell by pyplot and forgotten with
    the shell's callbacks after each step: without it, `plt.ioff()` fails to unregister it."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    hook = getattr(pyplot, "_draw_all_if_interactive", None)
    installed = getattr(getattr(pyplot, "_ReplDisplayHook", None), "IPYTHON", None)
    if hook is not None and installed is not None and getattr(pyplot, "_REPL_DISPLAYHOOK", None) is installed:
        shell.events.register("post_execute", hook)


def _settle_backend(matplotlib) -> None:
    """Load pyplot's backend now, in the step that imported pyplot. pyplot loads it on the first
    plot, and the inline backend then rebinds pyplot functions (IPython's `activate_matplotlib`):
    in a later step, that would be a change to a module loaded before the step, which the step's
    isolation (`process_state`) puts back and warns about."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    backend = dict.get(matplotlib.rcParams, "backend")
    if pyplot is not None and isinstance(backend, str):
        try:
            pyplot.switch_backend(backend)
        except ImportError:  # a GUI backend the user chose that this machine lacks: pyplot says so on use
            pass


def _close_figures() -> None:
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None and hasattr(pyplot, "get_fignums") and pyplot.get_fignums():
        pyplot.close("all")


def _pandas_as_in_kernel() -> None:
    """display.max_columns as pandas picks it when imported in a kernel, also as its default."""
    pandas = sys.modules.get("pandas")
    config = sys.modules.get("pandas._config.config")
    if pandas is None or config is None or not hasattr(pandas, "set_option"):
        return
    key = "display.max_columns"
    try:
        registered = config._registered_options[key]
        if registered.defval != KERNEL_MAX_COLUMNS:
            config._registered_options[key] = registered._replace(defval=KERNEL_MAX_COLUMNS)
        pandas.set_option(key, KERNEL_MAX_COLUMNS)
    except (AttributeError, KeyError, TypeError, ValueError):  # another pandas layout: left as it is
        pass


class LibrarySettings:
    """The process-wide settings of numpy, pandas, scikit-learn and the inline backend's
    configuration (`%config InlineBackend.figure_formats = ...`), saved before a step and put back
    after it; a library the step imported goes back to its defaults. Only through each library's
    public getters and setters, one setting at a time: a setting that cannot be put back (an
    option another version of the library does not know) is left as it is."""

    LIBRARIES = ("numpy", "pandas", "sklearn", "matplotlib_inline.backend_inline", "dask.config")

    def __init__(self):
        self.saved: dict[str, dict] = {}

    def save(self) -> None:
        self.saved = {}
        for name in self.LIBRARIES:
            module = sys.modules.get(name)
            if module is not None:
                current = _current(name, module)
                if current is not None:
                    self.saved[name] = current

    def restore(self) -> None:
        with warnings.catch_warnings():  # putting an option back (a deprecated one) is not the step's output
            warnings.simplefilter("ignore")
            for name in self.LIBRARIES:
                module = sys.modules.get(name)
                if module is None:
                    continue
                target = self.saved.get(name) or _defaults(name, module)
                if target:
                    _put_back(name, module, target)


def _current(name: str, module) -> dict | None:
    """The settings of an imported library, by kind: {kind: {setting: value}}."""
    try:
        if name == "numpy":
            return {"print": module.get_printoptions(), "err": module.geterr()}
        if name == "pandas":
            return {"options": _pandas_options(module)}
        if name == "sklearn":
            return {"config": module.get_config()}
        if name == "matplotlib_inline.backend_inline":
            config = module.InlineBackend.instance()
            return {"inline": {key: copy.copy(getattr(config, key)) for key in config.trait_names(config=True)}}
        if name == "dask.config":
            return {"dask": {key: module.config.get(key, _MISSING) for key in DASK_KEYS}}
    except Exception:  # noqa: BLE001 - a library only partly imported, or of another layout
        return None
    return None


def _defaults(name: str, module) -> dict | None:
    """The settings a library has when imported (for one the step imported itself)."""
    try:
        if name == "numpy":  # numpy 2 keeps both in context variables: a new context has the defaults
            return contextvars.Context().run(_current, name, module)
        if name == "pandas":
            config = sys.modules["pandas._config.config"]
            return {"options": {key: config._registered_options[key].defval for key in _pandas_keys()}}
        if name == "sklearn":
            return {"config": dict(sys.modules["sklearn._config"]._global_config)}
        if name == "matplotlib_inline.backend_inline":
            config = module.InlineBackend.instance()
            return {"inline": config.trait_defaults(*config.trait_names(config=True))}
        if name == "dask.config":  # as its YAML files and DASK_* variables set them
            collected = module.collect()
            return {"dask": {key: collected.get(key, _MISSING) for key in DASK_KEYS}}
    except Exception:  # noqa: BLE001 - another layout: left as the step left it
        return None
    return None


def _pandas_options(module) -> dict:
    """pandas' options by key, read from where its option tree keeps each (`get_option` resolves
    and checks each key again: 1-4 ms a step for the ~140 options, twice a step)."""
    config = sys.modules["pandas._config.config"]
    if getattr(config, "_get_root", None) is None:  # another layout
        return {key: module.get_option(key) for key in _pandas_keys()}
    try:
        return {key: parent[leaf] for key, parent, leaf in _pandas_places(config)}
    except KeyError:  # an option's place moved: found again
        _PANDAS_PLACES.clear()
        return {key: parent[leaf] for key, parent, leaf in _pandas_places(config)}


_PANDAS_PLACES: dict = {}  # (option tree, how many options are registered) → [(key, its dict, its name there)]


def _pandas_places(config) -> list:
    """Where pandas keeps each option's value; found again once more options are registered."""
    version = (id(config._global_config), len(config._registered_options), len(config._deprecated_options))
    places = _PANDAS_PLACES.get(version)
    if places is None:
        _PANDAS_PLACES.clear()
        places = _PANDAS_PLACES[version] = [(key, *config._get_root(key)) for key in _pandas_keys()]
    return places


# Dask's process-wide choices a step may leave behind: a `Client()` sets both, and a later compute
# (another step, another run on the worker) would ask a closed client ("no Client active")
DASK_KEYS = ("scheduler", "shuffle")


def _pandas_keys() -> list[str]:
    config = sys.modules["pandas._config.config"]
    return [key for key in config._registered_options if key not in config._deprecated_options]


def _put_back(name: str, module, target: dict) -> None:
    current = _current(name, module) or {}
    for kind, values in target.items():
        if _same(current.get(kind), values):  # the common case, decided in C
            continue
        changed = {k: v for k, v in values.items() if _differs(current.get(kind, {}).get(k, _MISSING), v)}
        if not changed:
            continue
        try:
            if kind == "print":
                module.set_printoptions(**values)  # as a whole: its values depend on each other
            elif kind == "err":
                module.seterr(**values)
            elif kind == "inline":  # each through its observer, which sets the shell's formatters again
                config = module.InlineBackend.instance()
                for key, value in changed.items():
                    setattr(config, key, value)
            elif kind == "dask":
                for key, value in changed.items():
                    if value is _MISSING:
                        module.config.pop(key, None)
                    else:
                        module.config[key] = value
            elif kind == "config":
                accepted = inspect.signature(module.set_config).parameters
                module.set_config(**{k: v for k, v in changed.items() if k in accepted})
            else:
                for key, value in changed.items():
                    _set_pandas_option(module, key, value)
        except Exception:  # noqa: BLE001 - a setting that cannot be put back stays as the step left it
            pass


def _set_pandas_option(pandas, key: str, value) -> None:
    try:
        pandas.set_option(key, value)
    except Exception:  # noqa: BLE001 - one option that does not take its old value leaves the others
        pass


_MISSING = object()


def _same(a, b) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - values that do not compare (arrays): compared one by one
        return False


def _differs(a, b) -> bool:
    try:
        return bool(a != b)
    except Exception:  # noqa: BLE001 - values that do not compare (arrays): take them as changed
        return a is not b
