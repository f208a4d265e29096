"""The artifact store: round trips, atomic publishing, verified reads, sweeping what dead writers left.

Real files, real processes: concurrent writers and readers, and a writer killed mid-write, run
as subprocesses of this test.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
import time
import uuid
import warnings

import numpy as np
import pandas as pd
import pytest
import xxhash
from conftest import make_notebook

from nbscale.kernels import marshal
from nbscale.kernels.errors import ArtifactNotFound, CorruptArtifact, CorruptArtifactWarning, MarshalError
from nbscale.kernels.kfp_component import ArtifactFolder
from nbscale.kernels.runner import RunOptions, run_notebook
from nbscale.kernels.staging import TEMP_PREFIX
from nbscale.kernels.store import FORMAT, MANIFEST, ArtifactStore, caller_tells_of_damage, key_path

HASH = "sha256:" + "ab12" * 16
LOCAL = RunOptions(engine="local")


class InPlaceStore(ArtifactStore):
    """A local store that publishes as on object stores: files in place, manifest last."""

    rename_folders = False


@pytest.fixture(params=["local", "memory", "in-place"])
def store(request, tmp_path):
    if request.param == "memory":
        store = ArtifactStore(f"memory://nbscale-tests/{uuid.uuid4().hex}")
    else:
        kind = InPlaceStore if request.param == "in-place" else ArtifactStore
        store = kind(str(tmp_path / ".nbscale" / "artifacts"))
    yield store
    if request.param == "memory" and store.fs.exists(store.root):
        store.fs.rm(store.root, recursive=True)  # the memory file system is process-wide


def files_under(store):
    if not store.fs.exists(store.root):
        return []
    return [path[len(store.root) + 1 :] for path in store.fs.find(store.root)]


def stored_file(store, name, step_hash=HASH):
    return f"{store.root}/{key_path(step_hash)}/{store.manifest(step_hash)['outputs'][name]['file']}"


def damage(store, path, how):
    data = bytearray(store.fs.cat_file(path))
    if how == "flip":
        data[len(data) // 2] ^= 0x01
    else:
        data = data[: len(data) - 7]
    store.fs.pipe_file(path, bytes(data))


# -- round trips ---------------------------------------------------------------------------


def test_put_get_round_trip_records_size_and_digest_of_each_file(store):
    shared = [1, 2]
    outputs = {
        "X": np.arange(6.0).reshape(2, 3),
        "df": pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}),
        "pair": [shared, "z"],
        "shared": shared,
        "fn": lambda v: v + 1,
    }
    manifest = store.put(HASH, outputs, [["pair", "shared"]], "prep")

    entries = manifest["outputs"]
    assert manifest["format"] == FORMAT == "nbscale.artifact/2"
    assert list(entries) == list(outputs)
    assert entries["X"]["marshaller"] == "numpy" and entries["X"]["file"].endswith(".npy")
    assert entries["df"]["marshaller"] == "parquet"
    assert entries["pair"]["file"] == entries["shared"]["file"]
    assert entries["pair"]["group"] == entries["shared"]["group"]
    assert manifest["step"] == "prep" and manifest["hash"] == HASH
    for entry in entries.values():  # hashed while writing: the digest of what landed
        data = store.fs.cat_file(f"{store.root}/{key_path(HASH)}/{entry['file']}")
        assert entry["bytes"] == len(data) > 0
        assert entry["digest"] == "xxh3_128:" + xxhash.xxh3_128(data).hexdigest()
        assert manifest["writer"] in entry["file"]  # file names carry the writer

    loaded = store.get(HASH)
    np.testing.assert_array_equal(loaded["X"], outputs["X"])
    pd.testing.assert_frame_equal(loaded["df"], outputs["df"])
    assert loaded["pair"][0] is loaded["shared"]
    assert loaded["fn"](1) == 2
    assert sorted(files_under(store)) == sorted(
        f"{key_path(HASH)}/{name}" for name in [MANIFEST, *{e["file"] for e in entries.values()}]
    )


def test_get_subset_and_has(store):
    store.put(HASH, {"a": 1, "b": 2}, [], "s")
    assert store.get(HASH, ["b"]) == {"b": 2}
    assert store.has(HASH, ["a", "b"]) and store.has(HASH)
    assert not store.has(HASH, ["a", "c"])
    with pytest.raises(ArtifactNotFound, match="missing c"):
        store.get(HASH, ["a", "c"])


def test_outputs_handed_on_without_being_stored_are_named_in_the_manifest(store):
    # (Dask collections: a later run says that is why the step runs again)
    manifest = store.put(HASH, {"a": 1}, [], "s", never_stored=["lazy_b", "lazy_a"])
    assert manifest["never_stored"] == ["lazy_a", "lazy_b"] == store.manifest(HASH)["never_stored"]
    assert store.has(HASH, ["a"]) and not store.has(HASH, ["a", "lazy_a"])
    assert "never_stored" not in store.put(HASH + "1", {"a": 1}, [], "s")


def test_missing_artifact(store):
    assert not store.has("sha256:0000")
    with pytest.raises(ArtifactNotFound):
        store.get("sha256:0000")


def test_delete(store):
    store.put(HASH, {"a": 1}, [], "s")
    store.delete(HASH)
    assert not store.has(HASH)
    assert files_under(store) == []
    store.delete(HASH)  # deleting nothing is fine


def test_first_complete_writer_wins_unless_told_to_replace(store):
    first = store.put(HASH, {"a": np.arange(3), "b": 1}, [], "s")
    assert store.put(HASH, {"a": {"now": "a dict"}}, [], "s") == first  # same hash: same content
    np.testing.assert_array_equal(store.get(HASH)["a"], np.arange(3))
    second = store.put(HASH, {"a": {"now": "a dict"}}, [], "s", replace=True)
    assert store.get(HASH) == {"a": {"now": "a dict"}}
    if store.by_rename:  # elsewhere the replaced version's files stay an hour for its readers
        assert sorted(files_under(store)) == sorted(
            [f"{key_path(HASH)}/{MANIFEST}", f"{key_path(HASH)}/{second['outputs']['a']['file']}"])


def test_a_reader_never_misses_an_artifact_another_run_is_replacing(store):
    # Two runs of one folder with the cache off store the same key again and again: a reader of that
    # key must see the old version or the new one, never "no artifact" between the two.
    store.put(HASH, {"x": list(range(1000))}, [], "s")
    stop, missed = threading.Event(), []

    def replace_again_and_again():
        while not stop.is_set():
            store.put(HASH, {"x": list(range(1000))}, [], "s", replace=True)

    writer = threading.Thread(target=replace_again_and_again)
    writer.start()
    try:
        for _ in range(1500):
            try:
                assert store.get(HASH)["x"][-1] == 999
            except ArtifactNotFound as exc:
                missed.append(exc)
    finally:
        stop.set()
        writer.join()
    assert not missed, f"{len(missed)} of 1500 reads found no artifact: {missed[0]}"


def test_failed_put_leaves_nothing(store):
    with pytest.raises(MarshalError, match="'lock'"):
        store.put(HASH, {"a": np.arange(3), "lock": threading.Lock()}, [], "s")
    assert not store.has(HASH)
    assert files_under(store) == []


def test_crash_inside_a_marshaller_keeps_the_previous_version(store, monkeypatch):
    store.put(HASH, {"a": np.arange(3)}, [], "s")

    def half_write(self, value, fileobj):
        fileobj.write(b"\x93NUMPY half")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(marshal.NumpyMarshaller, "dump", half_write)
    with pytest.raises(MarshalError, match="disk on fire"):
        store.put(HASH, {"a": np.arange(5)}, [], "s", replace=True)
    np.testing.assert_array_equal(store.get(HASH)["a"], np.arange(3))
    assert not [path for path in files_under(store) if ".tmp-" in path]


class Unmakeable:
    """Pickles, but cannot be made again. (Not an exception whose __init__ refuses pickle's args:
    once distributed is imported, tblib makes every exception loadable, and this test passed or
    failed by what ran before it in the process.)"""

    def __reduce__(self):
        return _refuse, ("late",)


def _refuse(detail):
    raise TypeError(f"cannot be made again: {detail}")


def test_intact_bytes_that_cannot_be_loaded_name_the_value_its_type_and_step(store):
    store.put(HASH, {"failure": Unmakeable(), "n": 1}, [], "make")
    with pytest.raises(MarshalError) as raised:
        store.get(HASH)
    assert raised.value.variable == "failure" and raised.value.step == "make"
    assert raised.value.type_name == f"{__name__}.Unmakeable"
    assert "cannot be loaded" in str(raised.value) and "TypeError" in str(raised.value)
    assert store.get(HASH, ["n"]) == {"n": 1}, "an intact artifact is kept"

def test_local_npy_file_can_be_memory_mapped(tmp_path):
    store = ArtifactStore(str(tmp_path / "artifacts"))
    store.put(HASH, {"X": np.arange(10)}, [], "s")
    url = store.file_url(HASH, "X")
    assert url.startswith("file://")
    mapped = np.load(url.removeprefix("file://"), mmap_mode="r")
    np.testing.assert_array_equal(mapped, np.arange(10))


def test_bad_groups_are_rejected(store):
    with pytest.raises(ValueError, match="not among the outputs"):
        store.put(HASH, {"a": 1}, [["a", "b"]], "s")
    with pytest.raises(ValueError, match="two groups"):
        store.put(HASH, {"a": 1, "b": 2, "c": 3}, [["a", "b"], ["b", "c"]], "s")


@pytest.mark.parametrize(
    "key, expected",
    [
        ("sha256:abc123", "sha256/abc123"),
        ("md5:ABC-def_1", "md5/ABC-def_1"),
    ],
)
def test_key_path_keeps_clean_hashes_readable(key, expected):
    assert key_path(key) == expected


@pytest.mark.parametrize("key", ["../../etc/passwd", "sha256:../x", "a/b:c", "C:\\x", "_other:ab"])
def test_key_path_hashes_anything_else(key):
    path = key_path(key)
    assert path.startswith("_other/") and ".." not in path and path.count("/") == 1
    assert key_path(key) != key_path(key + "x")


def test_optional_values_that_cannot_be_serialised_are_left_out(tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    store.put(HASH, {"x": 1, "lock": threading.Lock(), "y": [2]}, [], "make", optional={"lock", "y"})
    assert store.get(HASH) == {"x": 1, "y": [2]}
    with pytest.raises(MarshalError):
        store.put(HASH, {"lock": threading.Lock()}, [], "make", replace=True)


@pytest.mark.parametrize("exists", ["missing", "empty", "junk"])
def test_an_artifact_folder_is_published_in_place_of_its_root(tmp_path, exists):
    # A KFP output artifact: the folder is its own root, and KFP may have created it already.
    root = tmp_path / "task" / "out_data"
    if exists != "missing":
        root.mkdir(parents=True)
    if exists == "junk":
        (root / "left-over").write_text("from an attempt that died")
    ArtifactFolder(str(root)).put("make", {"data": [1, 2], "n": 2}, [], "make")
    assert ArtifactFolder(str(root)).get("make", ["data"]) == {"data": [1, 2]}
    assert sorted(p.name for p in (tmp_path / "task").iterdir()) == ["out_data"]  # no temp folder left
    assert not (root / "left-over").exists()


# -- damaged artifacts are misses ----------------------------------------------------------


def test_flipped_byte_is_a_miss_with_a_warning_naming_step_and_file(store):
    store.put(HASH, {"a": list(range(100)), "b": np.arange(1000)}, [], "make")
    path = stored_file(store, "b")
    damage(store, path, "flip")
    assert store.has(HASH)  # `has` only looks at the manifest and the sizes
    with pytest.warns(CorruptArtifactWarning, match=r"step 'make'.*digest mismatch") as caught:
        with pytest.raises(CorruptArtifact) as raised:
            store.get(HASH)
    assert path.rsplit("/", 1)[-1] in str(caught[0].message)
    assert raised.value.step == "make" and raised.value.file.endswith(path.rsplit("/", 1)[-1])
    assert isinstance(raised.value, ArtifactNotFound)
    assert str(pickle.loads(pickle.dumps(raised.value))) == str(raised.value)  # crosses Dask
    # removed, so the next writer publishes a good one
    assert not store.has(HASH) and not files_under(store)
    store.put(HASH, {"a": [1], "b": np.arange(2)}, [], "make")
    np.testing.assert_array_equal(store.get(HASH)["b"], np.arange(2))


def test_a_caller_that_tells_of_the_damage_itself_gets_the_miss_without_a_warning(store):
    store.put(HASH, {"b": np.arange(1000)}, [], "make")
    damage(store, stored_file(store, "b"), "flip")
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorruptArtifactWarning)
        with caller_tells_of_damage() as told, pytest.raises(CorruptArtifact, match="digest mismatch"):
            store.get(HASH)
        assert [e.reason for e in told] == ["digest mismatch"]
        store.put(HASH, {"b": np.arange(1000)}, [], "make")
        damage(store, stored_file(store, "b"), "truncate")
        with caller_tells_of_damage() as told:
            assert not store.has(HASH)
        assert len(told) == 1 and "expected" in told[0].reason
    assert not store.has(HASH)  # removed all the same
    store.put(HASH, {"b": np.arange(1000)}, [], "make")
    damage(store, stored_file(store, "b"), "flip")
    with pytest.warns(CorruptArtifactWarning), pytest.raises(CorruptArtifact):  # others are warned again
        store.get(HASH)


def test_two_results_swapped_on_disk_are_each_a_miss_not_the_others_value(store):
    other = "sha256:" + "cd34" * 16
    store.put(HASH, {"a": 10}, [], "make")
    store.put(other, {"a": 20}, [], "make")
    mine, theirs = store._dir(HASH), store._dir(other)
    store.fs.mv(mine, mine + ".x", recursive=True)
    store.fs.mv(theirs, mine, recursive=True)
    store.fs.mv(mine + ".x", theirs, recursive=True)
    assert store.verify(HASH) == [f"manifest.json: the manifest is of another key ({other}): a folder moved "
                                  "into this one's place"]
    with pytest.warns(CorruptArtifactWarning, match="another key"), pytest.raises(CorruptArtifact):
        store.get(HASH)
    with pytest.warns(CorruptArtifactWarning, match="another key"):
        assert not store.has(other)
    assert not store.has(HASH) and not store.has(other)  # both misses: the next runs store their own
    store.put(HASH, {"a": 11}, [], "make")
    assert store.get(HASH) == {"a": 11} and store.verify(HASH) == []


@pytest.mark.parametrize("value", [np.arange(5000.0), pd.DataFrame({"x": range(500)}), {"k": list(range(500))}],
                         ids=["numpy", "parquet", "pickle"])
@pytest.mark.parametrize("where", [0.0, 0.5, 0.999])
def test_any_flipped_byte_of_any_format_is_caught(tmp_path, value, where):
    store = ArtifactStore(str(tmp_path / "store"))
    store.put(HASH, {"v": value}, [], "make")
    path = stored_file(store, "v")
    data = bytearray(open(path, "rb").read())
    data[int(len(data) * where)] ^= 0x10
    open(path, "wb").write(bytes(data))
    with pytest.warns(CorruptArtifactWarning), pytest.raises(CorruptArtifact):
        store.get(HASH)


def test_truncated_file_is_a_miss_for_has_and_get(store):
    store.put(HASH, {"a": np.arange(1000)}, [], "make")
    damage(store, stored_file(store, "a"), "truncate")
    with pytest.warns(CorruptArtifactWarning, match=r"step 'make'.*bytes, \d+ expected"):
        assert not store.has(HASH)
    with pytest.raises(ArtifactNotFound):
        store.get(HASH)


def test_missing_file_is_a_miss(store):
    store.put(HASH, {"a": 1, "b": 2}, [], "make")
    store.fs.rm(stored_file(store, "b"))
    with pytest.warns(CorruptArtifactWarning, match="missing"), pytest.raises(CorruptArtifact):
        store.get(HASH, ["b"])
    assert not store.has(HASH)


def test_unreadable_manifest_is_a_miss(store):
    store.put(HASH, {"a": 1}, [], "s")
    store.fs.pipe_file(f"{store.root}/{key_path(HASH)}/{MANIFEST}", b'{"format": "nbscale.artifact/2", "outp')
    with pytest.warns(CorruptArtifactWarning, match="unreadable manifest"):
        assert not store.has(HASH)
    store.put(HASH, {"a": 2}, [], "s")  # a writer publishes over it
    assert store.get(HASH) == {"a": 2}


def test_old_format_manifest_is_a_plain_miss_and_is_written_over(store):
    folder = f"{store.root}/{key_path(HASH)}"
    store.fs.makedirs(folder, exist_ok=True)
    store.fs.pipe_file(f"{folder}/0-a.pkl", pickle.dumps(1))
    store.fs.pipe_file(f"{folder}/{MANIFEST}", json.dumps({
        "format": "nbscale.artifact/1", "hash": HASH, "step": "s",
        "outputs": {"a": {"file": "0-a.pkl", "marshaller": "cloudpickle", "bytes": 5}}}).encode())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an older format is not damage: no warning
        assert not store.has(HASH)
        with pytest.raises(ArtifactNotFound) as raised:
            store.get(HASH)
    assert not isinstance(raised.value, CorruptArtifact)
    store.put(HASH, {"a": 2}, [], "s")
    assert store.get(HASH) == {"a": 2}


def test_verify_rehashes_and_entries_lists(store):
    other = "sha256:" + "cd34" * 16
    store.put(HASH, {"a": np.arange(100)}, [], "make")
    store.put(other, {"b": "text", "c": 3}, [], "use")
    assert store.verify(HASH) == [] and store.verify(other) == []
    damage(store, stored_file(store, "b", other), "flip")
    assert store.verify(other) == [f"{store.manifest(other)['outputs']['b']['file']}: digest mismatch"]
    with pytest.raises(ArtifactNotFound):
        store.verify("sha256:" + "00" * 32)
    listed = {e["hash"]: e for e in store.entries()}
    assert set(listed) == {HASH, other}
    assert listed[HASH]["step"] == "make" and listed[HASH]["ok"]
    assert listed[HASH]["bytes"] == store.manifest(HASH)["outputs"]["a"]["bytes"]
    assert listed[HASH]["created"] <= time.time()
    assert (listed[HASH]["used"] is not None) == store.local



@pytest.mark.parametrize("kind", ["folder", "fifo", "link loop"])
def test_a_manifest_that_is_no_file_is_damage_not_a_traceback_nor_a_hang(tmp_path, kind):
    """A folder, a FIFO or a link to itself where a manifest belongs: `cache ls`, `verify` and `gc`
    and every run reading the key failed with IsADirectoryError / OSError (ELOOP), and a FIFO made
    them wait for a writer forever. Now it is an unreadable manifest: listed as not ok, reported by
    verify, a miss for a run (which removes it and stores its own), removed by gc."""
    store = ArtifactStore(str(tmp_path / "store"))
    store.put(HASH, {"a": np.arange(10)}, [], "make")
    path = f"{store.root}/{key_path(HASH)}/{MANIFEST}"
    os.remove(path)
    {"folder": os.mkdir, "fifo": os.mkfifo, "link loop": lambda p: os.symlink(p, p)}[kind](path)
    (listed,) = store.entries()
    assert not listed["ok"] and listed["key"] == key_path(HASH)
    (problem,) = store.verify(HASH)
    assert problem.startswith(f"{MANIFEST}: unreadable manifest (")
    with pytest.warns(CorruptArtifactWarning):
        assert not store.has(HASH)
    store.put(HASH, {"a": np.arange(3)}, [], "make")
    assert store.get(HASH)["a"].tolist() == [0, 1, 2] and store.verify(HASH) == []
    store.remove(listed["key"])
    assert store.entries() == []


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_stored_file_that_is_no_file_is_damage(tmp_path, kind):
    # verify waited forever on a FIFO and failed with IsADirectoryError on a folder; a read the same
    store = ArtifactStore(str(tmp_path / "store"))
    store.put(HASH, {"a": np.arange(10), "b": "text"}, [], "make")
    path = stored_file(store, "a")
    os.remove(path)
    (os.mkdir if kind == "folder" else os.mkfifo)(path)
    assert store.verify(HASH) == [f"{os.path.basename(path)}: not a regular file"]
    with pytest.warns(CorruptArtifactWarning), pytest.raises(CorruptArtifact):
        store.get(HASH, ["a"])
    assert store.entries() == []  # removed: the next writer publishes


def test_record_use_sets_the_used_time_of_a_local_entry_without_reading_it(store, tmp_path):
    store.put(HASH, {"a": np.arange(10)}, [], "make")
    folder = f"{store.root}/{key_path(HASH)}"
    if store.local:
        os.utime(folder, (1_000_000, 1_000_000))
    store.record_use(HASH)
    store.record_use("sha256:" + "00" * 32)  # none stored (or removed by gc meanwhile): nothing to say
    (listed,) = store.entries()
    assert listed["used"] is None if not store.local else listed["used"] > time.time() - 60
    assert store.get(HASH)["a"].tolist() == list(range(10))  # nothing else changed


def test_record_use_does_not_set_the_time_of_a_folder_through_a_link(tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.utime(elsewhere, (1_000_000, 1_000_000))
    os.makedirs(os.path.dirname(f"{store.root}/{key_path(HASH)}"))
    os.symlink(elsewhere, f"{store.root}/{key_path(HASH)}")
    store.record_use(HASH)
    assert os.stat(elsewhere).st_mtime == 1_000_000


@pytest.mark.parametrize("field, value", [("created", "yesterday"), ("created", None), ("created", float("nan")),
                                          ("created", 1e300), ("created", True), ("step", ["make"]),
                                          ("step", {"a": 1}), ("step", 7)])
def test_entries_give_a_step_or_time_of_another_type_as_unknown(store, field, value):
    # `cache ls` formatted them as they came: a traceback (and gc could not group by a list)
    store.put(HASH, {"a": 1}, [], "make")
    path = f"{store.root}/{key_path(HASH)}/{MANIFEST}"
    manifest = json.loads(store.fs.cat_file(path))
    store.fs.pipe_file(path, json.dumps({**manifest, field: value}).encode())
    (listed,) = store.entries()
    assert listed[field] is None and listed["ok"]  # runs reuse it: only what is shown is unknown
    assert listed["step" if field == "created" else "created"] == manifest["step" if field == "created" else "created"]


@pytest.mark.parametrize("value", [None, 5, "sha256:" + "00" * 32, "missing"])
def test_entries_give_a_manifest_of_no_or_another_key_as_not_ok(store, value):
    # a run takes it for damaged (`_other_key`); `cache verify` looked the hash up and failed on null
    store.put(HASH, {"a": 1}, [], "make")
    path = f"{store.root}/{key_path(HASH)}/{MANIFEST}"
    manifest = json.loads(store.fs.cat_file(path))
    if value == "missing":
        del manifest["hash"]
    else:
        manifest["hash"] = value
    store.fs.pipe_file(path, json.dumps(manifest).encode())
    (listed,) = store.entries()
    assert not listed["ok"] and listed["key"] == key_path(HASH)


# -- concurrent writers and readers (real processes) ----------------------------------------

WRITER = """
import os, sys, time
import numpy as np
from nbscale.kernels.marshal import marshallers
from nbscale.kernels.store import ArtifactStore

class InPlaceStore(ArtifactStore):
    rename_folders = False

url, mode, me, start, stop = sys.argv[1:6]
store = (InPlaceStore if mode == "in-place" else ArtifactStore)(url)
marshallers()  # scan the plug-in entry points before the race, not in it
while time.time() < float(start):
    time.sleep(0.001)
values = {"a": me, "b": [me] * 3, "c": np.full(2000, int(me)), "d": me, "e": {"who": me}}
puts = 0
while True:  # "once": publish once; else keep replacing until told to stop
    store.put(HASH, values, [["b", "d"]], "w" + me, replace=stop != "once")
    puts += 1
    if stop == "once" or os.path.exists(stop):
        break
    time.sleep(0.05)  # leave the readers some reads between replacements
print(puts)
"""

READER = """
import json, sys, time, warnings
from nbscale.kernels.errors import ArtifactNotFound, CorruptArtifactWarning
from nbscale.kernels.marshal import marshallers
from nbscale.kernels.store import ArtifactStore

warnings.simplefilter("error", CorruptArtifactWarning)  # a false alarm would fail this reader
url, reads, start = sys.argv[1:4]
store = ArtifactStore(url)
marshallers()
while time.time() < float(start):
    time.sleep(0.001)
seen, misses, mixed, give_up = [], 0, [], time.time() + 60
while len(seen) < int(reads) and time.time() < give_up:
    try:
        v = store.get(HASH)
    except ArtifactNotFound:
        misses += 1
        time.sleep(0.001)  # leave the writers the CPU
        continue
    writers = {v["a"], v["b"][0], v["b"][1], v["d"], v["e"]["who"], *map(str, set(v["c"].tolist()))}
    if len(writers) != 1 or len(v["c"]) != 2000:
        mixed.append(sorted(writers))
    seen.append(v["a"])
print(json.dumps({"seen": seen, "misses": misses, "mixed": mixed}))
"""


def _python(script, *args, **kwargs):
    code = f"HASH = {HASH!r}\n" + script
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], text=True, **kwargs)


# "once": the race to publish first; "replacing": writers keep replacing the artifact under the readers.
# (An in-place race to publish first may let two writers publish in turn: covered by "replacing".)
@pytest.mark.parametrize("mode, writes", [("rename", "once"), ("rename", "replacing"), ("in-place", "replacing")])
def test_six_writers_and_readers_of_one_hash_never_mix(tmp_path, mode, writes):
    url, stop = tmp_path / "store", tmp_path / "stop"
    start = time.time() + 3  # once every process has imported numpy
    writers = [_python(WRITER, url, mode, i, start, "once" if writes == "once" else stop,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(1, 7)]
    readers = [_python(READER, url, 500, start, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    try:
        results = []
        for reader in readers:
            out, err = reader.communicate(timeout=180)
            assert reader.returncode == 0, err
            results.append(json.loads(out))
    finally:
        stop.touch()
        outcomes = [w.communicate(timeout=180) + (w.returncode,) for w in writers]
    assert all(code == 0 for _, _, code in outcomes), [err for _, err, _ in outcomes]
    seen = [who for r in results for who in r["seen"]]
    assert len(seen) == 1000, [r["misses"] for r in results]
    assert [r["mixed"] for r in results] == [[], []]  # every read is one writer's complete set
    final = ArtifactStore(str(url)).get(HASH)
    me = final["a"]
    assert final["b"] == [me] * 3 and final["d"] == me and final["e"] == {"who": me} and set(final["c"]) == {int(me)}
    assert ArtifactStore(str(url)).verify(HASH) == []
    manifest = ArtifactStore(str(url)).manifest(HASH)
    assert manifest["step"] == "w" + me and all(manifest["writer"] in e["file"] for e in manifest["outputs"].values())
    if writes == "replacing":
        assert sum(int(out) for out, _, _ in outcomes) > 6  # they really did overlap with the reads
    if mode == "rename":
        if writes == "once":
            assert set(seen) == {me}  # the first complete writer won; nobody replaced it
        folder = tmp_path / "store" / key_path(HASH)
        assert sorted(os.listdir(folder)) == sorted({MANIFEST, *(e["file"] for e in manifest["outputs"].values())})
        assert not [n for n in os.listdir(tmp_path / "store") if n.startswith(TEMP_PREFIX)]


# -- writers killed mid-write --------------------------------------------------------------

KILLED = """
import os, sys
import numpy as np
from nbscale.kernels.store import ArtifactStore

class InPlaceStore(ArtifactStore):
    rename_folders = False

class DiesWhenPickled:
    def __reduce__(self):
        os._exit(3)  # killed between one file and the next

store = (InPlaceStore if sys.argv[2] == "in-place" else ArtifactStore)(sys.argv[1])
store.put(HASH, {"a": np.arange(100_000), "z": DiesWhenPickled()}, [], "make")
"""


def _age_tree(path, seconds):
    old = time.time() - seconds
    for folder, _, files in os.walk(path):
        for name in files:
            os.utime(os.path.join(folder, name), (old, old))
        os.utime(folder, (old, old))


def test_a_killed_writer_leaves_a_temp_folder_that_a_later_writer_sweeps(tmp_path):
    url = tmp_path / "store"
    killed = _python(KILLED, url, "rename")
    assert killed.wait(timeout=60) == 3
    temps = [n for n in os.listdir(url) if n.startswith(TEMP_PREFIX)]
    assert len(temps) == 1 and os.listdir(url / temps[0])  # the first file was written
    store = ArtifactStore(str(url))
    assert not store.has(HASH)
    assert store.sweep_temp() == []  # young: its writer might still be at work
    _age_tree(url / temps[0], 2 * 3600)
    writer = _python("from nbscale.kernels.store import ArtifactStore\nimport sys\n"
                     "ArtifactStore(sys.argv[1]).put('sha256:' + '77' * 32, {'x': 1}, [], 'other')", url)
    assert writer.wait(timeout=60) == 0
    assert not [n for n in os.listdir(url) if n.startswith(TEMP_PREFIX)]


def test_a_killed_in_place_writer_leaves_no_artifact_and_its_files_go_later(tmp_path):
    url = tmp_path / "store"
    killed = _python(KILLED, url, "in-place")
    assert killed.wait(timeout=60) == 3
    store = InPlaceStore(str(url))
    folder = url / key_path(HASH)
    left = os.listdir(folder)
    assert left and MANIFEST not in left  # the first file, and the one it died in
    assert not store.has(HASH)
    _age_tree(folder, 2 * 3600)
    manifest = store.put(HASH, {"a": np.arange(3)}, [], "make")
    assert sorted(os.listdir(folder)) == sorted([MANIFEST, manifest["outputs"]["a"]["file"]])


# -- the run time turns a damaged artifact into a re-run -----------------------------------


def _chain(tmp_path, log, b_body="b = [x * 2 for x in a]", c_body="c = sum(b)"):
    # the file is closed: pytest shows ResourceWarnings, and a step's warnings are now events
    rec = f"\nwith open({str(log)!r}, 'a') as f_:\n    f_.write('{{}}\\n'.format(%r))"
    return make_notebook(tmp_path, [
        ("a = list(range(50))" + rec % "a", ["step:a"]),
        (b_body + rec % "b", ["step:b"]),
        (c_body + rec % "c", ["step:c"]),
    ])


def _ran(log, before=0):
    return log.read_text().splitlines()[before:]


def _damage_step(result, step, name, how):
    store = ArtifactStore(result.store_url)
    damage(store, stored_file(store, name, result.hashes[step]), how)
    return store.manifest(result.hashes[step])["outputs"][name]["file"]


def test_flipped_byte_in_a_cached_step_makes_it_run_again(tmp_path):
    log = tmp_path / "ran.log"
    first = run_notebook(_chain(tmp_path, log), options=LOCAL)
    assert first.ok
    file = _damage_step(first, "a", "a", "flip")
    events = []
    with warnings.catch_warnings(record=True) as caught:  # b changed: it needs a's values
        warnings.simplefilter("always")
        again = run_notebook(_chain(tmp_path, log, b_body="b = [x * 3 for x in a]"), options=LOCAL,
                             on_event=lambda kind, step, payload: events.append((kind, step, payload)))
    # said once, as the step's warning (a Python warning too printed it twice, with a path into nbscale)
    assert not [w for w in caught if issubclass(w.category, CorruptArtifactWarning)]
    assert again.ok
    assert _ran(log, 3) == ["a", "b", "c"]  # a ran again instead of handing on damaged values
    assert {s["name"]: s["status"] for s in again.steps} == {"a": "succeeded", "b": "succeeded", "c": "succeeded"}
    warned = [p["message"] for kind, step, p in events if kind == "warning" and step == "a"]
    assert len(warned) == 1 and file in warned[0] and "corrupt" in warned[0]
    assert again.load("c")["c"] == sum(range(0, 150, 3))
    assert ArtifactStore(again.store_url).verify(again.hashes["a"]) == []  # published again


def test_truncated_artifact_is_recomputed(tmp_path):
    log = tmp_path / "ran.log"
    first = run_notebook(_chain(tmp_path, log), options=LOCAL)
    file = _damage_step(first, "a", "a", "truncate")
    events = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorruptArtifactWarning)  # said as the step's warning, not as one more
        again = run_notebook(_chain(tmp_path, log), options=LOCAL,
                             on_event=lambda kind, step, payload: events.append((kind, step, payload)))
    warned = [p["message"] for kind, step, p in events if kind == "warning" and step == "a"]
    assert len(warned) == 1 and file in warned[0] and "bytes" in warned[0] and "expected" in warned[0]
    assert again.ok and _ran(log, 3) == ["a"]  # b and c keep their cached results
    assert again.load("a")["a"] == list(range(50))


def test_damaged_step_whose_inputs_were_not_loaded_reads_them_from_the_store_and_runs(tmp_path):
    log = tmp_path / "ran.log"
    first = run_notebook(_chain(tmp_path, log), options=LOCAL)
    _damage_step(first, "b", "b", "flip")
    events = []
    again = run_notebook(_chain(tmp_path, log, c_body="c = sum(b) + 1"), options=LOCAL,
                         on_event=lambda kind, step, payload: events.append((kind, step, payload)))
    assert [step for kind, step, _ in events if kind == "warning"] == ["b"]  # the damage, said once
    assert again.ok, again.steps
    assert _ran(log, 3) == ["b", "c"]  # a stays cached: b read its input from a's stored result
    assert again.load("c")["c"] == first.load("c")["c"] + 1


def test_arrays_lying_in_one_arrays_memory_are_stored_together_and_load_as_views(tmp_path):
    """`v = x[:2]` beside `x`, not grouped by the step: written as two files they loaded as two
    arrays, and a reader's change through x no longer reached v, as it does in a fresh run."""
    from nbscale.kernels.handoff import step_inputs
    from nbscale.kernels.store import ArtifactStore

    store = ArtifactStore(str(tmp_path / "artifacts"))
    x = np.zeros(1000)
    store.put("sha256:" + "a" * 64, {"x": x, "v": x[:2], "w": x[::2].copy(), "k": 1}, [], "a")
    got = store.get("sha256:" + "a" * 64)
    files = {entry["file"] for entry in store.manifest("sha256:" + "a" * 64)["outputs"].values()}
    assert len(files) == 3  # x and v together; w, which lies in memory of its own, and k apart
    mine, _ = step_inputs({"a": got}, changed={"x", "v"})  # as a reader of the cached step gets them
    mine["x"][0] = 7.0
    assert mine["v"][0] == 7.0 and got["v"][0] == 0.0


def test_a_reader_of_a_cached_step_sees_a_change_through_an_array_reach_its_view(tmp_path):
    nb = make_notebook(tmp_path, [("import numpy as np", ["imports"]), ("x = np.zeros(3)\nv = x[:2]", ["step:a"]),
                                  ("x[0] = 7.0\nres = float(v[0])", ["step:b"])])
    assert run_notebook(nb, options=RunOptions(engine="local")).load("b", ["res"]) == {"res": 7.0}
    cells = json.loads(nb.read_text())
    cells["cells"][-1]["source"] = "x[0] = 7.0\nres = float(v[0])  # b again, a cached"
    nb.write_text(json.dumps(cells))
    again = run_notebook(nb, options=RunOptions(engine="local"))
    assert [s["cached"] for s in again.steps] == [True, False] and again.load("b", ["res"]) == {"res": 7.0}


def test_a_step_folder_that_is_a_link_is_neither_read_nor_written_through(tmp_path):
    # the store makes no links: one planted where a step's (predictable) hash would go leads
    # somewhere else, maybe out of a Jupyter server's root
    key = "sha256:" + "ab" * 32
    elsewhere = ArtifactStore(str(tmp_path / "elsewhere"))
    elsewhere.put(key, {"x": [1, 2]}, [], "a")
    outside = tmp_path / "elsewhere" / "sha256" / ("ab" * 32)
    before = {p.name: p.read_bytes() for p in outside.iterdir()}
    (tmp_path / "store" / "sha256").mkdir(parents=True)
    link = tmp_path / "store" / "sha256" / ("ab" * 32)
    link.symlink_to(outside)
    store = ArtifactStore(str(tmp_path / "store"))
    assert not store.has(key)  # a valid entry over there is no entry here
    store.put(key, {"x": [3]}, [], "a")
    assert store.get(key) == {"x": [3]} and not link.is_symlink()
    assert {p.name: p.read_bytes() for p in outside.iterdir()} == before


def test_a_step_folder_that_is_a_link_is_removed_itself_never_what_it_names(tmp_path):
    """Moved aside and then left (rmtree refuses links): the link stayed in the store, and the
    Jupyter server refused every notebook of its folder for it."""
    key = "sha256:" + "cd" * 32
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("keep me")
    (tmp_path / "store" / "sha256").mkdir(parents=True)
    (tmp_path / "store" / "sha256" / ("cd" * 32)).symlink_to(outside)
    ArtifactStore(str(tmp_path / "store")).delete(key)
    assert sorted(os.listdir(tmp_path / "store")) == ["sha256"] and not os.listdir(tmp_path / "store" / "sha256")
    assert (outside / "victim.txt").read_text() == "keep me"


def test_the_profile_is_taken_while_the_values_are_written(tmp_path, monkeypatch):
    # the profile waits for the write to begin, the write for the profile: one after the other,
    # each would wait in vain (5 s) and the order would be write, then profile
    from nbscale.kernels import store as store_module

    writing, profiling, order = threading.Event(), threading.Event(), []

    class WaitingWriter(store_module.DirectFileWriter):
        def write(self, data):
            if not writing.is_set():
                order.append("write")
                writing.set()
                profiling.wait(5)
            return super().write(data)

    def profile():
        order.append("profile")
        profiling.set()
        assert writing.wait(5)
        return {"format": "test", "thread": threading.current_thread().name}

    monkeypatch.setattr(store_module, "DirectFileWriter", WaitingWriter)
    started = time.monotonic()
    manifest = ArtifactStore(str(tmp_path)).put("k" * 64, {"x": np.arange(10.0)}, step_name="s", profiles=profile)
    assert time.monotonic() - started < 4
    assert manifest["profiles"]["thread"] != threading.current_thread().name
    assert sorted(order) == ["profile", "write"]


def test_a_profile_that_fails_fails_the_put_and_leaves_nothing(tmp_path):
    def profile():
        raise RuntimeError("profiling broke")

    store = ArtifactStore(str(tmp_path))
    with pytest.raises(RuntimeError, match="profiling broke"):
        store.put("k" * 64, {"x": np.arange(10.0)}, step_name="s", profiles=profile)
    assert not store.has("k" * 64)
