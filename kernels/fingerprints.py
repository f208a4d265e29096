"""A step's dynamic fingerprint: the state of what it used, and the changes since it was taken.

A fingerprint is the JSON-serialisable dict `dependencies.Recording.fingerprint()` makes:

    {"version": 1,
     "files_read":    {path: {"size", "mtime_ns", "ctime_ns", "ino", "digest"[, "racy"]} | None},  None: absent
     "files_written": {path: ... },                                    the step's products
     "appended":      {path: {"size", "mtime_ns", "ctime_ns", "ino", "digest": None}},  files it appended
                                                                       to, as it left them (optional)
     "directories":   {path: digest of the entry names | None},       folders the step listed
     "made":          [path, ...],                                     of what it read, listed or tested, what lies
                                                                       in folders it made where nothing was (a
                                                                       temporary folder): gone is no change
     "tested":        {path: "folder" | None},                         tested without being opened (a stat):
                                                                       a folder then, or nothing (optional)
     "globs":         [[kind, folder, pattern, recursive, digest]],    what glob / Path.glob matched
     "modules":       {path: {"size", "mtime_ns", "ctime_ns", "ino", "digest"}},  local modules loaded
     "distributions": {name: version},                                 and "python"
     "distribution_files": {name: digest of its RECORD},              its files, under that version
     "env":           {name: value | None},                            secret-looking names: a digest
     "env_set":       {name: value | None},                            what the step left of those it set
     "env_names":     [name, ...],                                     the variables set, if the step listed
                                                                       them (`dict(os.environ)`)
     "incomplete":    [reason, ...],                                   events that were not recorded
     "changed_while_running": [path, ...],                            read or listed, then changed by another
                                                                       hand before the step ended: never holds
     "read_then_changed": [path, ...],                                read, then written or appended to by the
                                                                       step (a state it advances): never holds
     "absent_modules": [name, ...],                                    tried, found nowhere (`try: import x`)
     "unseeded":      ["numpy.random", "random"],                      drew from a global generator seeded from
                                                                       entropy (its code seeds none): never holds
     "fresh_generators": ["default_rng()", ...],                      generators its cells make given no seed:
                                                                       never holds
     "cwd":           path,                                            the working directory, if the step asked it
     "network":       [host:port | scheme://host, ...]}               read over the network: named, never checked

Paths inside the notebook folder are relative to it, so a fingerprint holds wherever the folder is
mounted; others are absolute, and so is one inside it that the step named by its absolute path (kept
under both names: a copy of the project must check the file its code names, and its own).
`check(fingerprint, cwd)` returns the `Change`s, empty when all still holds. Files and modules are
compared by size, mtime, ctime and inode first (one `stat`), and by content digest only when those
differ: a `touch` is not a change, a different size is one without reading the file, and a change
in place that keeps size and mtime (`os.utime` setting the old mtime back, `cp -p`, `rsync -t`) is
seen, since no one can set a ctime back. (A fingerprint without a ctime is compared by content, and
so is a file whose state was taken as it had just changed, `"racy": true`: on a kernel or file
system whose file times tick coarsely, a second change in the same tick keeps its stat: `racy`.)
A variable the step read and then set holds at the value it read or the one it left (a library's
`os.environ.setdefault` at import must not invalidate the step in the process that ran it; in
another process, a variable preset to that value is taken as no change). Digests are xxh3_128 when
`xxhash` is installed, else blake2b; a fingerprint names its algorithm per digest.
"""

from __future__ import annotations

import glob
import hashlib
import os
import platform
import stat
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..compiler.credentials import text_may_be_credential as may_be_credential
from .children import OWNER_ENV
from .contract import user_state_dir
from .interpreter import installed_versions, metadata_folder, site_folders

try:
    import xxhash
except ImportError:  # another engineer adds it to the dependencies; blake2b until then
    xxhash = None

__all__ = ["DIGEST", "FINGERPRINT_VERSION", "Change", "check", "env_value", "file_state", "glob_digest", "hidden",
           "holds", "listing_digest", "may_be_credential", "racy", "same_stat", "stat_key"]

FINGERPRINT_VERSION = 1
DIGEST = "xxh3_128" if xxhash is not None else "blake2b"
NOT_A_FILE = "not-a-file"  # file_state of a folder or a device: no dependency
_CHUNK = 1 << 20
# values kept (and shown) as they are: short, no credentials in a URL (`postgres://u:pw@db`), no
# token-like run of letters and digits (`ghp_16C7e42F292c6912E7710c838347Ae178B4a`)
_PLAIN_VALUE_MAX = 40

# Kinds of Change, and what changed.
FILE, PRODUCT, MODULE, DIRECTORY, DISTRIBUTION, ENV, CWD, FINGERPRINT = (
    "file", "product", "module", "directory", "distribution", "env", "cwd", "fingerprint")
CONTENT, MISSING, APPEARED, VERSION, VALUE, INCOMPLETE, ADVANCED, GREW = (
    "content", "missing", "appeared", "version", "value", "incomplete", "advanced", "grew")
TESTED_FOLDER = "folder"  # what a path the step tested without opening it was (`"tested"`), if not absent


@dataclass(frozen=True)
class Change:
    kind: str  # FILE | PRODUCT | MODULE | DIRECTORY | DISTRIBUTION | ENV | CWD | FINGERPRINT
    name: str  # path as in the fingerprint, distribution or variable
    what: str  # CONTENT | MISSING | APPEARED | VERSION | VALUE | INCOMPLETE | ADVANCED | GREW
    old: object = None
    new: object = None
    text: str = ""  # for a person: "data.csv changed (content)", "env SEED: '1' → '2'"


# --- states --------------------------------------------------------------------------------------

_DIGESTS: dict[tuple, str] = {}  # (path, stat_key, algorithm, length) → digest, this process
# How recently a file may have changed for its stat not to show its next change: Linux before 6.13
# stamps a file's times from a clock that ticks once a jiffy (up to 10 ms), and a write within the
# same tick leaves size, mtime and ctime as they were; file systems whose times are whole seconds
# (FAT: 2 s) tick once a second or two. Git's "racily clean" index entries are the same problem.
RACY_NS = 20_000_000
RACY_WHOLE_SECONDS_NS = 2_000_000_000
SETTLE_BYTES = 16 << 20  # a file this large that had just changed: its state waits for the tick to end (`_settled`)


def stat_key(st) -> tuple:
    """What shows, without reading a file, that it may have changed: its inode, size, mtime and
    ctime (a write or `os.utime` sets the ctime to now, and nothing sets it back)."""
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def racy(st) -> bool:
    """Whether the file changed so recently that another change may not show in its stat (`RACY_NS`):
    what is known of it by its stat then (a state, a digest) is confirmed by its content later."""
    # by its ctime, which every change sets to now (an mtime may be set to any time: `touch -d`)
    return time.time_ns() - st.st_ctime_ns < _tick(st)


def _tick(st) -> int:
    """How long a tick of the file's file-system clock may be, in ns."""
    return RACY_WHOLE_SECONDS_NS if st.st_ctime_ns % 1_000_000_000 == 0 else RACY_NS


def same_stat(st, state: dict) -> bool:
    """Whether `st` shows the file as `file_state` found it (an old state without a ctime, or one
    taken as the file had just changed: no)."""
    return not state.get("racy") and _same_key(st, state)


def holds(path: str, st, state: dict) -> bool:
    """Whether the file whose stat is `st` is as `file_state` found it by that stat; for a state
    taken as the file had just changed (`racy`), by its content too."""
    if not _same_key(st, state):
        return False
    digest = state.get("digest") or ""
    return not state.get("racy") or bool(digest) and _digest(path, st, digest.partition(":")[0]) == digest


def _same_key(st, state: dict) -> bool:
    return stat_key(st) == (state.get("ino", st.st_ino), state["size"], state["mtime_ns"], state.get("ctime_ns"))


def file_state(path: str, digest: bool = True) -> dict | str | None:
    """{size, mtime_ns, ctime_ns, ino, digest} of a regular file, None when absent, NOT_A_FILE otherwise.
    `digest=False`: its digest None, so that any other stat is a change (`_file_change`): what the
    step saw of it is its stat. A file that had just changed (`racy`) is compared by content too."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return NOT_A_FILE
    if digest and st.st_size >= SETTLE_BYTES and racy(st):
        st = _settled(path, st)
    just_changed = digest and racy(st)  # (as of the stat, not after the digest)
    state = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "ino": st.st_ino,
             "digest": _digest(path, st, DIGEST) if digest else None}
    if just_changed:
        state["racy"] = True  # a change in the same tick would keep this stat: compared by content
    return state


def _settled(path: str, st):
    """The stat of a large file that had just changed, taken once the tick of its file clock is over
    (at most `RACY_NS` later): a state of it taken in that tick would be compared by content at every
    later check, reading the whole file each time. Not on a file system of whole-second times (a wait
    of up to 2 s)."""
    if _tick(st) > RACY_NS:
        return st
    left = min(st.st_ctime_ns + RACY_NS - time.time_ns(), RACY_NS)  # (a ctime ahead of the clock: no longer)
    if left > 0:
        time.sleep(left / 1e9)
    try:
        now = os.stat(path)
    except OSError:
        return st
    return now if stat.S_ISREG(now.st_mode) else st


def _digest(path: str, st, algorithm: str, length: int | None = None) -> str | None:
    cache_key = (path, stat_key(st), algorithm, length)
    if cache_key in _DIGESTS:
        return _DIGESTS[cache_key]
    if algorithm == "xxh3_128" and xxhash is not None:
        hasher = xxhash.xxh3_128()
    elif algorithm == "blake2b":
        hasher = hashlib.blake2b(digest_size=16)
    else:
        return None  # made with a digest this process cannot make: it cannot be confirmed
    just_changed = racy(st)  # (as of the stat: a change while hashing may not show in the stat after)
    left = st.st_size if length is None else length
    try:
        with open(path, "rb") as f:
            while left > 0 and (chunk := f.read(min(_CHUNK, left))):
                hasher.update(chunk)
                left -= len(chunk)
            after = os.fstat(f.fileno())
    except OSError:
        return None
    if stat_key(after) != stat_key(st):
        return None  # replaced or written while hashed: the digest would not be of the state `st` says
    digest = f"{algorithm}:{hasher.hexdigest()}"
    if just_changed:
        return digest  # another change may keep this stat: not remembered by it
    if len(_DIGESTS) > 10_000:
        _DIGESTS.clear()
    _DIGESTS[cache_key] = digest
    return digest


def distribution_files(metadata_folder: str | None) -> str | None:
    """The digest of a distribution's RECORD, which lists its files with their sha256: a package
    installed again under the same version with other files (`pip install .` after an edit) has
    another. None without one (an egg, some system packages): its version alone says."""
    if metadata_folder is None:
        return None
    path = os.path.join(metadata_folder, "RECORD")
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _digest(path, st, DIGEST)


def glob_digest(kind: str, folder: str, pattern: str, recursive: bool) -> str:
    """A digest of what a glob matches now: `glob.glob(pattern, root_dir=folder)` ("glob") or
    `Path(folder).glob(pattern)` ("path")."""
    try:
        if kind == "glob":
            names = glob.glob(pattern, root_dir=folder, recursive=recursive)
        else:
            names = [str(p.relative_to(folder)) if not os.path.isabs(pattern) else str(p)
                     for p in Path(folder).glob(pattern)]
    except (OSError, ValueError) as exc:
        names = [f"<{type(exc).__name__}>"]
    return "blake2b:" + hashlib.blake2b("\0".join(sorted(names)).encode(errors="surrogateescape"),
                                        digest_size=16).hexdigest()


LISTING = "blake2b-entries"  # names, and which are folders: `os.walk` goes into a file made a folder


def listing_digest(path: str, kind: str = LISTING) -> str | None:
    """A digest of a folder's entries (their names, a folder's with a "/" after it, as `os.walk` and
    `entry.is_dir()` tell them apart); None when it is not a folder. `kind`: that of the digest to
    compare with (`blake2b`, names only: a fingerprint recorded before, compared as it was made)."""
    try:
        with os.scandir(path) as entries:
            names = sorted(e.name + "/" if kind == LISTING and _is_dir(e) else e.name for e in entries)
    except OSError:
        return None
    return f"{kind}:" + hashlib.blake2b("\0".join(names).encode(errors="surrogateescape"), digest_size=16).hexdigest()


def _is_dir(entry) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # (a link to nowhere)
        return False


def env_value(name: str, value: str | None) -> str | None:
    """What a fingerprint keeps of a variable: its value when it is plainly no credential (stores,
    the API and `nbscale show` then say how it changed), else a digest keyed by this user's secret
    (`_env_key`): whoever reads a shared store cannot test guesses of a password against it."""
    if value is None or _plain(name, value):
        return value
    return hidden(value)


_ENV_KEY: list[bytes] = []


def _env_key() -> bytes:
    """32 random bytes kept in the user's state folder (mode 0600), made on first use. Another user
    or machine has another key, so its hidden values read as changed: the step runs again, never
    wrongly cached. Without a usable state folder, a key for this process alone."""
    if not _ENV_KEY:
        _ENV_KEY.append(_stored_key() or os.urandom(32))
    return _ENV_KEY[0]


def _stored_key() -> bytes | None:
    path = str(user_state_dir() / "env-digest-key")
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # made before, or by another process just now: read it
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(os.urandom(32))
        for _ in range(50):  # another process may be writing it this instant
            with open(path, "rb") as f:
                key = f.read()
            if len(key) == 32:
                return key
            time.sleep(0.01)
    except OSError:
        pass
    return None


def hidden(text: str) -> str:
    """The digest a credential is kept as (keyed: see `env_value`)."""
    return "hidden:" + hashlib.blake2b(text.encode(errors="surrogateescape"), digest_size=16,
                                       key=_env_key()).hexdigest()


def _plain(name: str, value: str) -> bool:
    """Whether a value named `name` may be kept and shown as it is: short, of a name that does not
    look secret, without a password in a URL or a token-like run of letters and digits."""
    from .masking import holds_credential

    return not may_be_credential(name, value) and len(value) <= _PLAIN_VALUE_MAX and not holds_credential(value)


# --- checking ------------------------------------------------------------------------------------


def check(fingerprint: dict, cwd: str) -> list[Change]:
    """What changed since the fingerprint was taken; empty when all of it still holds."""
    if fingerprint.get("version") != FINGERPRINT_VERSION:
        return [Change(FINGERPRINT, "", VERSION, fingerprint.get("version"), FINGERPRINT_VERSION,
                       "the dependencies were recorded by another nbscale version")]
    changes = [Change(FINGERPRINT, "", INCOMPLETE, text=f"some dependencies were not recorded ({reason})")
               for reason in fingerprint.get("incomplete", ())]
    changes += [Change(FILE, name, CONTENT, text=f"{name} changed while the step ran (it may have read either version)")
                for name in fingerprint.get("changed_while_running", ())]
    changes += [Change(FILE, name, ADVANCED, text=f"the step read {name} and then changed it itself: each run reads "
                                                   "what the run before it left")
                for name in fingerprint.get("read_then_changed", ())]
    changes += [Change(FINGERPRINT, name, ADVANCED, text=f"the step drew from {name}'s global generator without "
                       "seeding it (np.random.seed or random.seed in its cells or the imports cell): each run "
                       "draws other numbers")
                for name in fingerprint.get("unseeded", ())]
    changes += [Change(FINGERPRINT, call, ADVANCED, text=f"the step makes a random generator from fresh entropy "
                       f"({call}, given no seed): each run draws other numbers")
                for call in fingerprint.get("fresh_generators", ())]
    for kind, section in ((FILE, "files_read"), (PRODUCT, "files_written"), (MODULE, "modules")):
        for name, old in fingerprint.get(section, {}).items():
            changes.extend(_file_change(kind, name, old, os.path.join(cwd, name)))
    for name, old in fingerprint.get("appended", {}).items():
        changes.extend(_appended_change(name, old, os.path.join(cwd, name)))
    changes += _tested_changes(fingerprint.get("tested", {}), cwd)
    for name, old in fingerprint.get("directories", {}).items():
        new = listing_digest(os.path.join(cwd, name), (old or LISTING).partition(":")[0])
        if new != old:
            what = MISSING if new is None else APPEARED if old is None else CONTENT
            changes.append(Change(DIRECTORY, name, what, old, new, f"the listing of {name} changed"))
    changes += _glob_changes(fingerprint.get("globs", ()), cwd, {c.name for c in changes if c.kind == DIRECTORY})
    changes += _cwd_change(fingerprint.get("cwd"), cwd)
    changes.extend(_version_changes(fingerprint.get("distributions", {}), fingerprint.get("distribution_files", {})))
    changes += _importable_now(fingerprint.get("absent_modules", ()), {c.name for c in changes if c.what == APPEARED})
    env = _env_changes(fingerprint.get("env", {}), fingerprint.get("env_set", {}))
    said = {c.name for c in env}
    changes += env + [c for c in _env_names_changes(fingerprint.get("env_names")) if c.name not in said]
    # (the step made it from nothing: it finds nothing again; a product of its own gone is still a change)
    made = set(fingerprint.get("made", ()))
    return _once([c for c in changes if not (c.what == MISSING and c.name in made and c.kind != PRODUCT)], cwd)


def _tested_changes(tested: dict, cwd: str) -> list[Change]:
    """Paths the step tested that were absent (anything there now is a change: a folder too, which
    `files_read` does not see) or folders (one no longer there is)."""
    changes = []
    for name, was in tested.items():
        path = os.path.join(cwd, name)
        if was is None and os.path.lexists(path):
            changes.append(Change(FILE, name, APPEARED, text=f"{name} appeared"))
        elif was == TESTED_FOLDER and not os.path.isdir(path):
            said = "is missing" if not os.path.lexists(path) else "is no longer a folder"
            changes.append(Change(DIRECTORY, name, MISSING, text=f"{name} {said}"))
    return changes


def _glob_changes(globs, cwd: str, listed: set[str]) -> list[Change]:
    """Globs whose matches changed; not in a folder whose listing is said to have changed already."""
    changes = []
    for kind, name, pattern, recursive, old in globs:
        if name not in listed and glob_digest(kind, os.path.join(cwd, name), pattern, recursive) != old:
            where = "" if name == "." else f" in {name}"
            changes.append(Change(DIRECTORY, name, CONTENT, old, None, f"what {pattern}{where} matches changed"))
    return changes


def _cwd_change(recorded: str | None, cwd: str) -> list[Change]:
    now = os.path.abspath(cwd)
    if recorded is None or recorded == now:
        return []
    return [Change(CWD, "", VALUE, recorded, now,
                   f"the working directory changed ({recorded} → {now}), and the step asked for it")]


def _importable_now(absent, appeared: set[str]) -> list[Change]:
    """Modules the step could not import that can be now; not a local module whose file is said to
    have appeared already."""
    return [Change(DISTRIBUTION, name, APPEARED, None, None,
                   f"{name} can be imported now (the step tried, and it could not)")
            for name in absent if not {f"{name}.py", f"{name}/__init__.py"} & appeared and findable(name)]


def _once(changes: list[Change], cwd: str) -> list[Change]:
    """Each change said once: a path kept under both names (relative, and absolute as the step named
    it) changes under both when the project was not copied."""
    relative = {(c.kind, os.path.normpath(os.path.join(os.path.abspath(cwd), c.name))) for c in changes
                if c.name and not os.path.isabs(c.name)}
    return [c for c in changes if not (os.path.isabs(c.name) and (c.kind, os.path.normpath(c.name)) in relative)]


_LABELS = {FILE: "{}", PRODUCT: "{} (written by the step)", MODULE: "{}"}


def _file_change(kind: str, name: str, old: dict | None, path: str) -> list[Change]:
    try:
        st = os.stat(path)
    except OSError:
        st = None
    gone = "is missing"
    if st is not None and not stat.S_ISREG(st.st_mode):
        st, gone = None, "is a folder now" if stat.S_ISDIR(st.st_mode) else "is no longer a regular file"
    label = _LABELS[kind].format(name)
    if old is None or st is None:
        if old is None and st is None:
            return []  # absent then, absent now
        what, said = (MISSING, gone) if st is None else (APPEARED, "appeared")
        return [Change(kind, name, what, text=f"{label} {said}")]
    if same_stat(st, old):
        return []  # the fast path: one stat (another file of the same size and time, as another project's
        # data.csv beside a copy of the notebook that shares its store, is compared by content)
    digest = old.get("digest") or ""
    if st.st_size == old["size"] and digest and _digest(path, st, digest.partition(":")[0]) == digest:
        return []  # touched, same content
    if (kind == PRODUCT and digest and st.st_size > old["size"] and st.st_ino == old.get("ino")
            and _digest(path, st, digest.partition(":")[0], old["size"]) == digest):
        # what the step wrote is still there: a later step appended to it (a report it began, a log),
        # or another hand did (which the run tells from the later steps' records: `as_left`)
        return [Change(kind, name, GREW, text=f"{name}, which it writes, was added to since it wrote it")]
    # (no digest: the step only tested it, and what it saw is the stat)
    text = f"{name} changed" if kind == MODULE else f"{label} changed ({'content' if digest else 'size or times'})"
    return [Change(kind, name, CONTENT, digest or None, None, text)]


def _appended_change(name: str, old: dict, path: str) -> list[Change]:
    """A file the step appended to, since: gone (a step may clean a log up) or grown (a later step
    appended to it too) is no change here; written anew, the step must append to it again."""
    try:
        st = os.stat(path)
    except OSError:
        return []
    if not stat.S_ISREG(st.st_mode) or _same_key(st, old):
        return []
    if st.st_ino == old.get("ino") and st.st_size > old["size"]:
        return [Change(FILE, name, GREW, text=f"{name}, which it appends to, was added to since")]
    return [Change(FILE, name, CONTENT, text=f"{name}, which it appends to, was written anew since: it appends "
                                             "to it again, as a run top to bottom would")]


def as_left(name: str, cwd: str, fingerprints) -> bool:
    """Whether the file `name` is now as one of the steps whose `fingerprints` these are left it,
    written or appended to (by its stat)."""
    try:
        st = os.stat(os.path.join(cwd, name))
    except OSError:
        return False
    for fingerprint in fingerprints:
        state = fingerprint.get("files_written", {}).get(name) or fingerprint.get("appended", {}).get(name)
        if state and _same_key(st, state):
            return True
    return False


def findable(name: str) -> bool | None:
    """Whether the import system finds a top-level module now (None: it could not tell)."""
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return None


def _version_changes(recorded: dict, files: dict) -> list[Change]:
    folders = site_folders() if set(recorded) - {"python"} else ()
    current = installed_versions(folders) if folders else {}
    current["python"] = platform.python_version()
    changes = []
    for dist, old in recorded.items():
        new = current.get(dist)
        if new != old:
            changes.append(Change(DISTRIBUTION, dist, VERSION, old, new, f"{dist} {old} → {new or 'not installed'}"))
        elif files.get(dist) and (now := _files_now(dist, folders)) != files[dist]:
            changes.append(Change(DISTRIBUTION, dist, CONTENT, files[dist], now,
                                  f"{dist} {old} was installed again with other files"))
    return changes


@lru_cache(maxsize=1024)
def _files_now(dist: str, folders: tuple) -> str | None:
    """`distribution_files` of an installed distribution, read once per state of the interpreter's
    folders (installing a package again replaces its metadata folder, which changes its folder's
    mtime): a cached run checks the same libraries for every step."""
    return distribution_files(metadata_folder(dist, folders))


# What the process running a step is given by what started it, nbscale (the step's owner,
# matplotlib's inline backend), a Jupyter kernel (colours, pagers) or a shell's bookkeeping (`_`, the
# command that started it): no dependency of the step's. A step that reads the whole environment
# (`dict(os.environ)`, `{**os.environ, ...}` for a subprocess) reads them too, and the process
# checking its result has other values.
RUNTIME_ENV = frozenset({OWNER_ENV, "MPLBACKEND", "TERM", "CLICOLOR", "CLICOLOR_FORCE", "FORCE_COLOR", "PAGER",
                         "GIT_PAGER", "_", "OLDPWD", "SHLVL", "MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS",
                         "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"})  # (the last four: a Dask nanny's worker)
RUNTIME_ENV_PREFIXES = ("JPY_", "PYDEVD_", "__DASK_")  # a kernel's launcher's (JPY_PARENT_PID), a nanny's (its pid)


def set_for_the_step(name) -> bool:
    """A variable the process running the step is given by what started it: never a dependency."""
    return name in RUNTIME_ENV or (isinstance(name, str) and name.startswith(RUNTIME_ENV_PREFIXES))


def env_names() -> list[str]:
    """The names of the variables set now, but those `set_for_the_step`."""
    return sorted(name for name in os.environ if not set_for_the_step(name))


def _env_names_changes(listed: list[str] | None) -> list[Change]:
    """A step that listed the environment (`dict(os.environ)`, `{**os.environ}`, a loop over it)
    depends on which variables are set: one set since is a change (one unset since is a change of
    its value, as the step read it)."""
    if listed is None:
        return []
    new = sorted(set(env_names()) - set(listed))
    return [Change(ENV, name, APPEARED, None, "set", f"env {name}: set since the step listed the environment")
            for name in new[:20]]


def _env_changes(recorded: dict, set_by_step: dict) -> list[Change]:
    changes = []
    for name, old in recorded.items():
        new = env_value(name, os.environ.get(name))
        if new == old or (name in set_by_step and new == set_by_step[name]):
            continue
        if _hidden(old) or _hidden(new):  # a digest: say only whether it is set
            text = f"env {name} changed" if None not in (old, new) else f"env {name}: {_set(old)} → {_set(new)}"
        else:
            text = f"env {name}: {_quoted(old)} → {_quoted(new)}"
        changes.append(Change(ENV, name, VALUE, old, new, text))
    return changes


def _hidden(value: str | None) -> bool:
    return value is not None and value.startswith("hidden:")


def _quoted(value: str | None) -> str:
    return "unset" if value is None else repr(value)


def _set(value: str | None) -> str:
    return "unset" if value is None else "set"
