"""The artifact store: step outputs on any fsspec file system, keyed by step hash.

Layout: ``<root>/<algorithm>/<digest>/`` holds one file per output (or per group of outputs
that share objects) and ``manifest.json``. The manifest is the commit point: it is written
last, and an artifact without one does not exist for `has` and `get`.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from typing import Any

import fsspec

from . import marshal
from .errors import ArtifactNotFound, MarshalError

MANIFEST = "manifest.json"
FORMAT = "nbscale.artifact/1"

_ALGORITHM = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_DIGEST = re.compile(r"[A-Za-z0-9_-]+")


def key_path(step_hash: str) -> str:
    """The relative folder of a step hash: ``sha256:ab…`` → ``sha256/ab…``."""
    algorithm, sep, digest = step_hash.partition(":")
    if sep and _ALGORITHM.fullmatch(algorithm) and _DIGEST.fullmatch(digest):
        return f"{algorithm}/{digest}"
    # Anything else is hashed: "_" cannot start an algorithm name, so the two never collide.
    return "_other/" + hashlib.sha256(step_hash.encode()).hexdigest()


class ArtifactStore:
    def __init__(self, url: str, **storage_options: Any):
        self.url = str(url)
        self.fs, self.root = fsspec.core.url_to_fs(self.url, **storage_options)
        self.root = self.root.rstrip("/")

    def __repr__(self) -> str:
        return f"ArtifactStore({self.url!r})"

    def _dir(self, step_hash: str) -> str:
        return f"{self.root}/{key_path(step_hash)}"

    def file_url(self, step_hash: str, name: str) -> str:
        """Full URL of the file holding output `name` (e.g. to memory-map a local ``.npy``)."""
        entry = self._entry(self.manifest(step_hash), step_hash, name)
        return self.fs.unstrip_protocol(f"{self._dir(step_hash)}/{entry['file']}")

    # -- writing --------------------------------------------------------------------------

    def put(
        self,
        step_hash: str,
        outputs: dict[str, Any],
        groups: list[list[str]] | None = None,
        step_name: str | None = None,
        optional=(),
    ) -> dict:
        """Write `outputs` under `step_hash` atomically and return the manifest. Names in
        `optional` are kept when they can be serialised and left out when they cannot."""
        units = _units(outputs, groups or [])
        final = self._dir(step_hash)
        # Sibling of the target: same file system and bucket, so the moves are renames.
        tmp = f"{final.rsplit('/', 1)[0]}/.tmp-{uuid.uuid4().hex}"
        self.fs.makedirs(tmp, exist_ok=True)
        try:
            entries, files = self._write_units(tmp, units, outputs, step_name, set(optional))
            entries = {name: entries[name] for name in outputs if name in entries}  # the step's order
            manifest = _manifest(step_hash, step_name, entries)
            self._write_json(f"{tmp}/{MANIFEST}", manifest)
            self._publish(files, tmp, final)
        finally:
            if self.fs.exists(tmp):
                self.fs.rm(tmp, recursive=True)
        return manifest

    def _write_units(
        self, tmp: str, units: list[list[str]], outputs: dict[str, Any], step: str | None, optional: set[str]
    ) -> tuple[dict[str, dict], dict[str, str]]:
        """Write each unit to ``<tmp>/<index>``; return the entries and final file names."""
        entries: dict[str, dict] = {}
        files: dict[str, str] = {}  # final file name → staged path
        for index, names in enumerate(units):
            staged = f"{tmp}/{index}"
            try:
                used, size = self._write_unit(staged, names, outputs, step)
            except MarshalError:
                if not optional.issuperset(names):
                    raise
                self.fs.rm(staged)
                continue
            # The suffix is known only once a marshaller has taken the value.
            label = names[0] if len(names) == 1 else "group"
            file = f"{index}-{label}{marshal.get_marshaller(used).suffix}"
            files[file] = staged
            for name in names:
                entry = {"file": file, "marshaller": used, "bytes": size}
                entries[name] = entry if len(names) == 1 else {**entry, "group": index}
        return entries, files

    def _write_unit(self, staged: str, names: list[str], outputs: dict[str, Any], step: str | None):
        with self.fs.open(staged, "wb") as f:
            if len(names) == 1:
                used = marshal.dump_value(outputs[names[0]], f, variable=names[0], step=step)
            else:
                used = marshal.dump_group({n: outputs[n] for n in names}, f, step=step)
            return used, f.tell()

    def _publish(self, files: dict[str, str], tmp: str, final: str) -> None:
        # Retract any older version first, so no reader pairs its manifest with our files.
        self._remove_manifest(final)
        self.fs.makedirs(final, exist_ok=True)
        for file, staged in files.items():
            self.fs.mv(staged, f"{final}/{file}")
        self.fs.mv(f"{tmp}/{MANIFEST}", f"{final}/{MANIFEST}")
        self._remove_strays(final, set(files) | {MANIFEST})

    def _remove_strays(self, final: str, keep: set[str]) -> None:
        self.fs.invalidate_cache(final)  # a cached listing would miss the files just moved in
        for path in self.fs.ls(final, detail=False):
            if path.rstrip("/").rsplit("/", 1)[-1] not in keep:
                self.fs.rm(path, recursive=True)

    def _remove_manifest(self, folder: str) -> None:
        try:
            self.fs.rm(f"{folder}/{MANIFEST}")
        except FileNotFoundError:
            pass

    def _write_json(self, path: str, data: dict) -> None:
        with self.fs.open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, ensure_ascii=False)

    def delete(self, step_hash: str) -> None:
        folder = self._dir(step_hash)
        self._remove_manifest(folder)  # first, so a half-deleted folder is already invisible
        if self.fs.exists(folder):
            self.fs.rm(folder, recursive=True)

    # -- reading --------------------------------------------------------------------------

    def manifest(self, step_hash: str) -> dict:
        """The manifest of a complete artifact; ArtifactNotFound if there is none."""
        folder = self._dir(step_hash)
        # Object-store file systems cache listings; another process may have written since.
        self.fs.invalidate_cache(folder)
        try:
            with self.fs.open(f"{folder}/{MANIFEST}", "r", encoding="utf-8") as f:
                data = json.load(f)
        except (FileNotFoundError, json.JSONDecodeError) as exc:
            raise ArtifactNotFound(step_hash) from exc
        if data.get("format") != FORMAT:
            raise ArtifactNotFound(step_hash)
        return data

    def has(self, step_hash: str, names: list[str] | None = None) -> bool:
        try:
            outputs = self.manifest(step_hash)["outputs"]
        except ArtifactNotFound:
            return False
        return all(name in outputs for name in names or [])

    def get(self, step_hash: str, names: list[str] | None = None) -> dict[str, Any]:
        outputs = self.manifest(step_hash)["outputs"]
        wanted = list(outputs) if names is None else list(names)
        missing = [name for name in wanted if name not in outputs]
        if missing:
            raise ArtifactNotFound(step_hash, missing)
        folder = self._dir(step_hash)
        try:
            return self._read(folder, {name: outputs[name] for name in wanted})
        except FileNotFoundError as exc:
            # Only when the artifact was deleted or rewritten under our feet.
            raise ArtifactNotFound(step_hash, wanted) from exc

    def _read(self, folder: str, entries: dict[str, dict]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        groups: dict[str, dict] = {}
        for name, entry in entries.items():
            path = f"{folder}/{entry['file']}"
            if "group" in entry:
                if path not in groups:
                    with self.fs.open(path, "rb") as f:
                        groups[path] = marshal.load_group(f)
                values[name] = groups[path][name]
            else:
                with self.fs.open(path, "rb") as f:
                    values[name] = marshal.load_value(f, entry["marshaller"])
        return values

    @staticmethod
    def _entry(manifest: dict, step_hash: str, name: str) -> dict:
        try:
            return manifest["outputs"][name]
        except KeyError:
            raise ArtifactNotFound(step_hash, [name]) from None


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


def _manifest(step_hash: str, step_name: str | None, entries: dict[str, dict]) -> dict:
    return {
        "format": FORMAT,
        "hash": step_hash,
        "step": step_name,
        "created": time.time(),
        "outputs": entries,
    }
