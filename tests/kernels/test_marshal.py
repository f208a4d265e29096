import datetime
import io
import sqlite3
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pandas as pd
import pytest
from conftest import wait_for

from nbscale.errors import PluginError
from nbscale.kernels import marshal
from nbscale.kernels.errors import MarshalError


def roundtrip(value, tmp_path, name="value"):
    path = tmp_path / name
    with open(path, "wb") as f:
        used = marshal.dump_value(value, f, variable=name, step="train")
    with open(path, "rb") as f:
        return used, marshal.load_value(f, used), path


# -- numpy -------------------------------------------------------------------------------


def test_numpy_array_is_a_memory_mappable_npy(tmp_path):
    value = np.asfortranarray(np.arange(12, dtype="float32").reshape(3, 4))
    used, loaded, path = roundtrip(value, tmp_path)
    assert used == "numpy"
    np.testing.assert_array_equal(loaded, value)
    assert loaded.dtype == value.dtype
    mapped = np.load(path, mmap_mode="r")
    assert isinstance(mapped, np.memmap)
    np.testing.assert_array_equal(mapped, value)


NPY_CASES = {
    "C order": np.arange(24, dtype="<f8").reshape(2, 3, 4),
    "F order": np.asfortranarray(np.arange(12, dtype=">i4").reshape(3, 4)),
    "strided": np.arange(40, dtype="int16").reshape(4, 10)[:, ::3],
    "0-d": np.array(7.5),
    "empty": np.zeros((0, 5), dtype="uint8"),
    "structured": np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8")]),
    "datetime": np.array(["2026-01-01", "2026-12-03"], dtype="datetime64[D]"),
    "bool": np.array([[True, False], [False, True]]),
    "long header": np.zeros((1,) * 32, dtype="f4"),
    "read-only view": np.lib.stride_tricks.as_strided(np.arange(6.0), writeable=False).reshape(2, 3),
    "complex": np.array([1 + 2j, 3 - 4j], dtype="<c16"),
}


@pytest.mark.parametrize("case", sorted(NPY_CASES))
def test_npy_bytes_are_those_np_save_writes(case):
    """The store writes through a hashing writer, not a real file: the bytes stay np.save's."""
    value, written, saved = NPY_CASES[case], io.BytesIO(), io.BytesIO()
    marshal.NumpyMarshaller().dump(value, written)
    np.save(saved, value, allow_pickle=False)
    assert written.getvalue() == saved.getvalue()
    written.seek(0)
    loaded = np.load(written, allow_pickle=False)
    np.testing.assert_array_equal(loaded, value)
    assert loaded.dtype == value.dtype and loaded.flags.f_contiguous == value.flags.f_contiguous


class RecordingWriter(io.RawIOBase):
    def __init__(self):
        self.parts = []

    def writable(self):
        return True

    def write(self, data):
        self.parts.append(data)
        return memoryview(data).nbytes


@pytest.mark.parametrize("order", ["C", "F"])
def test_large_array_is_written_from_its_own_buffer(order):
    """No copy of a large array on its way to the store (np.save copies each 16 MB to bytes)."""
    value = np.ones((3 * 2**20, 4), dtype="float64", order=order)  # 96 MiB
    writer = RecordingWriter()
    marshal.NumpyMarshaller().dump(value, writer)
    data = [part for part in writer.parts if memoryview(part).nbytes > 2**20]
    assert sum(memoryview(part).nbytes for part in data) == value.nbytes
    assert all(np.shares_memory(np.frombuffer(part, dtype=np.uint8), value) for part in data)


def test_object_array_falls_through_to_cloudpickle(tmp_path):
    value = np.array([{"a": 1}, None], dtype=object)
    used, loaded, _ = roundtrip(value, tmp_path)
    assert used == "cloudpickle"
    assert loaded.dtype == object and loaded[0] == {"a": 1} and loaded[1] is None


def test_masked_array_keeps_its_mask(tmp_path):
    value = np.ma.masked_array([1, 2, 3], mask=[False, True, False])
    used, loaded, _ = roundtrip(value, tmp_path)
    assert used == "cloudpickle"
    assert loaded.mask.tolist() == [False, True, False]


# -- pandas ------------------------------------------------------------------------------


def is_parquet(path):
    data = path.read_bytes()
    return data[:4] == b"PAR1" and data[-4:] == b"PAR1"


def test_plain_frame_uses_parquet(tmp_path):
    frame = pd.DataFrame(
        {
            "n": [1, 2, 3],
            "x": [0.5, None, 2.5],
            "s": ["a", "b", None],
            "c": pd.Categorical(["u", "v", "u"]),
            "t": pd.date_range("2024-01-01", periods=3, tz="Europe/Paris"),
        },
        index=pd.Index([10, 20, 30], name="id"),
    )
    frame.attrs = {"source": "unit test"}
    used, loaded, path = roundtrip(frame, tmp_path)
    assert used == "parquet" and is_parquet(path)
    pd.testing.assert_frame_equal(loaded, frame)
    assert loaded.attrs == {"source": "unit test"}


def test_object_string_column_keeps_object_dtype(tmp_path):
    frame = pd.DataFrame(
        {"s": pd.Series(["a", None], dtype=object), "i": pd.Series([1, None], dtype=object)}
    )
    frame.index = pd.Index(["r", "q"], dtype=object)
    used, loaded, _ = roundtrip(frame, tmp_path)
    assert used == "parquet"
    pd.testing.assert_frame_equal(loaded, frame)
    assert loaded["i"].tolist() == [1, None] and type(loaded["i"].iloc[0]) is int


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame({"mixed": [1, "two", 3.0]}),
        pd.DataFrame({0: [1], "a": [2]}),  # labels of mixed types
        pd.DataFrame([[1, 2]], columns=["a", "a"]),
        pd.DataFrame({"a": [1]}, index=pd.Index([5], name=3)),
        pd.DataFrame({"lists": [[1, 2], [3]]}),
        pd.DataFrame({"dicts": [{"x": 1}, {"y": 2}]}),
        pd.DataFrame({"z": [1j, 2j]}),
    ],
    ids=["mixed-column", "mixed-labels", "duplicates", "int-index-name", "lists", "dicts", "complex"],
)
def test_frames_parquet_cannot_hold_fall_back_to_pickle(frame, tmp_path):
    used, loaded, _ = roundtrip(frame, tmp_path)
    assert used == "cloudpickle"
    pd.testing.assert_frame_equal(loaded, frame)
    assert [type(v) for v in loaded.iloc[:, 0]] == [type(v) for v in frame.iloc[:, 0]]
    for before, after in ((frame.dtypes.iloc[0], loaded.dtypes.iloc[0]), (frame.index.dtype, loaded.index.dtype)):
        assert type(getattr(before, "tz", None)) is type(getattr(after, "tz", None))  # timezone.utc stays itself


def _flagged():
    return pd.DataFrame({"a": [1.0]}).set_flags(allows_duplicate_labels=False)


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame({"t": np.array(["2020-01-01", "2021-01-01"], dtype="datetime64[s]")}),
        pd.DataFrame({"x": [1.0, 2.0]}, index=pd.date_range("2020", periods=2, freq="D")),
        pd.DataFrame({"m": pd.Series([1, 2.5], dtype=object)}),
        pd.DataFrame({"m": pd.Series([np.int64(1), np.int64(2)], dtype=object)}),
        pd.DataFrame({"m": pd.Series(["a", np.nan], dtype=object)}),
        pd.DataFrame({"c": pd.Categorical([1, 2])}),
        _flagged(),
        pd.DataFrame(np.zeros((2, 2))),
        pd.crosstab(pd.Series([1, 2, 3]), pd.cut(pd.Series([1.0, 2.0, 3.0]), 2)),  # pyarrow cannot read it back
        pd.DataFrame({"t": pd.to_datetime(["2020-01-01"]).tz_localize(datetime.timezone.utc)}),
        pd.DataFrame({"x": [1.0]}, index=pd.to_datetime(["2020-01-01"]).tz_localize(datetime.timezone.utc)),
    ],
    ids=["datetime64-s", "index-freq", "int-beside-float", "numpy-scalars", "nan-in-strings", "int-categories",
         "flags", "range-labels", "interval-column-labels", "utc-column", "utc-index"],
)
def test_frames_a_parquet_copy_would_change_are_pickled_and_come_back_the_same(frame, tmp_path):
    # a cached step's readers get the stored copy where a fresh run hands on the frame itself
    used, loaded, _ = roundtrip(frame, tmp_path)
    assert used == "cloudpickle"
    pd.testing.assert_frame_equal(loaded, frame, check_exact=True, check_freq=True, check_flags=True,
                                  check_index_type=True, check_column_type=True)
    assert [type(v) for v in loaded.iloc[:, 0]] == [type(v) for v in frame.iloc[:, 0]]


def test_a_reader_of_a_cached_frame_sees_what_a_fresh_run_hands_on(tmp_path):
    from conftest import make_notebook

    from nbscale.kernels.runner import RunOptions, run_notebook

    make = ("import numpy as np\nimport pandas as pd\n"
            "df = pd.DataFrame({'t': np.array(['2020-01-01', '2021-01-01'], dtype='datetime64[s]'),\n"
            "                   'm': pd.Series([1, 2.5], dtype=object)})\n"
            "df.index = pd.date_range('2020', periods=2, freq='D')")
    read = "info = [str(df['t'].dtype), str(df.index.freq), repr(df['m'].tolist())]"
    nb = make_notebook(tmp_path, [(make, ["step:a"]), ("# v1\n" + read, ["step:b"])])
    fresh = run_notebook(nb, options=RunOptions(engine="local"))
    make_notebook(tmp_path, [(make, ["step:a"]), ("# v2\n" + read, ["step:b"])])  # only b changes
    again = run_notebook(nb, options=RunOptions(engine="local"))
    assert again.step("a")["cached"] and not again.step("b")["cached"]
    assert again.load("b")["info"] == fresh.load("b")["info"] == ["datetime64[s]", "<Day>", "[1, 2.5]"]


@pytest.mark.parametrize(
    "attrs",
    [{"units": ("m", "s")}, {2024: "year"}, {"scale": np.float64(1.5)}, {"nested": {"k": (1, 2)}}],
    ids=["tuple", "int-key", "numpy-scalar", "nested-tuple"],
)
def test_attrs_json_would_change_are_pickled_and_come_back_the_same(attrs, tmp_path):
    # the Parquet copy keeps attrs as JSON: a tuple would come back a list, a key 2024 as "2024"
    frame = pd.DataFrame({"a": [1.0, 2.0]})
    frame.attrs = attrs
    used, loaded, _ = roundtrip(frame, tmp_path)
    assert used == "cloudpickle"
    assert loaded.attrs == attrs and repr(loaded.attrs) == repr(attrs)


def test_attrs_json_gives_back_unchanged_keep_the_frame_on_parquet(tmp_path):
    frame = pd.DataFrame({"a": [1.0, 2.0]})
    frame.attrs = {"units": ["m", "s"], "meta": {"n": 1, "x": 0.5, "ok": True, "none": None}}
    used, loaded, _ = roundtrip(frame, tmp_path)
    assert used == "parquet"
    assert repr(loaded.attrs) == repr(frame.attrs)


def _levels(index):
    """An index as a reader sees it: each level's dtype, values and their types, freq, and codes."""
    if not isinstance(index, pd.MultiIndex):
        return [(str(index.dtype), list(index), [type(v) for v in index])]
    return [(str(level.dtype), list(level), [type(v) for v in level], getattr(level, "freq", None), codes.tolist())
            for level, codes in zip(index.levels, index.codes)]


def _rows_of(frame):
    return frame[frame["x"] < 2]  # its index keeps the levels of the rows left out


_MI = pd.MultiIndex
_SECONDS = pd.to_datetime(["2020-01-01", "2020-01-02"]).as_unit("s")
LOSSY_LEVELS = {
    "unused-levels": _rows_of(pd.DataFrame({"x": [1.0, 2.0, 3.0]},
                                           index=_MI.from_arrays([["a", "b", "c"], [1, 2, 3]]))),
    "datetime64-s-level": pd.DataFrame({"x": [1.0, 2.0]}, index=_MI.from_arrays([_SECONDS, [1, 2]])),
    "int-beside-float-level": pd.DataFrame({"x": [1.0, 2.0]},
                                           index=_MI.from_arrays([pd.Index([1, 2.5], dtype=object), [0, 1]])),
    "numpy-scalar-level": pd.DataFrame(
        {"x": [1.0, 2.0]}, index=_MI.from_arrays([pd.Index([np.int64(1), np.int64(2)], dtype=object), [0, 1]])),
    "object-bool-level": pd.DataFrame({"x": [1.0, 2.0]},
                                      index=_MI.from_arrays([pd.Index([True, False], dtype=object), [0, 1]])),
    "level-freq": pd.DataFrame({"x": [1.0, 2.0]}, index=_MI.from_arrays([pd.date_range("2020", periods=2), [0, 1]])),
    "unsorted-levels": pd.DataFrame({"x": [1.0, 2.0]}, index=_MI(levels=[["b", "a"], [0, 1]], codes=[[0, 1], [0, 1]])),
    "unused-column-levels": pd.DataFrame(
        np.arange(6).reshape(2, 3), columns=_MI.from_tuples([("a", "x"), ("a", "y"), ("b", "x")])).iloc[:, :2],
}


@pytest.mark.parametrize("case", sorted(LOSSY_LEVELS))
def test_multiindex_levels_a_parquet_copy_would_change_are_pickled_and_come_back_the_same(case, tmp_path):
    # Parquet keeps each row's values; pandas makes the levels again from those it reads
    frame = LOSSY_LEVELS[case]
    used, loaded, _ = roundtrip(frame, tmp_path)
    assert used == "cloudpickle"
    pd.testing.assert_frame_equal(loaded, frame, check_exact=True, check_freq=True)
    assert _levels(loaded.index) == _levels(frame.index) and _levels(loaded.columns) == _levels(frame.columns)


SAFE_LEVELS = {
    "str-and-int": pd.DataFrame({"x": [1.0, 2.0]}, index=_MI.from_arrays([["a", "b"], [1, 2]], names=["k", "n"])),
    "missing-value": pd.DataFrame({"x": [1.0, 2.0, 3.0]}, index=_MI.from_arrays([["a", None, "b"], [0, 1, 2]])),
    "categorical-unused-category": pd.DataFrame(
        {"x": [1.0, 2.0]}, index=_MI.from_arrays([pd.Categorical(["a", "b"], categories=["b", "a", "c"]), [0, 1]])),
    "tz-aware": pd.DataFrame({"x": [1.0, 2.0]},
                             index=_MI.from_arrays([_SECONDS.as_unit("ns").tz_localize("UTC"), [0, 1]])),
    "columns": pd.DataFrame(np.arange(6).reshape(2, 3), columns=_MI.from_tuples([("a", 1), ("a", 2), ("b", 1)])),
    "datetime64-s-column-level": pd.DataFrame(np.arange(4).reshape(2, 2),  # kept in pandas' metadata
                                              columns=_MI.from_arrays([["a", "b"], _SECONDS])),
}


@pytest.mark.parametrize("case", sorted(SAFE_LEVELS))
def test_multiindex_frames_parquet_gives_back_unchanged_stay_on_parquet(case, tmp_path):
    frame = SAFE_LEVELS[case]
    used, loaded, _ = roundtrip(frame, tmp_path)
    assert used == "parquet"
    pd.testing.assert_frame_equal(loaded, frame, check_exact=True, check_freq=True)
    assert _levels(loaded.index) == _levels(frame.index) and _levels(loaded.columns) == _levels(frame.columns)


def test_a_reader_of_a_cached_multiindex_frame_sees_the_levels_a_fresh_run_hands_on(tmp_path):
    from conftest import make_notebook

    from nbscale.kernels.runner import RunOptions, run_notebook

    make = ("import pandas as pd\n"
            "df = pd.DataFrame({'x': [1.0, 2.0, 3.0]}, index=pd.MultiIndex.from_arrays([['a', 'b', 'c'], [1, 2, 3]]))\n"
            "df = df[df.x < 2]")
    read = "levels = list(df.index.levels[0])"
    nb = make_notebook(tmp_path, [(make, ["step:a"]), ("# v1\n" + read, ["step:b"])])
    fresh = run_notebook(nb, options=RunOptions(engine="local"))
    make_notebook(tmp_path, [(make, ["step:a"]), ("# v2\n" + read, ["step:b"])])  # only b changes
    again = run_notebook(nb, options=RunOptions(engine="local"))
    assert again.step("a")["cached"] and not again.step("b")["cached"]
    assert again.load("b")["levels"] == fresh.load("b")["levels"] == ["a", "b", "c"]


@pytest.mark.parametrize(
    "columns",
    [pd.MultiIndex.from_tuples([("a", "x"), ("a", "y"), ("b", "x")]), pd.Index([0, 1, 2])],
    ids=["multiindex", "int-labels"],
)
def test_non_string_column_labels_round_trip(columns, tmp_path):
    # Recent pyarrow restores these from its pandas metadata; older ones need the fallback.
    frame = pd.DataFrame(np.arange(6).reshape(2, 3), columns=columns)
    used, loaded, _ = roundtrip(frame, tmp_path)
    assert used in ("parquet", "cloudpickle")
    pd.testing.assert_frame_equal(loaded, frame)


@pytest.mark.parametrize("name", ["price", 3, None])
def test_series_keeps_name_and_index(name, tmp_path):
    series = pd.Series([1.5, 2.5], index=pd.Index(["a", "b"], name="k"), name=name)
    used, loaded, path = roundtrip(series, tmp_path)
    assert used == "parquet" and is_parquet(path)
    assert isinstance(loaded, pd.Series)
    pd.testing.assert_series_equal(loaded, series)


def test_series_with_tuple_name_falls_back(tmp_path):
    series = pd.Series([1, 2], name=("a", 1))
    used, loaded, _ = roundtrip(series, tmp_path)
    assert used == "cloudpickle"
    pd.testing.assert_series_equal(loaded, series)


# -- scikit-learn ------------------------------------------------------------------------


def test_fitted_estimator_uses_joblib(tmp_path):
    import joblib
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    used, loaded, path = roundtrip(model, tmp_path)
    assert used == "joblib"
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(joblib.load(path).coef_, model.coef_)


def test_estimator_holding_a_lambda_falls_back_to_cloudpickle(tmp_path):
    from sklearn.preprocessing import FunctionTransformer

    model = FunctionTransformer(func=lambda x: x * 2).fit(np.ones((2, 2)))
    used, loaded, _ = roundtrip(model, tmp_path)
    assert used == "cloudpickle"
    np.testing.assert_array_equal(loaded.transform(np.ones((1, 2))), [[2.0, 2.0]])


# -- cloudpickle -------------------------------------------------------------------------


def test_lambdas_closures_and_dicts_use_cloudpickle(tmp_path):
    offset = 41

    def add(x):
        return x + offset

    value = {"add": add, "square": lambda x: x * x, "data": {"k": [1, 2]}}
    used, loaded, _ = roundtrip(value, tmp_path)
    assert used == "cloudpickle"
    assert loaded["add"](1) == 42 and loaded["square"](3) == 9
    assert loaded["data"] == {"k": [1, 2]}


@pytest.mark.parametrize(
    "make, type_name",
    [
        (lambda: sqlite3.connect(":memory:"), "sqlite3.Connection"),
        (threading.Lock, "_thread.lock"),
        (lambda: {"lock": threading.Lock()}, "dict"),
    ],
)
def test_unpicklable_value_names_variable_type_and_step(make, type_name):
    with pytest.raises(MarshalError) as info:
        marshal.dump_value(make(), io.BytesIO(), variable="conn", step="train")
    message = str(info.value)
    assert f"'conn' of type {type_name} " in message
    assert "step 'train'" in message
    assert info.value.variable == "conn" and info.value.type_name == type_name


def test_unknown_marshaller_on_load():
    with pytest.raises(PluginError, match="no-such.*installed: numpy, parquet"):
        marshal.load_value(io.BytesIO(b""), "no-such")


def test_plain_values_do_not_import_numpy_or_pandas():
    code = textwrap.dedent(
        """
        import io, sys
        from nbscale.kernels import marshal
        marshal.dump_value({"a": [1, 2]}, io.BytesIO(), variable="a", step="s")
        print(sorted(m for m in ("numpy", "pandas", "sklearn") if m in sys.modules))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# -- groups ------------------------------------------------------------------------------


def test_group_keeps_shared_references():
    x = np.arange(3)
    y = {"k": 1}
    values = {"a": [x, y], "x": x, "y": y}
    buffer = io.BytesIO()
    marshal.dump_group(values, buffer, step="prep")
    buffer.seek(0)
    loaded = marshal.load_group(buffer)
    assert loaded["a"][0] is loaded["x"] and loaded["a"][1] is loaded["y"]
    loaded["y"]["k"] = 2
    assert loaded["a"][1]["k"] == 2


def test_group_error_names_the_culprit():
    with pytest.raises(MarshalError) as info:
        marshal.dump_group({"ok": [1], "lock": threading.Lock()}, io.BytesIO(), step="prep")
    assert "'lock' of type _thread.lock" in str(info.value)
    assert "step 'prep'" in str(info.value)


# -- entry-point plug-ins ----------------------------------------------------------------

PLUGIN = '''
import json

import numpy as np

from nbscale.kernels.marshal import Marshaller


class JsonIntArrays(Marshaller):
    name = "json-ints"
    suffix = ".json"

    def can_handle(self, value):
        return isinstance(value, np.ndarray) and value.dtype.kind == "i" and value.ndim == 1

    def dump(self, value, fileobj):
        fileobj.write(json.dumps(value.tolist()).encode())

    def load(self, fileobj):
        return np.array(json.loads(fileobj.read()))


class Celsius:
    def __init__(self, degrees):
        self.degrees = degrees


class CelsiusMarshaller(Marshaller):
    name = "celsius"
    suffix = ".txt"

    def can_handle(self, value):
        return isinstance(value, Celsius)

    def dump(self, value, fileobj):
        fileobj.write(str(value.degrees).encode())

    def load(self, fileobj):
        return Celsius(float(fileobj.read()))


CELSIUS = CelsiusMarshaller()
'''

ENTRY_POINTS = """
[nbscale.marshallers]
json-ints = fakeplug:JsonIntArrays
celsius = fakeplug:CELSIUS
broken = fakeplug:does_not_exist
"""


@pytest.fixture
def fake_plugin(tmp_path, monkeypatch):
    (tmp_path / "fakeplug.py").write_text(PLUGIN)
    dist = tmp_path / "fakeplug-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(marshal, "_ordered", None)  # restored afterwards: the plug-in goes
    monkeypatch.setattr(marshal, "registry", marshal.registry)
    monkeypatch.delitem(sys.modules, "fakeplug", raising=False)
    with pytest.warns(UserWarning, match="'broken'"):
        marshal.reload_marshallers()
    return sys.modules["fakeplug"]


def test_plugins_come_before_builtins(fake_plugin, tmp_path):
    names = [m.name for m in marshal.marshallers()]
    assert names[:2] == ["json-ints", "celsius"]
    assert names[2:] == ["numpy", "parquet", "joblib", "cloudpickle"]

    used, loaded, path = roundtrip(np.array([1, 2, 3]), tmp_path, "ints")
    assert used == "json-ints" and path.read_text() == "[1, 2, 3]"
    np.testing.assert_array_equal(loaded, [1, 2, 3])

    used, loaded, _ = roundtrip(fake_plugin.Celsius(21.5), tmp_path, "temp")
    assert used == "celsius" and loaded.degrees == 21.5

    used, _, _ = roundtrip(np.array([1.0, 2.0]), tmp_path, "floats")
    assert used == "numpy"


def test_a_module_another_thread_is_still_importing_is_not_loaded_yet(tmp_path, monkeypatch):
    # a step's first `import pandas` while a store write or a profile looks for pandas' classes
    from nbscale.kernels.marshal import loaded_module

    (tmp_path / "half_imported.py").write_text(
        "import threading\nreached = threading.Event()\nrelease = threading.Event()\n"
        "import sys\nsys.modules[__name__].reached.set()\nrelease.wait(30)\nclass Frame:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importer = threading.Thread(target=__import__, args=("half_imported",))
    importer.start()

    def half_done():  # (the module is in sys.modules before its first line has run)
        event = getattr(sys.modules.get("half_imported"), "reached", None)
        return event is not None and event.is_set()

    try:
        wait_for(half_done, "the import to be half done")
        assert not hasattr(sys.modules["half_imported"], "Frame")  # what a plain sys.modules look-up got
        assert loaded_module("half_imported") is None
    finally:
        release = getattr(sys.modules.get("half_imported"), "release", None)
        if release is not None:
            release.set()
        importer.join(30)
    assert loaded_module("half_imported").Frame
    assert loaded_module("not_imported_anywhere") is None
    del sys.modules["half_imported"]
