import threading
import uuid

import numpy as np
import pandas as pd
import pytest

from nbscale.kernels import marshal
from nbscale.kernels.errors import ArtifactNotFound, MarshalError
from nbscale.kernels.store import MANIFEST, ArtifactStore, key_path

HASH = "sha256:" + "ab12" * 16


@pytest.fixture(params=["local", "memory"])
def store(request, tmp_path):
    if request.param == "local":
        url = str(tmp_path / ".nbscale" / "artifacts")
    else:
        url = f"memory://nbscale-tests/{uuid.uuid4().hex}"
    store = ArtifactStore(url)
    yield store
    if request.param == "memory" and store.fs.exists(store.root):
        store.fs.rm(store.root, recursive=True)  # the memory file system is process-wide


def files_under(store):
    if not store.fs.exists(store.root):
        return []
    return [path[len(store.root) + 1 :] for path in store.fs.find(store.root)]


def test_put_get_round_trip(store):
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
    assert list(entries) == list(outputs)
    assert entries["X"]["marshaller"] == "numpy" and entries["X"]["file"].endswith(".npy")
    assert entries["df"]["marshaller"] == "parquet"
    assert entries["pair"]["file"] == entries["shared"]["file"]
    assert entries["pair"]["group"] == entries["shared"]["group"]
    assert all(entry["bytes"] > 0 for entry in entries.values())
    assert manifest["step"] == "prep" and manifest["hash"] == HASH

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


def test_overwrite_replaces_files(store):
    store.put(HASH, {"a": np.arange(3), "b": 1}, [], "s")
    store.put(HASH, {"a": {"now": "a dict"}}, [], "s")
    assert store.get(HASH) == {"a": {"now": "a dict"}}
    assert sorted(files_under(store)) == sorted(
        [f"{key_path(HASH)}/{MANIFEST}", f"{key_path(HASH)}/0-a.pkl"]
    )


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
        store.put(HASH, {"a": np.arange(5)}, [], "s")
    np.testing.assert_array_equal(store.get(HASH)["a"], np.arange(3))
    assert not [path for path in files_under(store) if ".tmp-" in path]


def test_crash_before_the_manifest_lands_leaves_no_artifact(store, monkeypatch):
    store.put(HASH, {"a": 1}, [], "s")
    real_mv = store.fs.mv

    def mv(source, target, *args, **kwargs):
        if target.endswith(MANIFEST):
            raise KeyboardInterrupt  # the process dies between data files and manifest
        return real_mv(source, target, *args, **kwargs)

    monkeypatch.setattr(store.fs, "mv", mv)
    with pytest.raises(KeyboardInterrupt):
        store.put(HASH, {"a": 2}, [], "s")
    assert not store.has(HASH)
    assert not [path for path in files_under(store) if path.endswith(MANIFEST)]
    with pytest.raises(ArtifactNotFound):
        store.get(HASH)


def test_corrupt_manifest_is_not_trusted(store):
    store.put(HASH, {"a": 1}, [], "s")
    with store.fs.open(f"{store.root}/{key_path(HASH)}/{MANIFEST}", "w") as f:
        f.write('{"format": "nbscale.artifact/1", "outp')
    assert not store.has(HASH)


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
    import threading

    store = ArtifactStore(str(tmp_path / "store"))
    store.put(HASH, {"x": 1, "lock": threading.Lock(), "y": [2]}, [], "make", optional={"lock", "y"})
    assert store.get(HASH) == {"x": 1, "y": [2]}
    with pytest.raises(MarshalError):
        store.put(HASH, {"lock": threading.Lock()}, [], "make")
