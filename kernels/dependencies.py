"""What a step depends on beyond its code: recorded while it runs, for its cache entry.

`record(cwd)` wraps one step's execution and yields a `Recording`; right after the step,
`recording.fingerprint()` gives the JSON-serialisable fingerprint that `fingerprints.check`
compares with the world later (see there for its shape and how it is compared).

What is recorded, and how:
- Files read and written (written ones are the step's *products*), through one process-wide
  audit hook (`sys.addaudithook`, added on first use: hooks cannot be removed). Every `open`
  event counts (builtin `open`, `pathlib`, `os.open`, and so pandas, numpy, pickle...), and also
  renames, removals and truncations (written), `sqlite3.connect` (read) and directory listings
  (`os.listdir`/`os.scandir`: glob, `Path.glob`, `os.walk`, `pkgutil.iter_modules(folders)`; not
  those the import system makes).
  The hook records for the thread whose recording is active, and for the threads the step's
  code starts until the step ends (`ThreadPoolExecutor.map(load, parts)`: `threading.Thread.start`
  marks them while any step records, as Python raises no audit event as a thread starts; not the
  threads nbscale starts on the step's behalf), and for the work the step hands to a
  `ThreadPoolExecutor` that ran before it (`ThreadPoolExecutor.submit`, wrapped likewise: a
  module's pool reuses its idle threads; a `multiprocessing.pool.ThreadPool`'s too). Work handed
  to a process pool (joblib's loky workers, `ProcessPoolExecutor`, `multiprocessing.Pool`) is
  recorded in the worker and reported back (`other_processes`; work still running as the step
  ends makes the result not reused). When no step records the hook
  returns after one truth test. Skipped: the interpreter's files (`interpreter.py`: prefix trees, stdlib,
  site-/dist-packages, `__pycache__`), nbscale's own packages and temp folders,
  /proc, /dev, /sys, and the `.nbscale/` state folder. The notebook folder is never skipped. A
  module's `.pyc` read counts as a read of its source (the code it runs).
- Files the step tests without opening them (`os.path.exists`, `isfile`, `getmtime`, `Path.is_file`,
  `os.access`, `shutil.which`, an `os.scandir` entry's `stat()`: `os.stat`, `os.lstat`, `os.access`
  and `os.scandir` are wrapped while any step records, as no audit event shows a stat):
  compared by their stat as the step ends, no digest; a missing one is a dependency too, so one
  that appears runs the step again, and a folder tested is one by being a folder, not by what it
  holds (`Recording._stated_files`; the fingerprint's `tested`).
- Changes while the step runs: a file or folder is looked at as the step first reads or lists it
  (a file's inode, size, mtime and ctime; a folder's entry names) and again as it ends. One that
  changed meanwhile by another hand (another process, a thread that ran before the step) is listed under
  `changed_while_running`, and the cache entry never holds: its state at the end is not what the
  step read, so recording it would let a later run reuse a result made from the older data. The
  step's own doing is not such a change: what it wrote, appended to, touched, chmod-ed, linked,
  made or removed, the files it added to a folder it listed, and SQLite files (written from C).
- Local modules the step tried to import and did not find: their files beside the notebook are
  recorded as absent, so that one appearing runs the step again (`try: import extras`). So are
  the files a fresh run would import instead of a loaded local module (`Recording._shadows`): the
  module in a folder before its own on the step's sys.path (the notebook folder first), a package
  beside it; and PYTHONPATH, for one found beyond the notebook folder.
- What local modules read as they were imported: a file opened or a variable read by a local
  module's top-level code (`CONFIG = json.load(open("config.json"))`) is kept with that import of
  the module, whichever step (or worker warm-up) imported it, and is a dependency of every step
  that ends with the module loaded. When one of them changes, the module is outdated (evicted and
  imported again before the next step), as when its own file changes. An installed library's
  import-time reads of its own variables (pandas reads `PANDAS_*`) are kept by its top-level
  package, and count the same way (the library is not evicted); the files it reads then do not.
  What a module's functions read and memoise later (`functools.lru_cache`) is the step's that
  called them, and only its.
- Local modules: EVERY module in `sys.modules` at the end of the step whose file is not skipped
  as above (e.g. `helpers.py` beside the notebook). A module imported before the step (by an
  earlier step on the same worker, the prelude, anything) is as usable as one the step imports,
  so only "all of them" cannot miss one; the price is a spurious re-run when an unrelated local
  module loaded in the same process changes. A module's state is the one nbscale first saw for
  that import of it, so a file edited after the process imported it shows as changed
  (`Recording.outdated_modules`; `outdated_modules()` before a step) instead of being recorded
  with code the process does not run.
- Distributions: the version of every installed distribution providing a top-level module
  loaded at the end of the step (same reason; the version seen with that import), and `python`.
- Environment variables read by name (`os.environ[...]`, `.get`, `in`, `os.getenv`) with the
  value first seen, None when unset: `os.environ` is wrapped while any recording is active.
  A variable the step set itself is not a dependency; one it read and then set is recorded with
  both values (`env_set`: a library's `setdefault` at import must not invalidate it). `.copy()`,
  `.items()` are not reading every variable, or any step that starts a subprocess would depend on
  the whole environment; iterating its names (`dict(os.environ)`, `{**os.environ}`, which then read
  them all) makes which variables are set a dependency too (`env_names`: a variable set since).
  `TZ`, which the C library reads itself (`time.localtime`), is a dependency of every step.
- The working directory, when the step asks for it (`os.getcwd`, so `os.path.abspath`,
  `Path.cwd`, `Path.resolve`): a value made from it holds the folder. A path inside the notebook
  folder that the step names absolutely is kept under that name too, so a copy of the project
  checks the file its code names. What a glob matches (`glob.glob`, `Path.glob`/`rglob`: their
  audit events), as a glob tests files it does not list. A folder pyarrow reads as a dataset
  counts as listed, and every file in it as read; a SQLite database's `-wal` file counts as read
  with it.

- Files, wildcards and folders the step's cells name (`mentions`): what a shell command, a
  process or a C library opens under a name written out; read, a product or nothing by how the
  file looks as the step ends (`Recording._named_files`). So do files the texts among the values
  it is given name, and those the processes it starts name by their arguments as they start
  (`_command_started`: their audit events; IPython's `!cmd` made to raise one).

Not seen: files opened by threads the step did not start nor hand work to through a
`ThreadPoolExecutor` or a `multiprocessing.pool.ThreadPool`, or by the processes it starts other
than a process pool's workers (`other_processes`: the work it hands them is recorded there), or by
C code that bypasses Python's `open` (pyarrow: so pandas 3's `read_parquet`/`to_parquet` of a
local path; HDF5; any C library given a path), under a name neither the cells, the step's values
(given, or kept for itself) nor a process's arguments hold; files `open(name, opener=...)` opens
relative to a `dir_fd` (the "open" event does not say which folder: `os.open` and `os.stat` are
wrapped to tell it, `_recording_os_open`; the folders `shutil.rmtree` and `os.fwalk` open are
skipped; removals, renames and folders made so are resolved by their `dir_fd`); listings made
while a module is imported; C `getenv`; `os.environb`; what functions handed to a Dask cluster
read there (`client.submit`, `dask.delayed` graphs, joblib's Dask backend); what the step read over the network (its
hosts are named and warned of: its own threads' connections and URLs, and connections left open
as it ends, `_sockets_left_open`). Steps
that depend on those need `cache:off`.
"""

from __future__ import annotations

import glob
import importlib
import importlib.util
import ipaddress
import os
import pkgutil
import platform
import re
import shutil
import stat
import sys
import tempfile
import threading
import time
from collections.abc import MutableMapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext, suppress
from functools import lru_cache
from urllib.parse import urlsplit

from . import native_io
from .contract import STATE_DIR_NAME
from .digest import file_digest
from .fingerprints import (
    FINGERPRINT_VERSION,
    NOT_A_FILE,
    TESTED_FOLDER,
    distribution_files,
    env_names,
    env_value,
    file_state,
    findable,
    glob_digest,
    holds,
    listing_digest,
    racy,
    set_for_the_step,
    stat_key,
)
from .interpreter import (
    folder_prefixes,
    installed_versions,
    is_interpreter_path,
    metadata_folder,
    providers,
    site_folders,
)
from .mentions import (
    APPENDS,
    MAX_CANDIDATES,
    NAMES,
    WRITES,
    built_files,
    command_names,
    named_files,
    named_globs_and_folders,
    value_names,
    value_texts,
)
from .process_state import loaded_modules, same_modules

__all__ = ["Recording", "RecordingEnviron", "forget_bytecode", "forget_stale_bytecode", "local_module_names",
           "note_loaded_distributions", "outdated_distributions", "outdated_modules", "record", "see_shell_commands",
           "stale_bytecode", "watch_imports"]

MAX_COMMAND_NAMES = 100_000  # files the processes a step starts may name (a loop copying images one by one)
MAX_STATED = 100_000  # files a step may only test (`os.path.exists` in a loop over candidate names)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)  # O_TMPFILE includes it: anonymous files are no dependency

# --- recording -----------------------------------------------------------------------------------

_ACTIVE: dict[int, Recording] = {}  # thread id → its recording; empty while no step records
_LOCK = threading.Lock()
_HOOKED = False
READ_BY_C = ("TZ",)  # variables the C library reads itself: every step depends on them
NUMPY_RANDOM, PYTHON_RANDOM = "numpy.random", "random"
# A call that may seed a global generator (`np.random.seed(0)`, `torch.manual_seed`, `set_seed(s)`,
# `random.setstate`): a step whose code or prelude makes one draws what it seeded, not entropy.
_SEEDING_CALL = re.compile(r"(?:seed|set_?state)\w*\s*\(", re.IGNORECASE)
_FRESH_POSITIONS = (623, 624)  # where numpy's import and `seed()` leave the legacy generator
_PYTHON_FRESH_POSITION = 624  # where `random`'s import and `seed()` leave its generator
# Code that may draw from Python's global generator itself (`random.choice(xs)`, `from random import
# shuffle`): libraries draw from it too as they are imported (scikit-learn does), which is no draw of
# the step's, and a draw counts only from a step whose code shows one
# A generator made from fresh entropy in the step's own code (given no seed): what it draws differs
# in every run. (One the imports cell makes is not counted: every step would run every time.)
_FRESH_GENERATOR = re.compile(r"\b(?:default_rng|RandomState|Random|SystemRandom|PCG64|PCG64DXSM|MT19937|Philox|SFC64"
                              r"|SeedSequence)\(\s*\)")
_PYTHON_RANDOM_USE = re.compile(r"(?<![.\w])random\.(?!seed\b|getstate\b|setstate\b|Random\b|SystemRandom\b)\w+\s*\("
                                r"|\bfrom\s+random\s+import\b")


class Recording:
    """What one step used while it ran in the thread that entered `record`."""

    def __init__(self, cwd: str, notebook: str = ""):
        self.cwd = os.path.abspath(cwd)
        self.began_ns = time.time_ns()  # (`mention_built`)
        # the notebook, which changes with every save: a text naming it (`NB = "train.ipynb"` for a
        # report's title) made the step run again after any edit; read through `open`, it still counts
        self.notebook = {os.path.join(self.cwd, os.path.basename(notebook))} if notebook else set()
        self.unread_maybe: set[str] = set()  # read as far as we know (`mention_built`): kept without a digest
        self.named_reads: set[str] = set()  # read only as far as the cells name them (`_named_files`)
        self.sockets_before = open_sockets()  # (`_sockets_left_open`)
        self.reads: set[str] = set()  # absolute paths
        self.writes: set[str] = set()
        self.listings: set[str] = set()
        self.globs: set[tuple] = set()  # (kind, absolute folder, pattern, recursive) of glob, Path.glob
        self.given_absolute: set[str] = set()  # read or listed by an absolute name inside the folder
        self.cwd_seen: str | None = None  # the working directory, once the step asked for it
        self.env: dict[str, str | None] = {}  # first value seen, None when unset
        # C reads some without asking os.environ (`time.localtime`): their values as the step began
        self.env_read_by_c = {name: os.environ.get(name) for name in READ_BY_C}
        self.env_of_libraries: dict[str, str | None] = {}  # what loaded libraries read of their own as imported
        self.env_written: set[str] = set()
        self.env_listed = False  # iterated the environment's names (`_listed_env`)
        self.env_set: dict[str, str | None] = {}  # set when the step ends: read, then set by the step → value left
        self.modules: dict[str, dict] = {}  # set when the step ends: path → state as imported
        self.distributions: dict[str, str] = {}
        self.distribution_files: dict[str, str] = {}  # the digest of each one's RECORD, where it has one
        self.outdated_modules: list[str] = []  # local modules whose file changed since imported
        self.first_seen: dict[str, object] = {}  # path → what it was when the step first read or listed it
        # path → (what it was as the step began, or as a process it started named it; `mentions` use)
        self.mentioned: dict[str, tuple[object, str]] = {}
        # path → what a stat showed as the step first tested it without opening it (`_stated`): a file's
        # `stat_key`, TESTED_FOLDER, or None (absent)
        self.stated: dict[str, tuple | str | None] = {}
        self.tested: dict[str, str | None] = {}  # of those, the folders and the absent ones, as the step ended
        self.command_names = 0  # files the commands it started named (`_command_started`)
        self.quiet = False  # while nbscale looks on the step's behalf: its own audit events are not the step's
        self.active = False  # between `_start` and `_stop`: threads the step started record into it meanwhile
        self.lock = threading.RLock()  # such a thread's event against the step's end (`_on_audit`, `_stop`)
        # files it or the commands it started append to (`open(p, "a")`, `>> run.log`): no product, nor
        # read; the fingerprint keeps their states as it ended ("appended"), which later runs find them in
        self.appended: set[str] = set()
        self.changed_by_step: set[str] = set()  # appended to, touched, chmod-ed, folders made: not products
        # folders the step made where nothing was (`tempfile.mkdtemp`, Dask's shuffle spill): what it
        # lists in them is its own doing, and they may be gone once it ended (`_made_folder`)
        self.made_folders: set[str] = set()
        # files it read as they were before it (`read_original`), then wrote or appended to; and files
        # it appended to that held data already (then read: what they held is read too)
        self.read_original: set[str] = set()
        self.appended_to_data: set[str] = set()
        self.read_then_changed: set[str] = set()  # a state file it advances: no later run reads what it read
        self.before_change: dict[str, str | None] = {}  # of those, the content digest as the step read it
        self.path_files: set[str] = set()  # the site .pth files, when one put a local module's folder on sys.path
        self.imports_tried: set[str] = set()  # top-level names of modules the step began to import
        self.absent_modules: set[str] = set()  # of those, the ones found nowhere
        self.problems: list[str] = []  # events that could not be recorded: the fingerprint is incomplete
        self.network: set[str] = set()  # what the step read over the network (`_connected_to`), which no check sees
        self.numpy_random_before = numpy_random_state()  # (`drew_unseeded`)
        self.python_random_before = python_random_state()
        self.may_draw_python_random = False  # its code shows a draw from `random` (`record`)
        self.seeds = False  # its cells or prelude may seed a global generator (`record`)
        self.unseeded: list[str] = []  # set when the step ends: the global generators it drew from unseeded
        self.fresh_generators: list[str] = []  # calls in its cells that make a generator from fresh entropy
        self.sys_path: list | None = None  # as the step's code left it (`note_sys_path`)
        self.elsewhere: str | None = None  # where its work in other processes reports (`other_processes`)
        self._inside = self.cwd.rstrip(os.sep) + os.sep
        self._state_dir = os.path.join(self.cwd, STATE_DIR_NAME) + os.sep

    def tracks(self, path: str) -> bool:
        """Is this absolute path a dependency worth recording (not the interpreter's own)?"""
        if self.inside(path):
            return not path.startswith(self._state_dir) and f"{os.sep}__pycache__{os.sep}" not in path
        return not _is_ignored(path)

    def inside(self, path: str) -> bool:
        """Is it in the notebook folder (never skipped, named relative to it)?"""
        return (path == self.cwd or path.startswith(self._inside)) and self._inside != os.sep

    def key(self, path: str) -> str:
        """How a path is named in the fingerprint: relative inside the notebook folder."""
        if path == self.cwd:
            return "."
        return path[len(self._inside):] if self.inside(path) else path

    def mention(self, named: dict[str, str], cut_short: bool = False) -> None:
        """Files the step's cells name (`mentions.named_files`), looked at before it runs."""
        for path, use in named.items():
            if self.tracks(path) and use != APPENDS and path not in self.notebook:  # (a log it appends to is nothing)
                self.mentioned[path] = (_look(path), use)
        if cut_short:  # (names may be missing: the result must not be reused)
            self.problems.append(f"more than {MAX_CANDIDATES:,} names of files in the step's cells")

    def mention_built(self, values, handed_on=()) -> None:
        """Files named by texts among the values the step made for itself (`mentions.built_files`),
        looked at as it ends: a C library given one (`path = f"data/{m}.csv"`, `pl.read_csv(path)`)
        read it where no audit event shows. One unchanged since the step began is read; one written
        or changed since is its product, as a named file that an unseen writer changed is. Not a
        text among the values it hands on (`handed_on`, also inside them: `CFG = {"in": [path]}`):
        a later step that writes that file anew every run (`OUT = f"{run}.pdf"`) would make this
        one run again every time, and the later step takes the name as a given text anyway."""
        seen = (self.mentioned, self.reads, self.writes, self.appended, self.changed_by_step)
        for path in built_files(values, self.cwd, value_texts(handed_on)):
            if any(path in paths for paths in seen):  # named by the cells or given values (`_named_files`
                continue  # decides), opened through Python, or a log the step appended to
            if not self.tracks(path) or path in self.notebook:
                continue
            now = _look(path)
            if not isinstance(now, tuple):  # gone meanwhile, or a folder now
                continue
            # the file system's clock is coarse (a tick behind `time_ns`): what the step wrote in its first
            # tick is taken as read, which is harmless (gone, it runs the step again, which writes it);
            # a read taken for a product would not be (a product may grow: `_file_change`)
            if max(now[2], now[3]) >= self.began_ns:
                self.writes.add(path)
            else:  # (maybe only listed: `files = sorted(glob(...))`, then one of them read; a digest of
                # every such file could cost more than the step, so any other stat of it is a change)
                self.reads.add(path)
                self.unread_maybe.add(path)
                self.first_seen.setdefault(path, now)

    def finish(self) -> None:
        """Snapshot of the modules and distributions loaded at the end of the step."""
        other_processes.take_reports(self)  # (its work in other processes: as if done here)
        if not self.seeds:
            self.unseeded = [name for name, drew in ((NUMPY_RANDOM, drew_unseeded(self.numpy_random_before)),
                                                     (PYTHON_RANDOM, self.may_draw_python_random
                                                      and drew_python_unseeded(self.python_random_before)))
                             if drew]
        self._named_files()
        self._stated_files()
        self._missing_modules()
        self._sockets_left_open()
        try:
            loaded = loaded_modules()  # one look at sys.modules for both scans
            local = _local_modules(self, loaded)
            for path, module in local.items():
                state, outdated, first = _as_imported(path, module)
                if outdated and path in self.writes:  # its product, that an earlier step here had loaded: not its code
                    continue
                if first and _ran_stale_bytecode(path, module):
                    self.problems.append(f"{self.key(path)} was imported from bytecode cached before the file "
                                         "last changed (the step may have run its old code)")
                self.modules[path] = state
                if outdated:
                    self.outdated_modules.append(self.key(path))
                self._add_import_reads(path, module)
            self._shadows(local)
            self.distributions, self.distribution_files = _loaded_distributions(loaded)
            for top, seen in list(_LIBRARY_IMPORT_READS.items()):  # the few recorded, not every loaded module
                self._add_reads(seen, sys.modules.get(top), library=top)
        except Exception as exc:  # noqa: BLE001 - never the step's failure; the cache must not trust it
            self.problems.append(f"loaded modules: {type(exc).__name__}: {exc}")

    def mention_globs(self, patterns: list[str], folders: list[str]) -> None:
        """Wildcard names and folders the cells name (`mentions`), inside the notebook folder: what
        they match or hold is a dependency, as a glob's or a listing's; so are the files a wildcard
        matches now."""
        for pattern in patterns:
            parts = pattern.split("/")  # (`**/**` is `**`)
            pattern = "/".join(p for i, p in enumerate(parts) if not (p == "**" and i and parts[i - 1] == "**"))
            if pattern.count("**") > 2:  # (each `**` more multiplies the folders a glob walks)
                self.problems.append(f"a named wildcard with more than two '**' is not followed: {pattern}")
                continue
            fixed = os.path.join(self.cwd, os.path.expanduser(re.split(r"[*?\[]", pattern, maxsplit=1)[0]))
            if not self.inside(os.path.abspath(fixed) + os.sep):  # (`!ls /**`: not the whole disk)
                continue
            _note_glob(self, "glob", self.cwd, pattern, "**" in pattern, named=True)
            try:
                matched = glob.glob(pattern, root_dir=self.cwd, recursive="**" in pattern)[:MAX_CANDIDATES]
            except (OSError, ValueError):
                continue
            self.mention({os.path.join(self.cwd, name): NAMES for name in matched
                          if os.path.isfile(os.path.join(self.cwd, name))})
        for folder in folders:  # (inside the notebook folder only: not `~`, `/tmp`, `/`)
            if self.inside(folder) and self.tracks(folder):
                # as it is at the end: what changes meanwhile is taken for the step's own processes'
                # doing (`!mkdir -p out && python train.py --outdir out`), as a named file's change is
                self.listings.add(folder)

    def _named_files(self) -> None:
        """What the files the cells name and no audit event showed were to the step (`mentions`)."""
        for path, (first, use) in self.mentioned.items():
            if path in self.reads or path in self.writes or path in self.appended:
                continue
            now = _look(path)
            if _grew(first, now) and path in self.changed_by_step:
                continue  # a log it appended to through Python (seen): nothing
            if now == first or path in self.changed_by_step:  # (touched, chmod-ed by Python: as it is now)
                if now is not None or use == NAMES:  # (one it would write, absent throughout: nothing)
                    self.reads.add(path)
                    self.named_reads.add(path)
                    self.first_seen.setdefault(path, now)
            elif now is not None:  # written, made or changed by an unseen writer: a product
                self.writes.add(path)
            elif use != WRITES:  # read, then gone (`!cat job.txt; rm job.txt`, `!mv job.txt done/`): one
                self.reads.add(path)  # that comes back is read by a fresh run (not a clean-up's `rm -f`)
                self.first_seen.setdefault(path, None)

    def note_stated(self, path: str, st) -> None:
        """The step tested `path` without opening it (`_stated`); `st` its stat, None when absent."""
        if path in self.stated or not self.tracks(path) or path in self.notebook:
            return
        if len(self.stated) >= MAX_STATED:
            if len(self.stated) == MAX_STATED:
                self.problems.append(f"more than {MAX_STATED:,} paths tested without being opened")
                self.stated[""] = None  # (said once)
            return
        self.stated[path] = None if st is None else TESTED_FOLDER if stat.S_ISDIR(st.st_mode) else stat_key(st)

    def _stated_files(self) -> None:
        """What the files the step only tested (`if os.path.exists(f"data/{m}.csv")`, `getmtime`) were
        to it: one that appears, goes or changes makes the step run again (compared by its stat, as
        a file the step may only have tested; no digest). A folder tested (`os.path.isdir`) counts
        by being one, not by what it holds (that counts when the step lists it); a path absent when
        tested and as the step ended, by being absent: a folder made there later counts too.
        Opened or written ones are decided where they were seen; so are named ones, save that a named
        file the step's Python tested and did not open is compared by its stat too
        (`max(glob.glob("data/*.csv"), key=os.path.getmtime)`: a touch changes the newest)."""
        for path, first in self.stated.items():
            if not path or path in self.writes or path in self.appended:
                continue
            if path in self.reads and path not in self.named_reads or path in self.mentioned and path not in self.reads:
                continue
            now = _tested_look(path)
            if first is None and now is None or first == TESTED_FOLDER == now:
                self.tested[path] = first  # (a folder the step tested, then removed: nothing)
                continue
            if now == TESTED_FOLDER or first == TESTED_FOLDER:  # a folder now (`os.makedirs` after testing the name)
                continue
            if now == first or path in self.changed_by_step:  # (touched, chmod-ed by Python: as it is now)
                self.reads.add(path)
                self.unread_maybe.add(path)
                self.first_seen.setdefault(path, now)
            elif now is not None:  # made or changed by a writer no audit event showed: a product
                self.writes.add(path)
            else:  # there when tested, gone by no removal of the step's through Python: back, it counts
                self.reads.add(path)
                self.first_seen.setdefault(path, None)

    def _missing_modules(self) -> None:
        """A module the step tried to import and did not find (`try: import extras except
        ImportError: ...`) is a dependency too: its file beside the notebook, absent, whose
        appearance would change what the step does."""
        for name in self.imports_tried:
            if name in sys.modules or not name.isidentifier():
                continue
            if findable(name) is False:  # nor installed: a library installed later runs the step again
                self.absent_modules.add(name)
            for candidate in (os.path.join(self.cwd, f"{name}.py"), os.path.join(self.cwd, name, "__init__.py")):
                self._absent(candidate)

    def _sockets_left_open(self) -> None:
        """Connections the step opened and left open (a database connection kept in a variable, an
        SQLAlchemy engine's pool, s3fs's sessions): C code and threads the step did not start make
        them where no audit event of the step's shows (`_connected_to` sees its threads' Python ones)."""
        now = open_sockets()
        if not now - self.sockets_before:
            return
        peers = _cluster_peers()
        for host, port in tcp_peers(now, self.sockets_before):
            if (host, port) not in peers:
                _connected_to(self, (host, port))

    def note_sys_path(self) -> None:
        """Keep `sys.path` as the step's code saw it, before the step shell takes out the notebook
        folder it put first (the imports cell may have put folders before that)."""
        self.sys_path = list(sys.path)

    def _shadows(self, local: dict) -> None:
        """The files that, appearing, a fresh run would import instead of a loaded local module that
        steps imported, from a folder on the step's sys.path: a package `name/` beside `name.py`
        (packages come first), and the module in a folder before its own (`helper.py` beside the
        notebook, over `lib/helper.py` found through `sys.path.append`). Recorded absent, as a
        missing module's files are. And PYTHONPATH, for a module found beyond the notebook folder:
        another one puts other folders first."""
        entries = pth = None
        for path, module in local.items():
            name = getattr(module, "__name__", None)
            # imported by a step (not by the program calling nbscale); `pkg.sub`: its package decides
            if name not in _STEP_IMPORTS or not name.isidentifier():
                continue
            entries = self._step_path() if entries is None else entries  # (most steps have no local module)
            folder, file = os.path.split(path)
            package = file == "__init__.py"
            home = os.path.realpath(os.path.dirname(folder) if package else folder)
            if home not in entries:  # (a module of another notebook folder, loaded in this process)
                continue
            if not package:
                self._absent(os.path.join(folder, name, "__init__.py"))
            before = entries[:entries.index(home)]
            if before:  # found further along sys.path, which PYTHONPATH makes as the process starts
                self.env.setdefault("PYTHONPATH", os.environ.get("PYTHONPATH"))
                # or a .pth file (`conda develop`, written by hand): edited, it puts another folder there
                pth = _site_pth_files() if pth is None else pth  # (read once per step, not per module)
                if any(home in named for named in pth.values()):
                    self.path_files.update(pth)
            for entry in before:
                self._absent(os.path.join(entry, f"{name}.py"))
                self._absent(os.path.join(entry, name, "__init__.py"))

    def _step_path(self) -> list[str]:
        """The folders on the step's sys.path, resolved: the notebook folder first, as the step shell
        puts it (Jupyter's ""), unless the imports cell put others before it."""
        entries = [os.path.realpath(entry or ".") for entry in self.sys_path or sys.path if isinstance(entry, str)]
        here = os.path.realpath(self.cwd)
        return entries if here in entries else [here, *entries]

    def _absent(self, path: str) -> None:
        """`path`, absent now, is a dependency: its appearance changes what the step does."""
        if path not in self.reads and self.tracks(path) and not os.path.exists(path):
            self.reads.add(path)
            self.first_seen.setdefault(path, None)

    def _add_import_reads(self, path: str, module) -> None:
        """What a loaded local module read as it was imported (`CONFIG = json.load(open(...))`): the
        step uses it through the module, whichever step imported it (or the worker's warm-up)."""
        self._add_reads(_IMPORT_READS.get(path), module)

    def _add_reads(self, seen: tuple | None, module, library: str | None = None) -> None:
        """The files and variables of an import-time record (`_import_reads`), if it is of the
        import of `module` loaded now. Of an installed `library`, only its own variables
        (`PANDAS_…` of pandas), kept apart: what it asks of the terminal or the locale as it is
        imported (`COLUMNS`, `LANG`), or the caches it reads (matplotlib's font list), would make
        every step run again when those change."""
        if seen is None or seen[0] is not getattr(module, "__spec__", None):
            return
        for file, look in seen[1].items() if library is None else ():  # a library's: caches (fonts), not data
            if self.tracks(file) and file not in self.writes:
                self.reads.add(file)
                self.first_seen.setdefault(file, look)
        into = self.env if library is None else self.env_of_libraries
        for name, value in seen[2].items():
            if name not in self.env_written and not set_for_the_step(name) and (
                    library is None or name.upper().startswith(library.upper() + "_")):
                into.setdefault(name, value)

    def changed_meanwhile(self) -> list[str]:
        """Files and folders the step read or listed that changed while it ran, not by its own hand:
        their state now is not what the step saw, so the fingerprint must not promise it."""
        own = self.writes | self.changed_by_step
        changed = []
        for path, first in self.first_seen.items():
            if path in own:
                continue
            now = _look(path)  # (a stat, or a folder's listing: not for what the step changed itself)
            if now == first:
                continue
            if isinstance(first, frozenset) and isinstance(now, frozenset) and all(
                    os.path.join(path, name) in own for name in first ^ now):
                continue  # the step's own files came or went
            changed.append(self.key(path))
        return sorted(changed)

    def keys(self, path: str) -> list[str]:
        """The names a path is checked by: relative inside the notebook folder (a copy of the
        project reads its own file), and also absolute when the step named it so (a copy of the
        project still reads the original's)."""
        key = self.key(path)
        return [key, path] if key != path and path in self.given_absolute else [key]

    def _made_here(self, path: str) -> bool:
        """Is `path` a folder the step made, or inside one?"""
        return any(path == folder or path.startswith(folder + os.sep) for folder in self.made_folders)

    def fingerprint(self) -> dict:
        """The state now of everything the step used: call it right after the step."""
        reads = self.reads - self.writes - set(self.modules)  # a file written is a product
        fingerprint = {
            "version": FINGERPRINT_VERSION,
            "files_read": self._file_states(reads | self.path_files),
            "files_written": self._file_states(self.writes),
            "directories": {k: listing_digest(p) for p in sorted(self.listings) for k in self.keys(p)},
            "globs": [[kind, self.key(folder), pattern, recursive, glob_digest(kind, folder, pattern, recursive)]
                      for kind, folder, pattern, recursive in sorted(self.globs)],
            "modules": {self.key(p): s for p, s in sorted(self.modules.items())},
            "distributions": dict(sorted(self.distributions.items())),
            "distribution_files": dict(sorted(self.distribution_files.items())),
            "env": {name: env_value(name, value)
                    for name, value in sorted({**self.env_read_by_c, **self.env_of_libraries, **self.env}.items())},
            "env_set": {name: env_value(name, value) for name, value in sorted(self.env_set.items())},
            "incomplete": list(self.problems),
            "changed_while_running": self.changed_meanwhile(),
            # (one it wrote back as it was, a memo it filled with nothing new: the next run reads the same)
            "read_then_changed": sorted(self.key(path) for path in self.read_then_changed
                                        if _content_digest(path) != self.before_change.get(path)),
            "absent_modules": sorted(self.absent_modules),
        }
        appended = {k: s for p in sorted(self.appended - self.writes) if isinstance(s := file_state(p, False), dict)
                    for k in self.keys(p)}
        if appended:  # (by its stat: a log may be long, and another append changes it)
            fingerprint["appended"] = appended
        if self.env_listed:
            fingerprint["env_names"] = env_names()
        if self.cwd_seen is not None:
            fingerprint["cwd"] = self.cwd_seen
        if self.network:
            fingerprint["network"] = sorted(self.network)
        if self.unseeded:
            fingerprint["unseeded"] = self.unseeded
        if self.fresh_generators:
            fingerprint["fresh_generators"] = self.fresh_generators
        made = sorted({k for p in (*self.listings, *reads, *self.tested) if self._made_here(p) for k in self.keys(p)})
        if made:  # (gone later is no change: the step makes them again as it did; other content is one)
            fingerprint["made"] = made
        if self.tested:
            fingerprint["tested"] = {k: was for p, was in sorted(self.tested.items()) for k in self.keys(p)}
        return fingerprint

    def _file_states(self, paths) -> dict:
        states = {k: file_state(p, p not in self.unread_maybe) for p in sorted(paths) for k in self.keys(p)}
        return {k: s for k, s in states.items() if s is not NOT_A_FILE}  # directories, devices


@contextmanager
def record(cwd: str | None = None, sources=(), values=(), notebook: str = ""):
    """Record what the code run inside the block (in this thread) reads, writes and imports;
    `sources`: the step's cells, whose named files count too, and so do those the texts among
    `values` (the parameters and inputs it is given) name (`mentions`), but for the `notebook`."""
    recording = Recording(cwd or os.getcwd(), notebook)
    recording.seeds = any(_SEEDING_CALL.search(text) for text in sources)
    recording.may_draw_python_random = any(_PYTHON_RANDOM_USE.search(_uncommented(text)) for text in sources)
    given, patterns, folders = value_names(values, recording.cwd)
    named, cut_short = named_files(sources, recording.cwd)
    recording.mention({**given, **named}, cut_short)  # (the cells say best what they do with a file)
    recording.mention_globs(*named_globs_and_folders(sources, recording.cwd))
    recording.mention_globs(patterns, folders)
    _start(recording)
    try:
        yield recording
    finally:
        _stop(recording)
        recording.finish()


def numpy_random_state() -> tuple | None:
    """(key, position) of numpy's global generator (`np.random.rand()`'s), if numpy.random is loaded."""
    numpy_random = sys.modules.get("numpy.random")
    get_state = getattr(numpy_random, "get_state", None)
    if get_state is None:
        return None
    try:
        state = get_state(legacy=True)
        return bytes(state[1]), state[2], state[3], state[4]  # (a cached gaussian draws without moving on)
    except Exception:  # noqa: BLE001 - a patched or partial numpy: nothing known
        return None


def drew_unseeded(before: tuple | None) -> bool:
    """Whether the code run since numpy's global generator was `before` drew from it: a generator
    nbscale (or numpy's import) seeded from fresh entropy, so a fresh run draws other numbers. A
    generator loaded meanwhile is still where its seeding left it (position 623 or 624) until a draw."""
    now = numpy_random_state()
    if now is None:
        return False
    return now != before if before is not None else now[1] not in _FRESH_POSITIONS


def fresh_generators(cells) -> list[str]:
    """The calls in `cells` (a step's own) that make a random generator from fresh entropy:
    `np.random.default_rng()`, `random.Random()`, given no seed."""
    return sorted({found.group(0) for text in cells for found in _FRESH_GENERATOR.finditer(_uncommented(text))})


def _uncommented(text: str) -> str:
    """`text` without its comment lines (`# rng = np.random.default_rng()` is code put aside)."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def python_random_state() -> tuple | None:
    """The state of Python's global generator (`random.random()`'s), if `random` is loaded."""
    module = sys.modules.get("random")
    try:
        return module.getstate()[1] if module is not None else None
    except Exception:  # noqa: BLE001 - a patched module: nothing known
        return None


def drew_python_unseeded(before: tuple | None) -> bool:
    """`drew_unseeded` for Python's `random`, seeded from fresh entropy as it is imported. (A thread
    of the process other than the step's may draw from it too, and make a step run again.)"""
    now = python_random_state()
    if now is None:
        return False
    return now != before if before is not None else now[-1] != _PYTHON_FRESH_POSITION


def _hook() -> None:
    """Add the audit hook, once per process (hooks cannot be removed)."""
    global _HOOKED
    if not _HOOKED:
        # The hook must not compute these: it may run inside tempfile's or site's own locks.
        _nbscale_packages(), _own_temp_folder()
        is_interpreter_path(os.sep)
        sys.addaudithook(_on_audit)
        native_io.install()
        other_processes.wrap_pools()
        _HOOKED = True


def watch_imports() -> None:
    """From now on, note what is installed as each library's import begins, in any step of this
    process, recorded or not (`_import_began`)."""
    with _LOCK:
        _hook()


def _start(recording: Recording) -> None:
    ident = threading.get_ident()
    with _LOCK:
        if ident in _ACTIVE:
            raise RuntimeError("a dependency recording is already active in this thread")
        _hook()
        if not _ACTIVE and not isinstance(os.environ, RecordingEnviron):
            os.environ = RecordingEnviron(os.environ)  # noqa: B003 - the same variables, seen through a wrapper
        if not _ACTIVE:
            os.getcwd = _recording_getcwd  # `os.path.abspath`, `Path.cwd`, `Path.resolve` ask it too
            threading.Thread.start = _thread_start
            ThreadPoolExecutor.submit = _pool_submit
            os.stat, os.lstat = _recording_stat, _recording_lstat  # `os.path.exists`, `Path.is_file` call them
            os.access = _recording_access  # `shutil.which`, `if os.access(path, os.R_OK)`
            os.scandir = _recording_scandir  # its entries' `stat()`: `max(os.scandir(d), key=newest)`
            os.open = _recording_os_open  # a name relative to a `dir_fd`: its "open" event says not which folder
            see_shell_commands()  # (done already where a step's process state is kept: `task.isolated_step`)
        recording.active = True
        _ACTIVE[ident] = recording


def _stop(recording: Recording) -> None:
    with recording.lock:  # a thread of the step in the middle of an event ends it first
        recording.active = False
    with _LOCK:
        _ACTIVE.pop(threading.get_ident(), None)
        if not _ACTIVE and isinstance(os.environ, RecordingEnviron):
            os.environ = os.environ.environ  # noqa: B003 - the real mapping back
        if not _ACTIVE:
            os.getcwd = _REAL_GETCWD
            threading.Thread.start = _REAL_THREAD_START
            ThreadPoolExecutor.submit = _REAL_POOL_SUBMIT
            os.stat, os.lstat = _REAL_STAT, _REAL_LSTAT
            os.access, os.scandir, os.open = _REAL_ACCESS, _REAL_SCANDIR, _REAL_OS_OPEN
    recording.env_set = {name: os.environ.get(name) for name in recording.env if name in recording.env_written}


_REAL_GETCWD = os.getcwd
_REAL_STAT, _REAL_LSTAT, _REAL_ACCESS, _REAL_SCANDIR = os.stat, os.lstat, os.access, os.scandir
_REAL_OS_OPEN = os.open
_OPENING_AT = threading.local()  # `.names`: (the name given, the path it is) of an `os.open` at a `dir_fd`
_REAL_THREAD_START = threading.Thread.start
_REAL_POOL_SUBMIT = ThreadPoolExecutor.submit
_STARTED_BY = "_nbscale_recording"  # the attribute of a thread a step started: that step's recording
_LENT = threading.local()  # `.recording`: that of the step whose work a pool's thread does now


def _thread_start(thread: threading.Thread) -> None:
    """`threading.Thread.start` while any recording is active: a thread the step's code starts
    (`ThreadPoolExecutor.map(load, parts)`, which builds each file's name in the thread) records
    into the step's recording until the step ends; Python raises no audit event as a thread starts.
    Not the threads nbscale starts on the step's behalf."""
    recording = _recording_here()
    if recording is not None and not _asked_by_nbscale(sys._getframe(1)):
        setattr(thread, _STARTED_BY, recording)
    return _REAL_THREAD_START(thread)


def _pool_submit(pool, fn, /, *args, **kwargs):
    """`ThreadPoolExecutor.submit` while any recording is active: the work a step hands to a pool
    records into the step, also on a thread that ran before it (a module's pool, Dask's threaded
    scheduler's), whose idle threads the pool reuses."""
    recording = _recording_here()
    if recording is not None and not _asked_by_nbscale(sys._getframe(1)):
        fn = _lent_to(recording, fn)
    return _REAL_POOL_SUBMIT(pool, fn, *args, **kwargs)


def _lent_to(recording: Recording, fn):
    def work(*args, **kwargs):
        before = getattr(_LENT, "recording", None)
        _LENT.recording = recording
        try:
            return fn(*args, **kwargs)
        finally:
            _LENT.recording = before

    return work


def _recording_stat(path, *, dir_fd=None, follow_symlinks=True):
    """`os.stat` while any recording is active (`os.path.exists`, `isfile`, `getmtime`, `getsize`,
    `pathlib.Path.exists`, `is_file`, `stat` call it): a file the step tests without opening it is
    a dependency (`Recording._stated_files`); no audit event shows such a test."""
    try:
        st = _REAL_STAT(path, dir_fd=dir_fd, follow_symlinks=follow_symlinks)
    except FileNotFoundError:
        _stated(path, dir_fd, None)
        raise
    _stated(path, dir_fd, st)
    return st


def _recording_lstat(path, *, dir_fd=None):
    """`os.lstat` while any recording is active (`os.path.lexists`, `islink`), as `_recording_stat`."""
    try:
        st = _REAL_LSTAT(path, dir_fd=dir_fd)
    except FileNotFoundError:
        _stated(path, dir_fd, None)
        raise
    _stated(path, dir_fd, st)
    return st


def _recording_access(path, mode, *, dir_fd=None, effective_ids=False, follow_symlinks=True):
    """`os.access` while any recording is active (`if os.access("data/july.csv", os.R_OK)`,
    `shutil.which`): a test, as `_recording_stat`'s; what it tested is looked at by a stat."""
    allowed = _REAL_ACCESS(path, mode, dir_fd=dir_fd, effective_ids=effective_ids, follow_symlinks=follow_symlinks)
    if dir_fd is None and not isinstance(path, int) and _recording_here() is not None:
        try:
            st = _REAL_STAT(path, follow_symlinks=follow_symlinks)
        except (OSError, TypeError, ValueError):  # (absent, or not a path: `_stated` tells)
            st = None
        _stated(path, dir_fd, st)
    return allowed


def _recording_os_open(path, flags, mode=0o777, *, dir_fd=None):
    """`os.open` while any recording is active: a name relative to an open folder (`dir_fd`) is
    taken, in its "open" event (`_opened`), as the path it is in that folder, not the working
    directory's file of that name."""
    if dir_fd is None or isinstance(path, int):
        return _REAL_OS_OPEN(path, flags, mode)
    before = getattr(_OPENING_AT, "names", None)
    _OPENING_AT.names = (path, _at(path, dir_fd))
    try:
        return _REAL_OS_OPEN(path, flags, mode, dir_fd=dir_fd)
    finally:
        _OPENING_AT.names = before


def _recording_scandir(path="."):
    """`os.scandir` while any recording is active: the listing is recorded as ever (its audit
    event); what an entry's `stat()` shows (`max(os.scandir("data"), key=lambda e: e.stat().st_mtime)`)
    is a test of that file, as `os.stat`'s, which the entry does not call."""
    entries = _REAL_SCANDIR(path)
    if isinstance(path, int) or _recording_here() is None or _asked_by_nbscale(sys._getframe(1), or_importing=True):
        return entries
    return _RecordedEntries(entries)


class _RecordedEntries:
    """`os.scandir`'s iterator, giving `_RecordedEntry`s."""

    __slots__ = ("_entries",)

    def __init__(self, entries):
        self._entries = entries

    def __iter__(self):
        return self

    def __next__(self):
        return _RecordedEntry(next(self._entries))

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._entries.close()

    def close(self) -> None:
        self._entries.close()


class _RecordedEntry:
    """An `os.DirEntry` (which no class can extend) whose `stat()` is seen: all else is the entry's."""

    __slots__ = ("_entry",)

    def __init__(self, entry):
        self._entry = entry

    def __getattr__(self, name):  # (`is_junction` and what later Pythons add)
        return getattr(self._entry, name)

    @property
    def __class__(self):  # `isinstance(entry, os.DirEntry)`, as the step's code asks without nbscale
        return os.DirEntry

    # what `os.walk`, `glob` and `Path.glob` ask of every entry, without `__getattr__`'s detour
    name = property(lambda self: self._entry.name)
    path = property(lambda self: self._entry.path)

    def is_dir(self, *, follow_symlinks=True) -> bool:
        return self._entry.is_dir(follow_symlinks=follow_symlinks)

    def is_file(self, *, follow_symlinks=True) -> bool:
        return self._entry.is_file(follow_symlinks=follow_symlinks)

    def is_symlink(self) -> bool:
        return self._entry.is_symlink()

    def inode(self) -> int:
        return self._entry.inode()

    def __fspath__(self):
        return self._entry.__fspath__()

    def __repr__(self) -> str:
        return repr(self._entry)

    def stat(self, *, follow_symlinks=True):
        try:
            st = self._entry.stat(follow_symlinks=follow_symlinks)
        except FileNotFoundError:  # (gone since it was listed)
            _stated(self._entry.path, None, None)
            raise
        _stated(self._entry.path, None, st)
        return st


def _as_able_as_the_originals() -> None:
    """What code asks of `os.stat` before passing it a `dir_fd` or an fd (`shutil.rmtree` chooses its
    symlink-safe way as `shutil` is imported): the wrappers take what the functions take."""
    for real, wrapper in ((_REAL_STAT, _recording_stat), (_REAL_LSTAT, _recording_lstat),
                          (_REAL_ACCESS, _recording_access), (_REAL_SCANDIR, _recording_scandir),
                          (_REAL_OS_OPEN, _recording_os_open)):
        for able in (os.supports_dir_fd, os.supports_fd, os.supports_follow_symlinks, os.supports_effective_ids):
            if real in able:
                able.add(wrapper)


_as_able_as_the_originals()


def _stated(path, dir_fd, st) -> None:
    if isinstance(path, int) or (st is not None and not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode)):
        return  # (a device, a socket)
    if dir_fd is not None:  # (`os.stat(name, dir_fd=folder)`: the name in that folder)
        path = None if _opened_at_a_folder(sys._getframe(1)) else _at(path, dir_fd)
        if path is None:
            return
    recording = _recording_here()
    if recording is None or recording.quiet or _asked_by_nbscale(sys._getframe(2), or_importing=True):
        return
    try:
        full = _abspath(path)
    except (TypeError, ValueError):  # (not a path; a NUL: the stat raised already)
        return
    with _guard(recording):
        if recording.active:
            recording.note_stated(full, st)


def _recording_here() -> Recording | None:
    """The recording of this thread: its own, or that of the running step whose work it does (a
    pool's) or that started it."""
    ident = threading.get_ident()
    recording = _ACTIVE.get(ident)
    if recording is None:
        recording = getattr(_LENT, "recording", None)
        if recording is None:
            # (`threading._active`, not `current_thread()`, which makes a dummy thread for a foreign one)
            recording = getattr(threading._active.get(ident), _STARTED_BY, None)
        if recording is not None and not recording.active:
            return None
    return recording


_NO_LOCK = nullcontext()


def _guard(recording: Recording):
    """What a thread holds while it records into `recording`: nothing in the step's own thread; in
    a thread the step started or lent work to, the recording's lock, which the step's end takes
    (`_stop`): nothing is added to a recording once it ended, as it is being read."""
    return _NO_LOCK if _ACTIVE.get(threading.get_ident()) is recording else recording.lock


def _recording_getcwd() -> str:
    """`os.getcwd` while any recording is active: a value made from it (`os.path.abspath("out")`)
    holds the folder, so a run from another folder must not reuse it."""
    cwd = _REAL_GETCWD()
    recording = _recording_here()
    if recording is not None and recording.cwd_seen is None and not _asked_by_nbscale(sys._getframe(1)):
        with _guard(recording):
            if recording.active:  # (the folder it ran from: one a step changed to since follows from the code)
                recording.cwd_seen = recording.cwd
    return cwd


def _asked_by_nbscale(frame, or_importing: bool = False) -> bool:
    """Whether the code that asked is nbscale's own (as it sets up the step), past the library
    frames between (`posixpath.abspath`, `pathlib`, IPython); `or_importing`: or the import system,
    finding modules and distributions (`importlib.metadata` stats every folder on sys.path, a Dask
    worker's scratch folder among them: gone with the cluster, it ran every step again)."""
    packages = _nbscale_packages()
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(packages) or (or_importing and _is_machinery(name)):
            return True
        if not is_interpreter_path(name):
            return False  # the step's code, or a local module
        frame = frame.f_back
    return False


def _abspath(path) -> str:
    """os.path.abspath without asking the wrapped `os.getcwd`: the hook's own look is not the step's."""
    path = os.fsdecode(path)
    return os.path.normpath(path if os.path.isabs(path) else os.path.join(_REAL_GETCWD(), path))


def _after_fork_in_child() -> None:
    global _LOCK
    _LOCK = threading.Lock()  # a fork while another thread held it would leave it locked
    _ACTIVE.clear()  # the child's memory is not the step's


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# --- the audit hook --------------------------------------------------------------------------------


def _on_audit(event: str, args: tuple, _active=_ACTIVE) -> None:
    if event == "import":  # (raised only for a module not loaded yet)
        _import_began(args)
        other_processes.wrap_loky_if_loaded()  # (joblib imports more after loky's executor)
    if not _active:  # all that any audit event in the process pays while no step records
        return
    handler = _HANDLERS.get(event)
    if handler is None:
        return
    recording = _ACTIVE.get(threading.get_ident())
    if recording is not None:
        if not recording.quiet:
            _handle(handler, recording, event, args)
        return
    recording = _recording_here()  # a thread the step started or lent work to
    if recording is not None and not recording.quiet:
        with _guard(recording):
            if recording.active:
                _handle(handler, recording, event, args)


def _handle(handler, recording: Recording, event: str, args) -> None:
    try:
        handler(recording, args)
    except Exception as exc:  # noqa: BLE001 - the step's own call must go on; the cache must not trust it
        recording.problems.append(f"{event}: {type(exc).__name__}: {exc}")


def _opened(recording: Recording, args) -> None:
    path, _mode, flags = args
    # A file opened to append to is a log the step adds to (as later steps may), not a product
    # whose content the step decides: checking it would make every earlier writer stale.
    if isinstance(path, int) or flags & _O_DIRECTORY or _opened_at_a_folder(sys._getframe(1)):
        return
    at = getattr(_OPENING_AT, "names", None)
    if at is not None and at[0] is path:  # (`os.open(name, flags, dir_fd=folder)`)
        if at[1] is None:
            recording.problems.append("a file was opened relative to a folder that could not be told")
            return
        path = os.path.relpath(at[1], _REAL_GETCWD())  # (no absolute name the step gave: `_note_absolute`)
    if flags & os.O_APPEND:
        _appended(recording, path)
        return
    write = bool(flags & _WRITE_FLAGS)
    _saw(recording, path if write else _source_of_bytecode(path), write=write)


def _source_of_bytecode(path):
    """A module's source for its bytecode cache: a module loaded from a valid `.pyc` (by import, or
    `importlib` from a file path) opens only that, yet runs the source's code, so the source is
    what it read (and a `.pyc` is skipped as the interpreter's)."""
    if not isinstance(path, str) or not path.endswith(".pyc"):
        return path
    try:
        source = importlib.util.source_from_cache(_abspath(path))
    except ValueError:  # not in a bytecode cache's layout: a .pyc file of the user's own
        return path
    return source if os.path.exists(source) else path


def _opened_at_a_folder(frame) -> bool:
    """Is this `os.open` one of a walk that opens folders by their names in an open folder (the
    "open" event has no `dir_fd`: the name, taken as the working directory's, is another file)?"""
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back  # (the hook's own)
    return frame is not None and frame.f_code in _WALKS_AT_FOLDERS


# (their code objects: `os` is frozen, its functions' file is "<frozen os>")
_WALKS_AT_FOLDERS = {getattr(module, name).__code__ for module, name in (
    (shutil, "_rmtree_safe_fd"), (shutil, "_rmtree_safe_fd_step"), (os, "_fwalk")) if hasattr(module, name)}


def _changed(recording: Recording, located) -> None:  # os.rename/replace, os.remove, os.truncate
    for path, dir_fd in located:
        path = _at(path, dir_fd)
        if path is not None:
            _saw(recording, path, write=True)


def _at(path, dir_fd):
    """A path an event gives relative to an open folder (`dir_fd`: `shutil.rmtree` removes by names
    in the folder it opened) as one from the working directory; None for a file descriptor, or a
    folder that cannot be told. The events give -1 for no `dir_fd`."""
    if isinstance(path, int) or not isinstance(dir_fd, int) or dir_fd < 0 or os.path.isabs(os.fsdecode(path)):
        return None if isinstance(path, int) else path
    try:
        return os.path.join(os.readlink(f"{_FDS}/{dir_fd}"), os.fsdecode(path))
    except OSError:
        return None


def _connected(recording: Recording, args) -> None:  # sqlite3.connect(database)
    if args[0] not in (":memory:", b":memory:", ""):
        # in WAL mode, commits stay in the -wal file until a checkpoint: the database file keeps
        # its size and time while a writer that holds it open adds rows
        files = (args[0], os.fsdecode(args[0]) + "-wal")
        for path in files:
            _saw(recording, path, write=False)
        # SQLite writes them from C, unseen: a change while the step runs may be the step's own
        _changed_by_step(recording, files)


def _listed(recording: Recording, args) -> None:  # os.listdir(path) / os.scandir(path)
    path = "." if args[0] is None else args[0]
    if isinstance(path, int):
        return
    given, path = path, _abspath(path)
    if recording.tracks(path) and not _importing(sys._getframe(2)):
        recording.listings.add(path)
        _note_absolute(recording, given, path)
        _first_look(recording, path)


def _globbed(recording: Recording, args) -> None:  # glob.glob/2 (pattern, recursive, root_dir, dir_fd)
    pattern, recursive, root_dir, dir_fd = args[:4]
    if dir_fd is None and isinstance(pattern, str):
        _note_glob(recording, "glob", root_dir if root_dir is not None else ".", pattern, bool(recursive))


def _path_globbed(recording: Recording, args, prefix: str = "") -> None:  # pathlib.Path.glob/rglob (path, pattern)
    if isinstance(args[1], str):
        _note_glob(recording, "path", args[0], prefix + args[1], True)


def _note_glob(recording: Recording, kind: str, folder, pattern: str, recursive: bool, named: bool = False) -> None:
    """What a glob matches, not only the folders it lists: `data/*/part.csv` tests each folder for
    the file (`os.stat`), which no audit event shows. Not a library's look into the interpreter's
    folders, nor one made while a module is imported (plug-ins, fonts). `named`: written in the
    cells (`mentions`), not made by a call."""
    folder = _abspath(folder)
    fixed = _abspath(os.path.join(folder, re.split(r"[*?\[]", pattern, maxsplit=1)[0]))  # before a wildcard
    if recording.tracks(folder) and recording.tracks(fixed) and (named or not _importing(sys._getframe(3))):
        recording.globs.add((kind, folder, pattern, recursive))


def _changed_by_step(recording: Recording, paths) -> None:  # os.utime, os.chmod, os.chown, os.mkdir, ...
    for path in paths:
        if isinstance(path, (str, bytes, os.PathLike)):
            recording.changed_by_step.add(_abspath(path))


def _made_folder(recording: Recording, args) -> None:  # os.mkdir (path, mode, dir_fd), as it begins
    path = _at(args[0], args[2] if len(args) > 2 else None)
    if isinstance(path, (str, bytes, os.PathLike)):
        path = _abspath(path)
        try:  # (`makedirs(exist_ok=True)` of a folder there: not the step's)
            _REAL_LSTAT(path)  # (unwrapped: the hook's look is not the step's)
        except OSError:
            recording.made_folders.add(path)
    _changed_by_step(recording, [path])


def _changed_at(event: str):
    """The handler of an event that changes what it names, relative to its `dir_fd` where it has one."""
    where = _LOCATED[event]

    def handle(recording: Recording, args) -> None:
        located = ((args[i], args[d] if d is not None and d < len(args) else None) for i, d in where if i < len(args))
        _changed_by_step(recording, [_at(path, dir_fd) for path, dir_fd in located])

    return handle


# an event's (path, dir_fd) places in its arguments: (path, mode, dir_fd), (src, dst, src_dir_fd, dst_dir_fd)...
_LOCATED = {"os.utime": ((0, 3),), "os.chmod": ((0, 2),), "os.chown": ((0, 3),), "os.mkdir": ((0, 2),),
            "os.rmdir": ((0, 1),), "os.link": ((0, 2), (1, 3)), "os.symlink": ((1, 2),)}


def _appended(recording: Recording, path) -> None:
    """`open(path, "a")`: a log the step adds to, unless it read what the file held (before, or
    after adding to it), as a history it counts or a state it advances does."""
    absolute = _abspath(path)
    if recording.tracks(absolute) and absolute not in recording.writes:
        recording.appended.add(absolute)
        if absolute in recording.read_original:
            _changes_what_it_read(recording, absolute)
        elif absolute not in recording.changed_by_step and _holds_data(absolute):
            recording.appended_to_data.add(absolute)
            _note_content(recording, absolute)
    _changed_by_step(recording, (path,))


def _site_pth_files() -> dict[str, set[str]]:
    """The .pth files of the site folders, each with the folders it puts on sys.path (resolved):
    when one of them put a local module's folder there, any of them, edited, may put another folder
    with the same module there (a pip editable install is seen by its RECORD; `conda develop` and a
    .pth written by hand are not)."""
    import site

    found: dict[str, set[str]] = {}
    for site_folder in {*site.getsitepackages(), site.getusersitepackages()}:
        try:
            names = sorted(n for n in os.listdir(site_folder) if n.endswith(".pth"))
        except OSError:
            continue
        for name in names:
            file = os.path.join(site_folder, name)
            try:
                with open(file, encoding="utf-8", errors="replace") as f:
                    lines = [line.strip() for line in f if line.strip() and not line.startswith(("#", "import"))]
            except OSError:
                continue
            found[file] = {os.path.realpath(os.path.join(site_folder, line)) for line in lines}
    return found


def _changes_what_it_read(recording: Recording, path: str) -> None:
    """The step is about to write or append to a file it read as it was: its content now (the "open"
    event comes before the file is truncated) is what the step read."""
    recording.read_then_changed.add(path)
    _note_content(recording, path)


def _note_content(recording: Recording, path: str) -> None:
    if path in recording.before_change:
        return
    was, recording.quiet = recording.quiet, True  # (nbscale's look, not the step's read)
    try:
        recording.before_change[path] = _content_digest(path)
    finally:
        recording.quiet = was


def _content_digest(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return file_digest(f)[0]
    except OSError:
        return None


def _holds_data(path: str) -> bool:
    try:
        return _REAL_STAT(path).st_size > 0
    except (OSError, ValueError):
        return False


def _saw(recording: Recording, path, *, write: bool) -> None:
    given, path = path, _abspath(path)
    if recording.tracks(path):
        if write and path in recording.read_original and recording.first_seen.get(path) is not None:
            _changes_what_it_read(recording, path)
        elif not write and path in recording.appended_to_data:
            recording.read_then_changed.add(path)
        elif not write and path not in recording.writes and path not in recording.changed_by_step:
            recording.read_original.add(path)
        (recording.writes if write else recording.reads).add(path)
        if not write:
            _note_absolute(recording, given, path)
            _first_look(recording, path)
            imported = _import_reads(sys._getframe(1))
            if imported is not None:
                imported[1].setdefault(path, recording.first_seen[path])


def _note_absolute(recording: Recording, given, path: str) -> None:
    if recording.inside(path) and os.path.isabs(os.fsdecode(given)):
        recording.given_absolute.add(path)


def _first_look(recording: Recording, path: str) -> None:
    if path not in recording.first_seen:
        recording.first_seen[path] = None  # listing a folder below raises the audit event again
        recording.first_seen[path] = _look(path)


def _grew(first, now) -> bool:
    """Whether a file only grew (the same file, longer): appended to, as a log is."""
    return isinstance(first, tuple) and isinstance(now, tuple) and first[0] == now[0] and now[1] > first[1]


def _look(path: str):
    """What shows that a file or folder changed: None when absent, a folder's entry names, a
    file's inode, size, mtime and ctime (ctime cannot be set back: a replaced or rewritten file
    shows even when its size and mtime were kept)."""
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            return frozenset(os.listdir(path))
    except (OSError, ValueError):  # (ValueError: a NUL, a lone surrogate)
        return None
    return stat_key(st)


def _tested_look(path: str):
    """As `_look`, but a folder is TESTED_FOLDER, not its listing (a folder the step made may be big)."""
    try:
        st = _REAL_STAT(path)
    except (OSError, ValueError):
        return None
    return TESTED_FOLDER if stat.S_ISDIR(st.st_mode) else stat_key(st)


def _command_started(recording: Recording, command, cwd=None, env=None) -> None:
    """A process the step starts (`subprocess`, `os.system`, `!cmd`), before it runs: the files its
    arguments or shell words name (`mentions.command_names`), relative to the folder it runs in
    now (after `%cd` or `os.chdir` too), are looked at as the cells' named files are, unless the
    cells named them already (looked at earlier: before the step ran). The variables its words
    name (`$NAME`, `${NAME}`) are read from the environment it inherits (`env` None)."""
    if env is None:
        environ = os.environ.environ if isinstance(os.environ, RecordingEnviron) else os.environ
        for name in _shell_variables(command):
            _note_env(recording, name, environ.get(name))
    if recording.command_names >= MAX_COMMAND_NAMES:
        if recording.command_names == MAX_COMMAND_NAMES:
            recording.problems.append(f"more than {MAX_COMMAND_NAMES:,} names of files in the commands the step ran")
            recording.command_names += 1
        return
    folder = _abspath(cwd) if cwd is not None else _REAL_GETCWD()
    if not isinstance(command, (str, list, tuple)):
        command = [command]  # (`subprocess.run(Path("prep.sh"))`)
    was, recording.quiet = recording.quiet, True  # (the files it looks at are nbscale's look, not the step's)
    try:
        named, patterns, folders = command_names(command, folder)
    finally:
        recording.quiet = was
    recording.appended.update(path for path, use in named.items() if use == APPENDS)
    new = {path: use for path, use in named.items() if path not in recording.mentioned}
    recording.command_names += len(new)
    recording.mention(new)
    if patterns or folders:
        recording.quiet = True  # (the folders the glob lists are nbscale's look, not the step's)
        try:
            recording.mention_globs([p if folder == recording.cwd else os.path.join(folder, p) for p in patterns],
                                    [f for f in folders if f not in recording.first_seen])
        finally:
            recording.quiet = False


_SHELL_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


def _shell_variables(command) -> set[str]:
    """The variables a command's words name for a shell to expand: `echo $DATE`, `${BUCKET}/x`, the
    `bash -c` text of an argument list (quoted `'$X'` too: one read too many costs a re-run, not a
    stale result)."""
    words = [command] if isinstance(command, (str, bytes)) else command if isinstance(command, (list, tuple)) else []
    found = set()
    for word in words:
        if isinstance(word, bytes):
            word = os.fsdecode(word)
        if isinstance(word, str) and "$" in word:
            found.update(_SHELL_VARIABLE.findall(word))
    return found - _SET_BY_THE_SHELL


# What a shell sets itself as it starts or runs, whatever it inherits: `$PWD` is the folder the
# command runs in (the terminal's, inherited, is not what it reads)
_SET_BY_THE_SHELL = frozenset({"PWD", "OLDPWD", "SHLVL", "_", "RANDOM", "SRANDOM", "LINENO", "SECONDS", "PPID", "UID",
                               "EUID", "BASHPID", "IFS", "OPTIND", "OPTARG", "REPLY", "EPOCHSECONDS", "EPOCHREALTIME"})


def see_shell_commands() -> None:
    """IPython runs `!cmd` through a pseudo-terminal (pexpect), which no audit event shows with the
    command: its `system` (the shell's and ipykernel's) is wrapped to tell the command first, with
    its `{name}`s filled in, as event `nbscale.system`."""
    for name in ("IPython.core.interactiveshell", "ipykernel.zmqshell"):
        module = sys.modules.get(name)
        system = getattr(module, "system", None)
        if system is None or getattr(system, "tells_nbscale", False):
            continue

        def told(cmd, _system=system):
            sys.audit("nbscale.system", cmd)
            return _system(cmd)

        told.tells_nbscale = True
        module.system = told


def _import_tried(recording: Recording, args) -> None:  # import (module, filename, sys.path, ...)
    if isinstance(args[0], str):
        recording.imports_tried.add(args[0].partition(".")[0])
        _STEP_IMPORTS.add(args[0])


_STEP_IMPORTS: set[str] = set()  # modules a step (or a warm-up) began to import in this process


_HANDLERS = {"open": _opened,
             # (src, dst, src_dir_fd, dst_dir_fd), (path, dir_fd), (path, length)
             "os.rename": lambda recording, args: _changed(recording, ((args[0], args[2]), (args[1], args[3]))),
             "os.remove": lambda recording, args: _changed(recording, ((args[0], args[1]),)),
             "os.truncate": lambda recording, args: _changed(recording, ((args[0], None),)),
             "import": _import_tried,
             # the processes a step starts: (executable, args, cwd, env), (command,), (path, argv, env), ...
             "subprocess.Popen": lambda recording, args: _command_started(recording, args[1], args[2], args[3]),
             **dict.fromkeys(("os.system", "nbscale.system"),
                             lambda recording, args: _command_started(recording, os.fsdecode(args[0]))),
             **dict.fromkeys(("os.posix_spawn", "os.exec"),
                             lambda recording, args: _command_started(recording, args[1], env=args[2])),
             "os.spawn": lambda recording, args: _command_started(recording, args[2], env=args[3]),
             "sqlite3.connect": _connected, "os.listdir": _listed, "os.scandir": _listed,
             "glob.glob/2": _globbed, "pathlib.Path.glob": _path_globbed,
             "pathlib.Path.rglob": lambda recording, args: _path_globbed(recording, args, "**/"),
             # both paths of a hard link change; of a symlink only dst
             **{event: _changed_at(event) for event in _LOCATED},
             "os.mkdir": _made_folder,
             # (url, data, headers, method), (socket, address)
             "urllib.Request": lambda recording, args: _connected_to(recording, args[0]),
             "socket.connect": lambda recording, args: _connected_to(recording, args[1])}
MAX_NETWORK = 20  # places a fingerprint names that the step read over the network


def _connected_to(recording: Recording, target) -> None:
    """A URL the step opened (`urllib`, so `pd.read_csv(url)`), or an address its threads
    connected a socket to (`requests`, a database client written in Python): what it read there
    may change while nothing nbscale checks does. This machine's own addresses are left out (the
    cluster's scheduler, services of the machine) and so are Unix sockets."""
    if isinstance(target, str) and "://" in target:
        parts = urlsplit(target)
        if parts.scheme in ("", "file") or _loopback(parts.hostname or ""):
            return
        place = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    elif isinstance(target, tuple) and len(target) >= 2 and isinstance(target[0], str):
        if _loopback(target[0]):
            return
        place = f"{target[0]}:{target[1]}"
    else:  # a Unix socket's path, a Bluetooth or netlink address
        return
    if len(recording.network) < MAX_NETWORK:
        recording.network.add(place)  # (never a URL's user, password, path or query)


_FDS = "/proc/self/fd"
_TCP_TABLES = (("/proc/self/net/tcp", False), ("/proc/self/net/tcp6", True))
_LISTENING = "0A"  # a TCP state in those tables: a server's socket, connected to nothing


def open_sockets() -> frozenset[int]:
    """The inodes of this process's open sockets (Linux; none known elsewhere): one directory read
    and a `readlink` per open file."""
    try:
        fds = os.listdir(_FDS)
    except OSError:
        return frozenset()
    inodes = set()
    for fd in fds:
        try:
            target = os.readlink(f"{_FDS}/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:[") and target.endswith("]") and target[8:-1].isdigit():
            inodes.add(int(target[8:-1]))
    return frozenset(inodes)


def tcp_peers(open_now, open_before=frozenset()) -> list[tuple[str, int]]:
    """(address, port) that each TCP socket open now and not before is connected or connecting to;
    not a connection this process accepted (on a port it listens on: a Dask worker's peers fetching
    data from it), which is no read."""
    mine = []  # (inode, state, local port, remote end) of this process's sockets
    for table, v6 in _TCP_TABLES:
        try:
            with open(table, encoding="ascii") as f:
                rows = [row.split() for row in f.read().splitlines()[1:]]
        except OSError:
            continue
        mine += [(int(fields[9]), fields[3], _table_address(fields[1], v6)[1], _table_address(fields[2], v6))
                 for fields in rows if len(fields) > 9 and fields[9].isdigit() and int(fields[9]) in open_now]
    listening = {port for _, state, port, _ in mine if state == _LISTENING}
    return [remote for inode, state, port, remote in mine
            if state != _LISTENING and inode not in open_before and port not in listening]


def _table_address(text: str, v6: bool) -> tuple[str, int]:
    """`0100007F:1F90` → ("127.0.0.1", 8080): the kernel's table writes each 32-bit word in host order."""
    address, port = text.split(":")
    raw = bytes.fromhex(address)
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)) if sys.byteorder == "little" else raw
    ip = ipaddress.ip_address(raw)
    if v6 and ip.ipv4_mapped is not None:  # `::ffff:127.0.0.1`: a v4 address on a v6 socket
        ip = ip.ipv4_mapped
    return str(ip), int(port, 16)


def _cluster_peers() -> set[tuple[str, int]]:
    """The Dask schedulers and workers this process holds connections to (a worker's, and those of a
    client a step computes through, which fetches results from the workers holding them): the
    cluster's traffic, not what a step read. (`ConnectionPool._instances` and `_global_clients` are
    distributed's own registries of them; should a release drop one, its peers' connections are
    warned of, never hidden, and `test_dask`'s test of this fails.)"""
    core, client, worker = (sys.modules.get(f"distributed.{name}") for name in ("core", "client", "worker"))
    addresses = set()
    with suppress(Exception):  # another shape of distributed: what was found so far
        for pool in list(core.ConnectionPool._instances) if core is not None else ():
            addresses.update(pool.available, pool.occupied)
        for found in list(client._global_clients.values()) if client is not None else ():
            addresses.add(found.scheduler.address)
        if worker is not None:
            addresses.add(worker.get_worker().scheduler.address)  # (ValueError: no worker here)
    peers = set()
    for address in addresses:
        host, _, port = str(address).rpartition("://")[2].rpartition(":")
        if port.isdigit():
            peers.add((host.strip("[]"), int(port)))
    return peers


def _loopback(host: str) -> bool:
    if host in ("localhost", "") or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name
        return False


_IGNORED = ("/proc/", "/dev/", "/sys/")


# nbscale's temporary folders a step may read: the step shell's IPython home (shell.py) and the
# papermill engine's step folder, by their whole shape (`tempfile.mkdtemp` ends a name with 8
# characters of [a-z0-9_]): a user's /tmp/nbscale-data is the user's.
SHELL_HOME_PREFIX = "nbscale-ipython-"
SHELL_HOME_NAME = re.compile(rf"{SHELL_HOME_PREFIX}(\d+)-[a-z0-9_]+")  # the pid of the process it is for
PAPERMILL_STEP_PREFIX = "nbscale-papermill-"
_OWN_TEMP_NAME = rf"(?:{SHELL_HOME_NAME.pattern}|{PAPERMILL_STEP_PREFIX}[A-Za-z0-9_-]+-[a-z0-9_]{{8}})/"


@lru_cache(maxsize=8192)
def _is_ignored(path: str) -> bool:
    """Never a dependency: the interpreter's files, nbscale's own, virtual file systems."""
    return (path.startswith(_IGNORED) or is_interpreter_path(path) or path.startswith(_nbscale_packages())
            or _own_temp_folder().match(path) is not None or path.startswith(other_processes.folders_root()))


@lru_cache(maxsize=1)
def _own_temp_folder() -> re.Pattern:
    temp = tempfile.gettempdir()
    folders = "|".join(sorted({re.escape(t.rstrip(os.sep) + os.sep) for t in (temp, os.path.realpath(temp))}))
    return re.compile(f"(?:{folders}){_OWN_TEMP_NAME}")


@lru_cache(maxsize=1)
def _nbscale_packages() -> tuple[str, ...]:
    folders = []
    for name in ("nbscale", "nbscale.compiler", "nbscale.kernels", "nbscale.jupyter_ext"):
        spec = importlib.util.find_spec(name)
        folders.extend((spec.submodule_search_locations or ()) if spec else ())
    return folder_prefixes(folders)


_PKGUTIL = os.path.splitext(pkgutil.__file__)[0]
_MACHINERY = ("<frozen importlib", os.path.dirname(importlib.__file__) + os.sep, _PKGUTIL)


def _importing(frame) -> bool:
    """Is this listing the import system's (finding modules, metadata, plug-ins)? One `pkgutil` makes
    for the step's own code, not while importing, of the folders it was given is the step's: the
    plug-ins `pkgutil.iter_modules(plugins.__path__)` finds are what the step loads. Not with no
    folders given (`pkgutil.iter_modules()` looks through sys.path: the notebook folder is on it, and
    any file added there would run the step again)."""
    while frame is not None:
        code = frame.f_code
        if code.co_filename.startswith(_PKGUTIL):
            if code.co_name == "iter_modules" and frame.f_locals.get("path") is None:
                return True
        elif _is_machinery(code.co_filename):
            return True
        frame = frame.f_back
    return False


def _is_machinery(name: str) -> bool:
    """Is this code file the import system's (importlib, pkgutil, and the libraries that find
    distributions: pkg_resources, the importlib_metadata backport)?"""
    return name.startswith(_MACHINERY) or any(part in name for part in _MACHINERY_PARTS)


_MACHINERY_PARTS = (f"{os.sep}pkg_resources{os.sep}", f"{os.sep}importlib_metadata{os.sep}")


# --- environment -----------------------------------------------------------------------------------


class RecordingEnviron(MutableMapping):
    """`os.environ` while any recording is active: reads by name in a recording thread are recorded."""

    def __init__(self, environ):
        self.environ = environ

    def __getitem__(self, name):
        try:
            value = self.environ[name]
        except KeyError:
            _read_env(name, None)
            raise
        _read_env(name, value)
        return value

    def __setitem__(self, name, value):
        self.environ[name] = value
        _wrote_env(name)

    def __delitem__(self, name):
        del self.environ[name]
        _wrote_env(name)

    def __iter__(self):
        _listed_env()
        return iter(self.environ)

    def __len__(self):
        return len(self.environ)

    # Enumerating is not reading every variable: these go to the real mapping.
    def copy(self):
        return self.environ.copy()

    def items(self):
        return self.environ.items()

    def values(self):
        return self.environ.values()

    def __or__(self, other):
        return self.environ | other

    def __ror__(self, other):
        return other | self.environ

    def __ior__(self, other):
        self.update(other)
        return self

    def __repr__(self):
        return repr(self.environ)

    def __getattr__(self, name):  # os._Environ's own attributes (encodekey, _data, ...)
        if name == "environ":  # not set yet (copy, unpickling)
            raise AttributeError(name)
        return getattr(self.environ, name)


def _read_env(name, value) -> None:
    recording = _recording_here()
    if recording is None:
        return
    with _guard(recording):
        if recording.active:
            _note_env(recording, name, value)
    imported = _import_reads(sys._getframe(1))
    if imported is not None:
        imported[2].setdefault(name, value)


def _note_env(recording: Recording, name, value) -> None:
    """The step read variable `name` (first seen as `value`), unless it set it itself."""
    if name not in recording.env and name not in recording.env_written and not set_for_the_step(name) \
            and name not in _SET_BY_LIBRARIES:
        recording.env[name] = value


def _listed_env() -> None:
    """The step iterated the environment (`dict(os.environ)`, `{**os.environ}`, a loop over its
    names): which variables are set is a dependency (`fingerprints.env_names`), not only the
    values it then reads; a library listing it as it is imported is not the step."""
    recording = _recording_here()
    if recording is not None and not _in_library_import(sys._getframe(1)):
        with _guard(recording):
            if recording.active:
                recording.env_listed = True


def _wrote_env(name) -> None:
    recording = _recording_here()
    if recording is not None:
        with _guard(recording):
            if recording.active:
                recording.env_written.add(name)
        if _in_library_import(sys._getframe(1)):
            _SET_BY_LIBRARIES.add(name)


# Variables an installed library set as it was imported in this process (`KMP_INIT_AT_FORK`, set by
# an import in one step's imports cell, read by another import in a later step): this process's own
# doing, which the process checking a step's result has not done, so no dependency of any step's.
_SET_BY_LIBRARIES: set[str] = set()


def _in_library_import(frame) -> bool:
    imported = _import_reads(frame)
    return imported is not None and any(imported is seen for seen in list(_LIBRARY_IMPORT_READS.values()))


# --- modules and distributions ---------------------------------------------------------------------

_MODULE_FILES: dict[str, tuple] = {}  # name → (module, its absolute file or None, is that ignored)


def _local_modules(recording: Recording, loaded: tuple[list, list]) -> dict:
    found = {path: module for path, module in _local_candidates(recording, loaded).items() if os.path.isfile(path)}
    main = sys.modules.get("__main__")  # a step gets a `__main__` of its own: looked at every time
    if main is not None:
        path = _local_path(recording, "__main__", main)
        if path is not None and os.path.isfile(path):  # not "<stdin>", not in a zip
            found[path] = main
    return found


def _local_candidates(recording: Recording, loaded: tuple[list, list]) -> dict:
    """{file: module} of the loaded modules (but `__main__`) whose files a fingerprint records:
    found again only when other modules are loaded than at the last step of this folder."""
    last = _CANDIDATES.get(recording.cwd)
    if last is not None and same_modules(loaded, last[0]):
        return last[1]
    # what each module is for this notebook folder, decided once per module (sys.modules holds
    # thousands once pandas is loaded)
    verdicts = _LOCAL_VERDICTS.setdefault(recording.cwd, {})
    candidates = {}
    for name, module in zip(*loaded):
        if module is None:  # `__main__`
            continue
        verdict = verdicts.get(name)
        if verdict is None or verdict[0] is not module:
            verdict = verdicts[name] = (module, _local_path(recording, name, module))
        if verdict[1] is not None:
            candidates[verdict[1]] = module
    _CANDIDATES[recording.cwd] = (loaded, candidates)
    return candidates


_CANDIDATES: dict[str, tuple] = {}  # notebook folder → (`loaded_modules()` then, its `_local_candidates`)


def _local_path(recording: Recording, name: str, module) -> str | None:
    """The module's file if a step's fingerprint records it (a local module, not a library's)."""
    _, path, ignored = _file_of(name, module)
    if path is None or (ignored and not recording.inside(path)) or not recording.tracks(path):
        return None
    return path


_LOCAL_VERDICTS: dict[str, dict[str, tuple]] = {}  # notebook folder → module name → (module, its file or None)
_DISTRIBUTIONS: tuple | None = None  # (`loaded_modules()`, `site_folders()`, `_loaded_distributions()`) last time


def _file_of(name: str, module) -> tuple:
    known = _MODULE_FILES.get(name)
    if known is None or known[0] is not module:  # looked at once per module: sys.modules is big
        path = _module_file(module)
        known = _MODULE_FILES[name] = (module, path, path is not None and _is_ignored(path))
    return known


def _module_file(module) -> str | None:
    try:
        file = module.__file__
    except Exception:  # noqa: BLE001 - built-in and namespace modules, odd objects in sys.modules
        return None
    return os.path.abspath(file) if isinstance(file, str) and file else None


_IMPORTED: dict[str, tuple[object, dict | None]] = {}  # path → (module spec, state when first seen)


def _ran_stale_bytecode(path: str, module) -> bool:
    """Whether this import of a local module, first seen now, came from bytecode cached before the
    file last changed (a module elsewhere than beside the notebook, which `forget_stale_bytecode`
    looks at before each step): then it is outdated in this process, and its cache goes."""
    spec = getattr(module, "__spec__", None)
    if spec is None or not stale_bytecode(path, getattr(spec, "cached", None)):
        return False
    forget_bytecode(path)
    _IMPORTED[path] = (spec, None)  # evicted before the next step (`outdated_modules`)
    return True


def _as_imported(path: str, module) -> tuple[dict | None, bool, bool]:
    """The file's state when nbscale first saw this import of it, whether it changed since, and
    whether that is now."""
    spec = getattr(module, "__spec__", None)
    seen = _IMPORTED.get(path)
    if seen is None or seen[0] is not spec or spec is None:
        _IMPORTED[path] = (spec, file_state(path))
        return _IMPORTED[path][1], False, True
    return seen[1], _changed_since(path, seen[1]), False


# module file → (the spec of that import of it, {file: what it was when read}, {variable: value read}):
# what a local module's top-level code read as it was imported, by whichever step or warm-up imported it
_IMPORT_READS: dict[str, tuple[object, dict, dict]] = {}


def _import_reads(frame) -> tuple | None:
    """The import-time record of the local module whose top-level code made this call, or None (a
    step's own code, a function called later, a library's import)."""
    while frame is not None:
        if frame.f_code.co_name == "<module>":
            spec = frame.f_globals.get("__spec__")
            origin = getattr(spec, "origin", None)
            if (spec is None or not isinstance(origin, str) or not getattr(spec, "has_location", False)
                    or frame.f_globals.get("__name__") == "__main__" or _own(str(spec.name))):
                return None
            path = os.path.abspath(origin)  # as `_module_file` names it
            if _is_ignored(path):
                return _library_import_reads(spec)
            seen = _IMPORT_READS.get(path)
            if seen is None or seen[0] is not spec:  # this import of it is a new one
                seen = _IMPORT_READS[path] = (spec, {}, {})
            return seen
        frame = frame.f_back
    return None


def _library_import_reads(spec) -> tuple | None:
    """The import-time record of an installed library, by its top-level package (pandas reads
    `PANDAS_*` variables as `pandas.core.config_init` is imported): not the standard library's."""
    top = str(spec.name).partition(".")[0]
    module = sys.modules.get(top)
    if top in sys.stdlib_module_names or module is None:
        return None
    seen = _LIBRARY_IMPORT_READS.get(top)
    if seen is None or seen[0] is not getattr(module, "__spec__", None):  # this import of it is a new one
        seen = _LIBRARY_IMPORT_READS[top] = (module.__spec__, {}, {})
    return seen


_LIBRARY_IMPORT_READS: dict[str, tuple[object, dict, dict]] = {}  # top-level name → (spec, files, variables)


def _import_reads_changed(path: str, spec) -> bool:
    seen = _IMPORT_READS.get(path)
    if seen is None or seen[0] is not spec:
        return False
    return (any(_look(file) != look for file, look in seen[1].items())
            or any(os.environ.get(name) != value for name, value in seen[2].items()))


def outdated_modules() -> list[str]:
    """Names of loaded modules whose file, or a file or variable they read as they were imported,
    changed since nbscale first saw them: evict before a step."""
    # the few files seen as local modules are looked at, not every loaded module
    changed = {id(spec) for path, (spec, state) in list(_IMPORTED.items())
               if spec is not None and (_changed_since(path, state) or _import_reads_changed(path, spec))}
    if not changed:
        return []
    return [name for name, module in list(sys.modules.items())
            if id(getattr(module, "__spec__", None)) in changed and not _own(name)]


def stale_bytecode(source: str, cached: str | None = None) -> bool:
    """Whether Python would run bytecode it cached for `source` before the file last changed: it
    takes a cache whose header holds the source's size and whole-second mtime, which a file
    rewritten within the same second, or under its old mtime (`cp -p`), still has. A cache written
    after the file's last change (its ctime) is the file's."""
    cached = cached or importlib.util.cache_from_source(source)
    try:
        st, cache_st = os.stat(source), os.stat(cached)
        if cache_st.st_mtime_ns >= st.st_ctime_ns:  # (the common case: two stats)
            return False
        with open(cached, "rb") as f:
            header = f.read(16)
    except OSError:
        return False
    if len(header) < 16 or int.from_bytes(header[4:8], "little") != 0:  # a hash-based cache is checked by content
        return False
    return (int.from_bytes(header[8:12], "little") == int(st.st_mtime) & 0xFFFFFFFF
            and int.from_bytes(header[12:16], "little") == st.st_size & 0xFFFFFFFF)


def forget_stale_bytecode(folder: str | None) -> None:
    """Before a step: remove the bytecode cached for the modules beside the notebook that changed
    since (`stale_bytecode`), so that the step imports them from their source."""
    if not folder:
        return
    try:
        entries = list(os.scandir(os.path.join(folder, "__pycache__")))
    except OSError:  # none: nothing was cached here
        return
    tag = f".{sys.implementation.cache_tag}.pyc"
    for entry in entries:
        if entry.name.endswith(tag):
            source = os.path.join(folder, entry.name[:-len(tag)] + ".py")
            if stale_bytecode(source, entry.path):
                forget_bytecode(source)


def forget_bytecode(path: str | None) -> None:
    """Remove the bytecode Python cached for a module file that changed: it checks a cache against
    its source's size and whole-second mtime only, so a file rewritten under both (`cp -p`, `rsync
    -t`, two saves within a second) would run its old code once imported again."""
    if not path or not path.endswith(".py"):
        return
    try:
        os.remove(importlib.util.cache_from_source(path))
    except (OSError, ValueError, NotImplementedError):  # none cached, or no cache for this interpreter
        pass


def local_module_names() -> list[str]:
    """Names of the loaded local modules (not a library's) that steps imported: not the ones the
    program calling nbscale imported for itself (its references to them would stay on the old ones)."""
    specs = {id(spec) for spec, _state in list(_IMPORTED.values()) if spec is not None}
    return [name for name, module in list(sys.modules.items())
            if name in _STEP_IMPORTS and id(getattr(module, "__spec__", None)) in specs and not _own(name)]


def step_local_module_names() -> list[str]:
    """Names of the loaded modules steps imported that are no library's (the notebook's own files):
    known as soon as they are imported, where `local_module_names` waits for a step's fingerprint."""
    found = []
    for name in list(_STEP_IMPORTS):
        module = sys.modules.get(name)
        if module is not None and not _own(name):
            _, path, ignored = _file_of(name, module)
            if path is not None and not ignored:
                found.append(name)
    return found


def _own(name: str) -> bool:
    """nbscale itself: local where a notebook sits in its source tree, and never imported again by
    the run time that is running (its hooks and state would split in two)."""
    return name.partition(".")[0] == "nbscale"


def shadowed_modules(folder: str) -> list[str]:
    """Names of loaded modules a step in `folder` must not be given: `folder` has a module of that
    name (first on the step's sys.path, a fresh kernel there would import it), and the one loaded
    is another file that is no library's: a local module of another notebook folder, imported by
    an earlier step of this process (a shared worker, runs of two folders in one kernel)."""
    shadowed = set()
    for name, files in _module_files_in(folder).items():
        module = sys.modules.get(name)
        loaded = _module_file(module) if module is not None else None
        own = next((file for file in files if os.path.isfile(file)), None)  # (the first the import system takes)
        if loaded is None or _is_ignored(loaded) or own is None:
            continue
        if os.path.realpath(loaded) != os.path.realpath(own):
            shadowed.add(name)
    if not shadowed:
        return []
    return [name for name in list(sys.modules) if name.partition(".")[0] in shadowed]


_FOLDER_ENTRIES: dict[str, tuple[int, dict[str, tuple]]] = {}  # folder → (its mtime, module name → files)


def _module_files_in(folder: str) -> dict[str, tuple[str, ...]]:
    """Top-level modules a folder holds: name → the files `import name` would load, in the order the
    import system tries them: `name/__init__.py` of a folder `name/` (which may not exist), `name.py`."""
    try:
        st = os.stat(folder)
    except OSError:
        return {}
    mtime = st.st_mtime_ns
    cached = _FOLDER_ENTRIES.get(folder)
    if cached is not None and cached[0] == mtime:  # entries added or removed change the folder's mtime
        return cached[1]
    found = {}
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                name, dot, suffix = entry.name.rpartition(".")
                if dot and suffix == "py" and name.isidentifier():
                    found[name] = found.get(name, ()) + (entry.path,)
                elif not dot and entry.name.isidentifier() and entry.is_dir():
                    found[entry.name] = (os.path.join(entry.path, "__init__.py"), *found.get(entry.name, ()))
    except OSError:
        return {}
    if not racy(st):  # (an entry added in the same tick would keep that mtime)
        _FOLDER_ENTRIES[folder] = (mtime, found)
    return found


def _changed_since(path: str, state: dict | None) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return state is not None
    return state is None or not holds(path, st, state)


_VERSIONS_SEEN: dict[str, tuple] = {}  # distribution → (top module spec, version then, digest of its files then)


def _installed(dist: str, folders: tuple, versions: dict) -> tuple[str, str | None]:
    """(version, digest of its files: `fingerprints.distribution_files`) of a distribution installed now."""
    return versions.get(dist, ""), distribution_files(metadata_folder(dist, folders))


def _loaded_distributions(loaded: tuple[list, list]) -> tuple[dict[str, str], dict[str, str]]:
    """The versions of the distributions providing the loaded top-level modules, and `python`, and
    the digests of their files: as installed when this process imported them. Found again only when
    other modules are loaded, or the interpreter's folders changed."""
    global _DISTRIBUTIONS
    folders = site_folders()
    if _DISTRIBUTIONS is not None and _DISTRIBUTIONS[1] == folders and same_modules(loaded, _DISTRIBUTIONS[0]):
        return dict(_DISTRIBUTIONS[2]), dict(_DISTRIBUTIONS[3])
    by_module, versions = providers(folders), installed_versions(folders)
    found, files = {"python": platform.python_version()}, {}
    for top in [name for name in loaded[0] if "." not in name]:
        spec = getattr(sys.modules.get(top), "__spec__", None)
        for dist in by_module.get(top, ()):
            seen = _VERSIONS_SEEN.get(dist)
            if seen is None or seen[0] is not spec or spec is None:
                # as its import began, when this process saw it begin
                then = _INSTALLED_AT_IMPORT.get(top, {}).get(dist) or _installed(dist, folders, versions)
                seen = _VERSIONS_SEEN[dist] = (spec, *then)
            if seen[1]:
                found[dist] = seen[1]
                if seen[2]:
                    files[dist] = seen[2]
    _DISTRIBUTIONS = (loaded, folders, found, files)
    return dict(found), dict(files)


_INSTALLED_AT_IMPORT: dict[str, dict] = {}  # top-level module → {distribution: `_installed` as its import began}
_VERSIONS_NOW: list = [None, {}]  # `site_folders()` and `installed_versions()` of them, last looked at
_NOTING = threading.local()  # an import during the look itself (`importlib.metadata`) is not looked at again


def _import_began(args) -> None:
    """What is installed as a library's import begins: the version (and files) this process runs
    from then on, whatever is installed by the time the step that imported it ends (a long step, a
    `pip install -U` meanwhile). Costs a `stat` of the interpreter's folders per top-level module
    imported (and once per library, a read of its RECORD)."""
    name = args[0]
    if type(name) is not str or "." in name or getattr(_NOTING, "on", False):
        return
    _NOTING.on = True
    recording = _ACTIVE.get(threading.get_ident())
    quiet = recording.quiet if recording is not None else None
    if recording is not None:
        recording.quiet = True
    try:  # (what it reads is nbscale's look, not the step's: a project that is its own venv has RECORDs in it)
        folders = site_folders()
        if _VERSIONS_NOW[0] != folders:
            _VERSIONS_NOW[:] = [folders, installed_versions(folders)]
        _INSTALLED_AT_IMPORT[name] = {dist: _installed(dist, folders, _VERSIONS_NOW[1])
                                      for dist in providers(folders).get(name, ())}
    except Exception:  # noqa: BLE001 - an import must never fail for this; the version is then looked up later
        pass
    finally:
        _NOTING.on = False
        if recording is not None:
            recording.quiet = quiet


def note_loaded_distributions() -> None:
    """Remember the installed version of each library loaded now that was not seen before, as soon
    as the step (or worker warm-up) that imported it ends, also when no fingerprint is recorded:
    `outdated_distributions` compares what is installed later with it."""
    _loaded_distributions(loaded_modules())


_UP_TO_DATE_AT: tuple | None = None  # `site_folders()` when every loaded library was last found as installed


def outdated_distributions() -> dict[str, tuple[str, str]]:
    """Libraries this process imported that were installed again since in another version (or with
    other files under the same one), or removed: {distribution: (version loaded, what is installed
    now: "2.0", "1.0, other files", "" for none)}. A loaded module cannot be imported again (its
    objects live on in others, its extension modules stay), so a step here would run the old code
    while its fingerprint and the user think the new one ran. Only looked for once the interpreter's
    folders changed (installing or removing a package changes them)."""
    global _UP_TO_DATE_AT
    folders = site_folders()
    if folders == _UP_TO_DATE_AT:
        return {}
    versions = installed_versions(folders)
    found = {}
    for dist, (spec, then, files) in list(_VERSIONS_SEEN.items()):
        module = sys.modules.get(getattr(spec, "name", None) or "")
        if not then or module is None or getattr(module, "__spec__", None) is not spec:
            continue  # not loaded any more (or loaded again): nothing old is left to run
        now, now_files = _installed(dist, folders, versions)
        if now != then:
            found[dist] = (then, now)
        elif files and now_files != files:
            found[dist] = (then, f"{now}, other files")
    if not found:
        _UP_TO_DATE_AT = folders
    return found


from . import other_processes  # noqa: E402 - it builds on this module's recordings
