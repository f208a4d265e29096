"""The artifact store: step outputs on any fsspec file system, keyed by step hash.

Layout: ``<root>/<algorithm>/<digest>/`` holds one file per output (or per group of outputs
that share objects) and ``manifest.json``, which names each file with its size and digest.
An artifact is complete and verified, or it does not exist:

- Publishing is one atomic step. On a local file system the whole folder is written under a
  temp name in the root and renamed into place. On object stores, where a folder cannot be
  renamed atomically, the files go straight into the folder under names that carry the
  writer's id, and the manifest is written last; a manifest names only its own writer's
  files, so a reader never pairs one writer's manifest with another's files.
- When a complete artifact is there already, the first writer has won and a later one drops
  its copy, unless it says `replace` (the run time does: it wrote because the stored result was
  missing, stale or not to be used); either way the swap is one rename.
- Every read checks each file's size and digest (`digest.py`, hashed as the marshaller reads).
  A damaged artifact is a miss: `CorruptArtifact` (an `ArtifactNotFound`) after a warning that
  names the step and the file, and the artifact is removed so that the next writer can publish.
- Temp folders of killed writers are swept, now and then, by the next writer (`staging.py`).

The module is longer than the others on purpose: publishing, replacing and reading are kept
together because their correctness is how they interleave (a reader never sees a half-published
or half-removed artifact).
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import hashlib
import json
import os
import re
import stat
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from . import array_views, marshal
from .digest import DigestReader, DigestWriter, file_digest
from .direct_write import DirectFileWriter
from .errors import (
    ArtifactNotFound,
    CorruptArtifact,
    CorruptArtifactWarning,
    MarshalError,
    NbscaleRuntimeError,
    StoreUnusable,
)
from .runschema import utf8_json
from .staging import (
    STALE_AFTER_S,
    age,
    exchange,
    listing,
    remove_local_tree,
    sweep,
    sweep_now_and_then,
    temp_name,
)

MANIFEST = "manifest.json"
FORMAT = "nbscale.artifact/2"  # /1 had no digests: such an artifact is a miss, and is written again

_ALGORITHM = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_DIGEST = re.compile(r"[A-Za-z0-9_-]+")
_FILE = re.compile(r"(?!\.)[^/\\]+")
# the folder of a step's key (`key_path` of a sha256 hex digest, or of any other text): what `entries`
# lists when its manifest is not one of the store's (damaged, older); anything else is not the store's
_KEY_FOLDER = re.compile(r"[A-Za-z][A-Za-z0-9]*/[0-9a-f]{32,}|_other/[0-9a-f]{64}")
# set where the caller tells of a damaged artifact itself (a step's warning event, its failure):
# the store's Python warning would say it a second time, with a path into nbscale
_CALLER_TELLS: contextvars.ContextVar[list | None] = contextvars.ContextVar("nbscale_store_caller_tells", default=None)
_READS = 8  # attempts of a read whose artifact another writer replaced meanwhile (each replace is one)


def key_path(step_hash: str) -> str:
    """The relative folder of a step hash: ``sha256:ab…`` → ``sha256/ab…``."""
    algorithm, sep, digest = step_hash.partition(":")
    if sep and _ALGORITHM.fullmatch(algorithm) and _DIGEST.fullmatch(digest):
        return f"{algorithm}/{digest}"
    # Anything else is hashed: "_" cannot start an algorithm name, so the two never collide.
    return "_other/" + hashlib.sha256(step_hash.encode()).hexdigest()


class _Damaged(NbscaleRuntimeError):
    """A stored file failed its size or digest check (becomes a CorruptArtifact)."""

    def __init__(self, file: str, reason: str):
        super().__init__(f"{file}: {reason}")
        self.file, self.reason = file, reason


class ArtifactStore:
    """Step outputs under their step hash, in the folder or bucket of an fsspec URL."""

    rename_folders = True  # publish by renaming the whole folder, where the file system is local
    folder_per_key = True  # each key has a folder of its own, whose manifest names that key
    keeps_room = True  # a cache: its files leave their disk's reserve free (`disk_room`)

    def __init__(self, url: str, **storage_options: Any):
        self.url = str(url)
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url, **storage_options)
        except Exception as exc:  # noqa: BLE001 - fsspec's (ValueError, ImportError, a file system's own)
            raise StoreUnusable(f"cannot open the artifact store {self.url!r}: {type(exc).__name__}: {exc}") from None
        self.root = self.root.rstrip("/")
        self.local = isinstance(self.fs, LocalFileSystem)

    def __repr__(self) -> str:
        return f"ArtifactStore({self.url!r})"

    @property
    def by_rename(self) -> bool:
        return self.local and self.rename_folders

    def _dir(self, step_hash: str) -> str:
        return f"{self.root}/{key_path(step_hash)}"

    def _temp_parent(self, final: str) -> str:
        # The root: same file system as the final folder. A folder that is its own root
        # (an ArtifactFolder, a KFP artifact) is staged beside itself.
        return final.rsplit("/", 1)[0] if final == self.root else self.root

    def file_url(self, step_hash: str, name: str) -> str:
        """Full URL of the file holding output `name` (e.g. to memory-map a local ``.npy``)."""
        entry = self._entry(self.manifest(step_hash), step_hash, name)
        return self.fs.unstrip_protocol(f"{self._dir(step_hash)}/{entry['file']}")

    # -- writing --------------------------------------------------------------------------

    def put(self, step_hash: str, outputs: dict[str, Any], groups: list[list[str]] | None = None,
            step_name: str | None = None, optional=(), *, replace: bool = False,
            dependencies: dict | None = None, content_digests: dict | None = None,
            cost: dict | None = None, profiles: dict | Callable[[], dict | None] | None = None,
            never_stored=()) -> dict:
        """Store `outputs` under `step_hash`; return the manifest of what is stored.

        Names in `optional` are kept when they can be serialised and left out when they cannot.
        A complete artifact already stored under the hash wins (same hash, same content) and its
        manifest is returned, unless `replace` (for a caller that knows the stored one is stale).
        `dependencies`: the step's dynamic fingerprint (`kernels.fingerprints`), kept in the manifest.
        `content_digests`: digests the values were handed on under (taken in memory, `handoff`),
        kept beside the files' own so that a cached run chains on the same keys.
        `cost`: what the step run that produced the values measured (`kernels.cost.measured`): a
        later cache hit knows the time it saved.
        `profiles`: the values' data profiles (`kernels.profiles`): a later cache hit still has them;
        or the function that gives them, called in a thread of its own while the values are written
        (the disk and the profile each keep a core busy; one after the other, the write waited for both).
        `never_stored`: outputs of the step handed on without being stored (Dask collections), named in
        the manifest so that a later run can say why the step runs again.
        """
        profiling = _started(profiles) if callable(profiles) else None
        units = _joined_by_shared_arrays(_units(outputs, groups or []), outputs)
        final = self._dir(step_hash)
        if self.by_rename:  # only folder renames use temp folders
            sweep_now_and_then(self.fs, self._temp_parent(final))
        writer = uuid.uuid4().hex[:12]
        folder = f"{self._temp_parent(final)}/{temp_name()}" if self.by_rename else final
        self.fs.makedirs(folder, exist_ok=True)
        written: list[str] = []
        try:
            entries = self._write_units(folder, units, outputs, step_name, set(optional), writer, written)
            entries = {name: entries[name] for name in outputs if name in entries}  # the step's order
            for name, digest in (content_digests or {}).items():
                if name in entries:
                    entries[name] = {**entries[name], "content": digest}
            manifest = _manifest(step_hash, step_name, writer, entries)
            if dependencies is not None:
                manifest["dependencies"] = dependencies
            if cost is not None:
                manifest["cost"] = cost
            if never_stored:
                manifest["never_stored"] = sorted(never_stored)
            if profiling is not None:
                profiles = profiling.result()
            if profiles:
                manifest["profiles"] = profiles
            if self.by_rename:
                return self._publish_by_rename(folder, final, manifest, replace)
            return self._publish_in_place(final, manifest, replace)
        except BaseException:
            if not self.by_rename and not self._same_writer(final, {"writer": writer}):  # not published
                self._remove_files(final, written)
            raise
        finally:
            if self.by_rename:
                remove_local_tree(folder)  # gone after a rename; ours if another won

    def _write_units(self, folder: str, units: list[list[str]], outputs: dict[str, Any], step: str | None,
                     optional: set[str], writer: str, written: list[str]) -> dict[str, dict]:
        """Write each unit to ``<folder>/<index>-<label>.<writer><suffix>``; return the entries."""
        entries: dict[str, dict] = {}
        refused: list[MarshalError] = []  # every output that cannot be stored is named, not the first only
        for index, names in enumerate(units):
            values = {n: outputs[n] for n in names}
            stem = f"{index}-{names[0] if len(names) == 1 else 'group'}.{writer}"
            file = stem + _expected_suffix(values)
            written.append(file)
            try:
                used, size, digest = self._write_unit(f"{folder}/{file}", values, step)
            except MarshalError as exc:
                if not optional.issuperset(names):
                    refused.append(exc)
                self.fs.rm(f"{folder}/{file}")
                continue
            suffix = marshal.get_marshaller(used).suffix
            if not file.endswith(suffix):  # a marshaller passed the value on to another one
                self.fs.mv(f"{folder}/{file}", f"{folder}/{stem}{suffix}")
                written[-1] = file = stem + suffix
            for name in names:
                entry = {"file": file, "marshaller": used, "bytes": size, "digest": digest,
                         "type": marshal.type_name(outputs[name])}  # to name it if it cannot be loaded
                entries[name] = entry if len(names) == 1 else {**entry, "group": index}
        if refused:
            first, others = refused[0], refused[1:]
            if not others:
                raise first
            also = "; ".join(f"{e.variable!r} of type {e.type_name}: {e.reason}" for e in others)
            raise MarshalError(first.variable, first.type_name, step, f"{first.reason} (and output {also})")
        return entries

    def _write_unit(self, path: str, values: dict[str, Any], step: str | None) -> tuple[str, int, str]:
        with (DirectFileWriter(path, self.keeps_room) if self.local else self.fs.open(path, "wb")) as f:
            sink = DigestWriter(f)
            if len(values) == 1:
                ((name, value),) = values.items()
                used = marshal.dump_value(value, sink, variable=name, step=step)
            else:
                used = marshal.dump_group(values, sink, step=step)
        if sink.in_order:
            return used, sink.size, sink.digest()
        with self.fs.open(path, "rb") as f:  # the marshaller seeked: hash what landed
            digest, size = file_digest(f)
        return used, size, digest

    def _publish_by_rename(self, temp: str, final: str, manifest: dict, replace: bool) -> dict:
        with open(f"{temp}/{MANIFEST}", "wb") as f:
            f.write(_json(manifest))
        self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
        if self._linked(final):  # not ours (see `_linked`): the link is moved aside, never written through
            self._move_aside(final)
        for _ in range(5):
            try:
                os.rename(temp, final)  # atomic: readers see the whole folder or none
                return manifest
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    # e.g. a FUSE mount that cannot rename folders: publish in place instead
                    return self._publish_in_place(final, manifest, replace, staged=temp)
            existing, _ = self._read_manifest(final)
            if existing is not None and not replace:
                return existing  # the first complete writer has won
            if exchange(temp, final):  # readers never find it missing; `put` removes the old one, now at `temp`
                return manifest
            replace = False  # once the stale one is out of the way, a newer complete one wins
            self._move_aside(final)  # an older format, a damaged folder, or the one to replace
        raise OSError(f"could not publish {final}: other writers kept replacing it")

    def _publish_in_place(self, final: str, manifest: dict, replace: bool, staged: str | None = None) -> dict:
        files = sorted(_files(manifest))
        existing = None if replace else self._read_manifest(final)[0]
        if existing is not None:
            if staged is None:
                self._remove_files(final, files)
            return existing  # the first complete writer has won
        self.fs.makedirs(final, exist_ok=True)
        for file in files if staged else ():
            self.fs.mv(f"{staged}/{file}", f"{final}/{file}")
        # The commit point: one object written whole (through a rename on a local file system).
        if self.local:
            own = f"{final}/.{manifest['writer']}.{MANIFEST}"
            with open(own, "wb") as f:
                f.write(_json(manifest))
            os.replace(own, f"{final}/{MANIFEST}")
        else:
            self.fs.pipe_file(f"{final}/{MANIFEST}", _json(manifest))
        # Files of replaced versions and dead writers; young ones may still be read or written.
        for info in listing(self.fs, final):
            if _name(info) not in {*files, MANIFEST} and age(info) > STALE_AFTER_S:
                self._remove_files(final, [_name(info)])
        return manifest

    def _remove_files(self, folder: str, files) -> None:
        for file in files:
            try:
                self.fs.rm(f"{folder}/{file}")
            except FileNotFoundError:
                pass

    def _linked(self, folder: str) -> bool:
        """A step's folder that is a symbolic link: the store makes none, so one is somebody else's
        (planted where a step's predictable hash would write): it is neither read nor written through."""
        return self.local and os.path.islink(folder)

    def _move_aside(self, folder: str) -> None:
        """Take an artifact away: in one rename where folders are renamed, else manifest first."""
        if self.by_rename:
            aside = f"{self._temp_parent(folder)}/{temp_name()}"
            try:
                os.rename(folder, aside)
            except FileNotFoundError:
                return
            except OSError:
                pass  # this mount cannot rename folders: remove it manifest first, below
            else:
                remove_local_tree(aside)  # if we die now, the sweep takes it
                return
        self._remove_files(folder, [MANIFEST])  # first, so a half-deleted folder is already invisible
        if self.fs.exists(folder):
            self.fs.rm(folder, recursive=True)

    def delete(self, step_hash: str) -> None:
        self._move_aside(self._dir(step_hash))

    def remove(self, key: str) -> None:
        """Remove the artifact folder `key` (as `entries` lists it), complete or not."""
        self._move_aside(f"{self.root}/{key}")

    def sweep_temp(self, older_than: float = STALE_AFTER_S) -> list[str]:
        """Remove temp folders that writers left behind (killed mid-write); return their paths."""
        return sweep(self.fs, self.root, older_than)

    # -- reading --------------------------------------------------------------------------

    def _read_manifest(self, folder: str) -> tuple[dict | None, str | None]:
        """(manifest, None); (None, None) when there is none or it has an older format (a plain
        miss); or (None, problem) when it cannot be read."""
        self.fs.invalidate_cache(folder)  # object stores cache listings; another process may have written
        if self._linked(folder):
            return None, None
        odd = self._not_a_file(f"{folder}/{MANIFEST}")
        if odd:  # a folder, a FIFO or a loop of links in its place: opening it failed, or waited forever
            return None, f"unreadable manifest ({odd})"
        try:
            with self.fs.open(f"{folder}/{MANIFEST}", "rb") as f:
                data = json.loads(f.read())
        except (FileNotFoundError, NotADirectoryError):
            return None, None
        except ValueError as exc:  # bad JSON or UTF-8
            return None, f"unreadable manifest ({exc})"
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return None, None
        if not _well_formed(data):
            return None, "the manifest lacks file names, sizes or digests"
        return data, None

    def _not_a_file(self, path: str) -> str | None:
        """On a local store, what makes `path` no file to read (a folder, a FIFO, a socket, a loop
        of links); None when it is a regular file or is missing (the caller's open says that).
        Object stores hold only files."""
        if not self.local:
            return None
        try:
            mode = os.stat(path).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            return exc.strerror or str(exc)
        return None if stat.S_ISREG(mode) else "not a regular file"

    def _other_key(self, manifest: dict | None, step_hash: str) -> str | None:
        """What is wrong with a manifest stored under `step_hash` that names another key: a folder
        moved or copied into another's place, whose values are not this key's."""
        if manifest is None or not self.folder_per_key or manifest.get("hash") == step_hash:
            return None
        other = str(manifest.get("hash"))[:80]
        return f"the manifest is of another key ({other}): a folder moved into this one's place"

    def manifest(self, step_hash: str) -> dict:
        """The manifest of a complete artifact; ArtifactNotFound if there is none."""
        data, problem = self._read_manifest(self._dir(step_hash))
        problem = problem or self._other_key(data, step_hash)
        if problem:
            raise self._corrupt(step_hash, None, MANIFEST, problem)
        if data is None:
            raise ArtifactNotFound(step_hash)
        return data

    def has(self, step_hash: str, names: list[str] | None = None) -> bool:
        """Is a complete artifact stored: its manifest, and each of its files at its size?"""
        manifest = self.complete_manifest(step_hash)
        return manifest is not None and all(name in manifest["outputs"] for name in names or [])

    def complete_manifest(self, step_hash: str) -> dict | None:
        """The manifest of the complete artifact stored under `step_hash` (each of its files at its
        size), or None."""
        folder = self._dir(step_hash)
        for _ in range(_READS):
            try:
                manifest = self.manifest(step_hash)
            except ArtifactNotFound:
                return None
            sizes = {_name(info): info.get("size") for info in listing(self.fs, folder)}
            wrong = {file: f"{sizes[file]} bytes, {entry['bytes']} expected" if file in sizes else "missing"
                     for file, entry in _files(manifest).items() if sizes.get(file) != entry["bytes"]}
            if not wrong:
                return manifest
            if self._same_writer(folder, manifest):  # else replaced while we looked: look again
                self._corrupt(step_hash, manifest, *next(iter(wrong.items())))
                return None
        return None

    def get(self, step_hash: str, names: list[str] | None = None) -> dict[str, Any]:
        """Values of `names` (default: all), each checked against its size and digest.

        ArtifactNotFound when there is no complete artifact; CorruptArtifact (a subclass, after a
        warning) when the stored one is damaged, which is then removed.
        """
        folder = self._dir(step_hash)
        for _ in range(_READS):
            manifest = self.manifest(step_hash)
            outputs = manifest["outputs"]
            wanted = list(outputs) if names is None else list(names)
            missing = [name for name in wanted if name not in outputs]
            if missing:
                raise ArtifactNotFound(step_hash, missing)
            try:
                values = self._read(folder, {name: outputs[name] for name in wanted}, manifest.get("step"))
            except _Damaged as exc:
                if not self._same_writer(folder, manifest):
                    continue  # another writer's version replaced it while we read: read that one
                raise self._corrupt(step_hash, manifest, exc.file, exc.reason) from None
            self._touch(folder)
            return values
        raise ArtifactNotFound(step_hash)

    def _read(self, folder: str, entries: dict[str, dict], step: str | None) -> dict[str, Any]:
        values: dict[str, Any] = {}
        groups: dict[str, dict] = {}
        for name, entry in entries.items():
            if "group" in entry:
                if entry["file"] not in groups:
                    groups[entry["file"]] = self._load(folder, entry, marshal.load_group, name, step)
                values[name] = groups[entry["file"]][name]
            else:
                values[name] = self._load(folder, entry, lambda f, m=entry["marshaller"]: marshal.load_value(f, m),
                                          name, step)
        return values

    def _load(self, folder: str, entry: dict, load, name: str, step: str | None) -> Any:
        """Load one file: its size checked first, its digest (hashed as it is read) after. Intact
        bytes that cannot be loaded (a missing plug-in, a class that cannot be made again) are a
        MarshalError naming `name`, a value the file holds, its type and the `step` that stored it."""
        file = entry["file"]
        odd = self._not_a_file(f"{folder}/{file}")
        if odd:
            raise _Damaged(file, odd)
        try:
            f = self.fs.open(f"{folder}/{file}", "rb")
        except FileNotFoundError:
            raise _Damaged(file, "missing") from None
        with f:
            f.seek(0, 2)
            if f.tell() != entry["bytes"]:
                raise _Damaged(file, f"{f.tell()} bytes, {entry['bytes']} expected")
            f.seek(0)
            source = DigestReader(f)
            try:
                value = load(source)
            except Exception as exc:
                if source.digest() == entry["digest"]:  # the bytes are intact: a real failure
                    # an artifact stored before entries named their type: what its marshaller wrote
                    kind = entry.get("type") or f"{entry['marshaller']} data"
                    raise MarshalError(name, kind, step, f"{type(exc).__name__}: {exc}", doing="loaded") from exc
                raise _Damaged(file, f"digest mismatch ({type(exc).__name__} while loading)") from exc
            if source.digest() != entry["digest"]:
                raise _Damaged(file, "digest mismatch")
        return value

    def _same_writer(self, folder: str, manifest: dict) -> bool:
        current, _ = self._read_manifest(folder)
        return current is not None and current.get("writer") == manifest.get("writer")

    def _corrupt(self, step_hash: str, manifest: dict | None, file: str, reason: str) -> CorruptArtifact:
        """Warn, remove the damaged artifact (so the next writer can publish), return the miss."""
        folder = self._dir(step_hash)
        path = f"{folder}/{file}" if self.local else self.fs.unstrip_protocol(f"{folder}/{file}")
        error = CorruptArtifact(step_hash, (manifest or {}).get("step"), path, reason)
        told = _CALLER_TELLS.get()
        if told is None:
            warnings.warn(str(error), CorruptArtifactWarning, stacklevel=_caller_level())
        else:
            told.append(error)
        if manifest is None or self._same_writer(folder, manifest):  # not replaced meanwhile
            if self.by_rename:
                self._move_aside(folder)
            else:  # other writers may be writing their files here: take only this version's
                self._remove_files(folder, [MANIFEST])
                self._remove_files(folder, _files(manifest) if manifest else ())
        return error

    def record_use(self, step_hash: str) -> None:
        """A run reused the result stored under `step_hash`, whether or not it loaded the values
        (a step no later step reads is only checked): `gc --keep-last` keeps the results used last."""
        folder = self._dir(step_hash)
        if not self._linked(folder):  # not ours: its time is not ours to set either
            self._touch(folder)

    def _touch(self, folder: str) -> None:
        """Record the last use: the folder's time on local stores (object stores cannot, cheaply).
        One utime: atomic, and no file is read or written, so concurrent runs and writers are safe;
        a folder removed meanwhile (gc) or a read-only store is no error (the use goes unrecorded)."""
        if self.local:
            try:
                os.utime(folder)
            except OSError:
                pass

    @staticmethod
    def _entry(manifest: dict, step_hash: str, name: str) -> dict:
        try:
            return manifest["outputs"][name]
        except KeyError:
            raise ArtifactNotFound(step_hash, [name]) from None

    # -- inspection (for `nbscale cache ls / verify / gc`) -----------------------------------

    def verify(self, step_hash: str) -> list[str]:
        """Re-hash every file of an artifact; return its problems ([] when it is intact).
        ArtifactNotFound when nothing of the current format is stored under the hash (or it was
        removed while it was checked). Files found missing or changed because another writer replaced
        the artifact meanwhile are no damage: its new version is checked instead."""
        folder = self._dir(step_hash)
        for _ in range(_READS):
            manifest, problem = self._read_manifest(folder)
            problem = problem or self._other_key(manifest, step_hash)
            if problem:
                return [f"{MANIFEST}: {problem}"]
            if manifest is None:
                raise ArtifactNotFound(step_hash)
            problems = self._file_problems(folder, manifest)
            if not problems or self._same_writer(folder, manifest):
                return problems
        raise ArtifactNotFound(step_hash)  # replaced again and again: nothing stays to be checked

    def _file_problems(self, folder: str, manifest: dict) -> list[str]:
        problems = []
        for file, entry in _files(manifest).items():
            odd = self._not_a_file(f"{folder}/{file}")
            if odd:
                problems.append(f"{file}: {odd}")
                continue
            try:
                with self.fs.open(f"{folder}/{file}", "rb") as f:
                    digest, size = file_digest(f)
            except FileNotFoundError:
                problems.append(f"{file}: missing")
                continue
            if size != entry["bytes"]:
                problems.append(f"{file}: {size} bytes, {entry['bytes']} expected")
            elif digest != entry["digest"]:
                problems.append(f"{file}: digest mismatch")
        return problems

    def entries(self) -> list[dict]:
        """Every artifact folder: key (its folder), hash, step, bytes, created, used (local
        stores: last read, reuse or write), ok (False: an older format, an unreadable manifest or
        one of another key). A step or a time the manifest holds as something else is None.
        A folder whose name is no key's and whose manifest is not the store's is another program's
        (`--store .` in a project with `ext/chrome/manifest.json`): it is not listed, so gc leaves it."""
        found = []
        for path in sorted(self.fs.glob(f"{self.root}/*/*/{MANIFEST}")):
            folder = path.rsplit("/", 1)[0]
            key = folder[len(self.root) + 1:]
            manifest, _ = self._read_manifest(folder)
            if manifest is None and not _KEY_FOLDER.fullmatch(key):
                continue
            try:
                used = os.stat(folder).st_mtime if self.local else None
            except OSError:
                continue  # removed while we listed
            if manifest is not None and not self._own_key(manifest, key):
                manifest = None  # a run finds it damaged (`_other_key`) and removes it
            meta = manifest or {}
            # the step and the time are only shown: one of another type is unknown, not an error
            step = meta.get("step") if isinstance(meta.get("step"), str) else None
            found.append({"key": key, "hash": meta.get("hash"), "step": step,
                          "bytes": sum(e["bytes"] for e in _files(manifest).values()) if manifest else None,
                          "created": _time(meta.get("created")), "used": used, "ok": manifest is not None})
        return found

    def _own_key(self, manifest: dict, key: str) -> bool:
        """Does the manifest in folder `key` name that folder's key (as `_other_key` checks)?"""
        step_hash = manifest.get("hash")
        return isinstance(step_hash, str) and (not self.folder_per_key or key_path(step_hash) == key)


def _time(value: Any) -> float | None:
    """A manifest's time as a number a clock can show, else None (a manifest edited by hand:
    "yesterday", null, NaN, a year out of range)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        time.localtime(value)
    except (OverflowError, OSError, ValueError):
        return None
    return value


def _started(function: Callable[[], Any]) -> Future:
    """`function()` running in a thread of its own; its result (or exception) in the future."""
    future: Future = Future()

    def run():
        try:
            future.set_result(function())
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for it
            future.set_exception(exc)

    threading.Thread(target=run, name="nbscale-store-profile", daemon=True).start()
    return future


def _units(outputs: dict[str, Any], groups: list[list[str]]) -> list[list[str]]:
    """Split output names into write units: each group of 2+ names, then every other name."""
    units = [list(group) for group in groups if len(group) > 1]
    grouped = [name for unit in units for name in unit]
    unknown = sorted(set(grouped) - set(outputs))
    if unknown:
        raise ValueError(f"group members {unknown} are not among the outputs")
    if len(grouped) != len(set(grouped)):
        raise ValueError(f"an output appears in two groups: {groups}")
    return units + [[name] for name in outputs if name not in grouped]


def _joined_by_shared_arrays(units: list[list[str]], outputs: dict[str, Any]) -> list[list[str]]:
    """Units holding arrays that lie in one array's memory (`v = x[:2]` beside `x`) joined into one:
    written as one pickle they load as views of one array, as a fresh run hands them on; written
    apart they would load as two arrays, and a change through one would not reach the other."""
    if len(units) < 2:
        return units
    joined: list[tuple[list[str], set[int]]] = []
    for unit in units:
        names, owned = list(unit), array_views.owners({n: outputs[n] for n in unit})
        for other in [j for j in joined if owned and j[1] & owned]:
            joined.remove(other)
            names, owned = other[0] + names, other[1] | owned
        joined.append((names, owned))
    return [names for names, _ in joined]


def _expected_suffix(values: dict[str, Any]) -> str:
    """The suffix of the marshaller that will most likely take the value (checked after)."""
    if len(values) > 1:
        return marshal.CloudpickleMarshaller.suffix
    (value,) = values.values()
    return next((m.suffix for m in marshal.marshallers() if m.can_handle(value)), "")


def _manifest(step_hash: str, step_name: str | None, writer: str, entries: dict[str, dict]) -> dict:
    return {"format": FORMAT, "hash": step_hash, "step": step_name, "created": time.time(), "writer": writer,
            "outputs": entries}


def _json(manifest: dict) -> bytes:
    # no indent: json's encoder in C then, 4x faster than its Python one (a manifest per step run)
    return utf8_json(manifest).encode()


def _well_formed(manifest: dict) -> bool:
    outputs = manifest.get("outputs")
    return isinstance(outputs, dict) and all(
        isinstance(e, dict) and isinstance(e.get("file"), str) and _FILE.fullmatch(e["file"])
        and type(e.get("bytes")) is int and isinstance(e.get("digest"), str) and isinstance(e.get("marshaller"), str)
        and isinstance(e.get("content", ""), str) and isinstance(e.get("type", ""), str) for e in outputs.values())


def _files(manifest: dict) -> dict[str, dict]:
    """File name → its entry (the members of a group share one file)."""
    return {entry["file"]: entry for entry in manifest["outputs"].values()}


def _name(info: dict) -> str:
    return info["name"].rstrip("/").rsplit("/", 1)[-1]


@contextlib.contextmanager
def caller_tells_of_damage():
    """Within: the damaged artifacts the store finds (and removes) are no Python warnings but
    CorruptArtifact errors in the list this gives, for the caller to tell of (a run: as the step's
    warning; the Python warning said it a second time, with a path into nbscale). `has` answers
    False for one; `get` raises it as well."""
    told: list[CorruptArtifact] = []
    token = _CALLER_TELLS.set(told)
    try:
        yield told
    finally:
        _CALLER_TELLS.reset(token)


def _caller_level() -> int:
    """The `stacklevel` that points a warning at the first caller outside this module."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename == __file__:
        frame, level = frame.f_back, level + 1
    return level
