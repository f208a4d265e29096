"""pandas' Parquet reads and writes (opened by pyarrow in C++) reach the dependency recorder."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.dataset as ds
import pyarrow.feather as feather
import pyarrow.fs as pafs
import pyarrow.json as pjson
import pyarrow.orc as orc
import pyarrow.parquet as pq
import pytest

from nbscale.kernels.dependencies import record
from nbscale.kernels.fingerprints import check


def test_parquet_read_and_write_are_recorded_and_a_changed_file_is_seen(tmp_path):
    pd.DataFrame({"x": [1, 2]}).to_parquet(tmp_path / "in.parquet")
    with record(str(tmp_path)) as rec:
        frame = pd.read_parquet(tmp_path / "in.parquet")
        frame.to_parquet(str(tmp_path / "out.parquet"))
    fp = rec.fingerprint()
    assert "in.parquet" in fp["files_read"] and "out.parquet" in fp["files_written"]
    assert check(fp, str(tmp_path)) == []
    pd.DataFrame({"x": [1, 2, 3]}).to_parquet(tmp_path / "in.parquet")
    assert [c.name for c in check(fp, str(tmp_path))] == ["in.parquet"]


def test_parquet_is_seen_when_pyarrow_is_first_imported_inside_the_step(tmp_path):
    """A fresh process: the recorder is installed before pyarrow.parquet is imported."""
    code = textwrap.dedent(f"""
        import json, sys
        from nbscale.kernels.dependencies import record
        with record({str(tmp_path)!r}):
            pass  # the hook and the post-import wrapper are installed
        assert "pyarrow.parquet" not in sys.modules
        with record({str(tmp_path)!r}) as rec:
            import pandas as pd
            pd.DataFrame({{"x": [1]}}).to_parquet("made.parquet")
            pd.read_parquet("made.parquet")
        fp = rec.fingerprint()
        print(json.dumps([sorted(fp["files_read"]), sorted(fp["files_written"])]))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    read, written = json.loads(out.stdout.strip().splitlines()[-1])
    assert written == ["made.parquet"]


def test_a_dataset_folder_counts_as_listed_and_each_file_in_it_as_read(tmp_path, monkeypatch):
    # `pd.read_parquet("parts")`: pyarrow lists the folder and reads its files in C++
    monkeypatch.chdir(tmp_path)
    (tmp_path / "parts" / "year=2024").mkdir(parents=True)
    pd.DataFrame({"a": [1, 2]}).to_parquet(tmp_path / "parts" / "year=2024" / "p1.parquet")
    with record(str(tmp_path)) as rec:
        assert int(pd.read_parquet("parts")["a"].sum()) == 3
    fp = rec.fingerprint()
    assert "parts/year=2024/p1.parquet" in fp["files_read"] and "parts/year=2024" in fp["directories"]
    assert check(fp, str(tmp_path)) == []
    pd.DataFrame({"a": [100]}).to_parquet(tmp_path / "parts" / "year=2024" / "p2.parquet")  # a new part
    assert [c.text for c in check(fp, str(tmp_path))] == ["the listing of parts/year=2024 changed"]
    (tmp_path / "parts" / "year=2024" / "p2.parquet").unlink()
    pd.DataFrame({"a": [5, 6]}).to_parquet(tmp_path / "parts" / "year=2024" / "p1.parquet")  # a part rewritten
    assert [c.name for c in check(fp, str(tmp_path))] == ["parts/year=2024/p1.parquet"]



def _write_formats(folder, a):
    """The same one-column table in each format pyarrow reads, in files named after the format."""
    table = pa.table({"a": [a]})
    pq.write_table(table, folder / "t.parquet")
    feather.write_feather(table, folder / "t.feather")
    orc.write_table(table, folder / "t.orc")
    (folder / "t.csv").write_text(f"a\n{a}\n")
    (folder / "t.json").write_text(f'{{"a": {a}}}\n')
    with pa.OSFile(str(folder / "t.arrow"), "w") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    with pa.OSFile(str(folder / "t.arrows"), "w") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)  # the IPC stream format


def _here():
    """The test's folder as a `SubTreeFileSystem` of the local one: its paths are relative to it."""
    return pafs.SubTreeFileSystem(os.getcwd(), pafs.LocalFileSystem())


READERS = {  # each reads the file of its first word, from the path (a str) the step names it by;
    # looked up as it is called: the wrappers replace the module attributes once a recording starts
    "parquet ParquetFile": lambda p: pq.ParquetFile(p).read(),
    "parquet read_schema": lambda p: pq.read_schema(p),
    "parquet read_metadata": lambda p: pq.read_metadata(p),
    "parquet ParquetDataset": lambda p: pq.ParquetDataset(p).read(),
    "parquet read_pandas": lambda p: pq.read_pandas(p),
    "parquet dataset": lambda p: ds.dataset(p).to_table(),
    "parquet dataset-of-paths": lambda p: ds.dataset([p]).to_table(),
    "csv read_csv": lambda p: pcsv.read_csv(p),
    "csv open_csv": lambda p: pcsv.open_csv(p).read_all(),
    "json read_json": lambda p: pjson.read_json(p),
    "json open_json": lambda p: pjson.open_json(p).read_all(),
    "feather read_table": lambda p: feather.read_table(p),
    "feather read_feather": lambda p: feather.read_feather(p),
    "orc read_table": lambda p: orc.read_table(p),
    "orc ORCFile": lambda p: orc.ORCFile(p).read(),
    "arrow ipc.open_file": lambda p: pa.ipc.open_file(p).read_all(),
    "arrow memory_map": lambda p: pa.ipc.open_file(pa.memory_map(p)).read_all(),
    "arrow input_stream": lambda p: pa.input_stream(p).read(),
    "arrow ipc.RecordBatchFileReader": lambda p: pa.ipc.RecordBatchFileReader(p).read_all(),
    "arrows ipc.RecordBatchStreamReader": lambda p: pa.ipc.RecordBatchStreamReader(p).read_all(),
    "parquet LocalFileSystem.open_input_file":
        lambda p: pq.read_table(pafs.LocalFileSystem().open_input_file(os.path.abspath(p))),
    "csv LocalFileSystem.open_input_stream": lambda p: pcsv.read_csv(pafs.LocalFileSystem().open_input_stream(p)),
    "parquet SubTreeFileSystem.open_input_file": lambda p: pq.read_table(_here().open_input_file(p)),
    "arrows SubTreeFileSystem.open_input_stream": lambda p: pa.ipc.open_stream(_here().open_input_stream(p)).read_all(),
    "parquet read_table-filesystem=SubTreeFileSystem": lambda p: pq.read_table(p, filesystem=_here()),
}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_file_pyarrow_opens_in_cpp_is_a_dependency_and_a_change_is_seen(reader, tmp_path, monkeypatch):
    # `pq.ParquetFile("t.parquet")`, `pyarrow.csv.read_csv("t.csv")`...: no Python `open` to see
    monkeypatch.chdir(tmp_path)
    _write_formats(tmp_path, 1)
    name = "t." + reader.split()[0]
    with record(str(tmp_path)) as rec:
        READERS[reader](name)
    fp = rec.fingerprint()
    assert name in fp["files_read"]
    assert check(fp, str(tmp_path)) == []
    _write_formats(tmp_path, 22)
    assert name in [c.name for c in check(fp, str(tmp_path))]


def _ipc_file(path, table):
    with pa.ipc.new_file(path, table.schema) as writer:
        writer.write_table(table)


def _parquet_writer(path, table):
    with pq.ParquetWriter(path, table.schema) as writer:
        writer.write_table(table)


WRITERS = {
    "csv write_csv": lambda p, t: pcsv.write_csv(t, p),
    "feather write_feather": lambda p, t: feather.write_feather(t, p),
    "orc write_table": lambda p, t: orc.write_table(t, p),
    "parquet ParquetWriter": _parquet_writer,
    "arrow ipc.new_file": _ipc_file,
    "arrow output_stream": lambda p, t: pa.output_stream(p).close(),
    "arrow ipc.RecordBatchFileWriter": lambda p, t: pa.ipc.RecordBatchFileWriter(p, t.schema).close(),
    "arrows ipc.RecordBatchStreamWriter": lambda p, t: pa.ipc.RecordBatchStreamWriter(p, t.schema).close(),
    "csv CSVWriter": lambda p, t: pcsv.CSVWriter(p, t.schema).close(),
    "bin LocalFileSystem.open_output_stream": lambda p, t: pafs.LocalFileSystem().open_output_stream(p).close(),
    "bin SubTreeFileSystem.open_output_stream": lambda p, t: _here().open_output_stream(p).close(),
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_file_pyarrow_writes_in_cpp_is_a_product(writer, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = "out." + writer.split()[0]
    with record(str(tmp_path)) as rec:
        WRITERS[writer](name, pa.table({"a": [1]}))
    assert list(rec.fingerprint()["files_written"]) == [name]


def test_a_file_a_pyarrow_file_system_appends_to_is_a_log_as_with_pythons_open(tmp_path, monkeypatch):
    # `open(p, "a")`: a file the step adds to, not a product (nor a dependency)
    monkeypatch.chdir(tmp_path)
    with record(str(tmp_path)) as rec, pafs.LocalFileSystem().open_append_stream("log.txt") as log:
        log.write(b"one line")
    assert str(tmp_path / "log.txt") in rec.changed_by_step
    fp = rec.fingerprint()
    assert fp["files_written"] == {} and fp["files_read"] == {}


def _write_to_dataset(folder, table, seen):
    pq.write_to_dataset(table, folder, partition_cols=["k"], file_visitor=lambda f: seen.append(f.path))


DATASET_WRITERS = {  # each writes the table into the folder, part files named by pyarrow
    "pandas to_parquet-partition_cols": lambda p, t, seen: t.to_pandas().to_parquet(p, partition_cols=["k"]),
    "parquet write_to_dataset": lambda p, t, seen: pq.write_to_dataset(t, p),
    "parquet write_to_dataset-with-file_visitor": _write_to_dataset,
    "parquet write_dataset": lambda p, t, seen: ds.write_dataset(t, p, format="parquet"),
    "csv write_dataset-hive": lambda p, t, seen: ds.write_dataset(t, p, format="csv", partitioning=["k"],
                                                                  partitioning_flavor="hive"),
    "feather write_dataset-filesystem=SubTreeFileSystem":
        lambda p, t, seen: ds.write_dataset(t, p, format="feather", filesystem=_here()),
}


@pytest.mark.parametrize("writer", sorted(DATASET_WRITERS))
def test_the_files_a_pyarrow_dataset_writer_writes_are_its_products(writer, tmp_path, monkeypatch):
    # `to_parquet("out", partition_cols=[...])`: the folder deleted, the writer must run again
    monkeypatch.chdir(tmp_path)
    seen = []  # a file_visitor of the step's own still sees every file
    with record(str(tmp_path)) as rec:
        DATASET_WRITERS[writer]("out", pa.table({"a": [1, 2], "k": ["x", "y"]}), seen)
    fp = rec.fingerprint()
    written = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert written and sorted(fp["files_written"]) == written
    assert len(seen) == (2 if "file_visitor" in writer else 0)
    assert check(fp, str(tmp_path)) == []
    shutil.rmtree(tmp_path / "out")
    assert sorted(c.name for c in check(fp, str(tmp_path))) == written


def test_a_parquet_metadata_file_and_the_files_it_names_are_dependencies(tmp_path, monkeypatch):
    # `ds.parquet_dataset("data/_metadata")`: pyarrow reads `_metadata`, then the files it names
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()

    def write(a):
        pq.write_table(pa.table({"a": [a]}), tmp_path / "data" / "p.parquet")
        metadata = pq.read_metadata(tmp_path / "data" / "p.parquet")
        metadata.set_file_path("p.parquet")
        metadata.write_metadata_file(str(tmp_path / "data" / "_metadata"))

    write(1)
    with record(str(tmp_path)) as rec:
        assert ds.parquet_dataset("data/_metadata").to_table()["a"].to_pylist() == [1]
    fp = rec.fingerprint()
    assert {"data/_metadata", "data/p.parquet"} <= set(fp["files_read"])
    assert check(fp, str(tmp_path)) == []
    pq.write_table(pa.table({"a": [22]}), tmp_path / "data" / "p.parquet")  # the data file alone
    assert "data/p.parquet" in [c.name for c in check(fp, str(tmp_path))]


def test_isinstance_and_pickling_hold_for_objects_pyarrow_makes_itself(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f.bin").write_bytes(b"x")
    with record(str(tmp_path)):  # the wrappers are installed
        stream = pa.input_stream("f.bin")  # an OSFile made by pyarrow, of the original class
        assert isinstance(stream, pa.OSFile) and issubclass(type(stream), pa.OSFile)
        assert isinstance(pafs.FileSystem.from_uri(str(tmp_path))[0], pafs.LocalFileSystem)
        local, here = pafs.LocalFileSystem(), _here()
        assert isinstance(local, pafs.FileSystem) and isinstance(here, pafs.SubTreeFileSystem)
        assert isinstance(pickle.loads(pickle.dumps(local)), pafs.LocalFileSystem)
        assert pickle.loads(pickle.dumps(here)).base_path == here.base_path

        class Mine(pa.OSFile):  # a user's subclass is a class as any other
            pass

        assert not isinstance(stream, Mine) and isinstance(Mine("f.bin"), pa.OSFile)


def test_a_missing_file_a_pyarrow_reader_fails_on_is_a_dependency_once_it_appears(tmp_path, monkeypatch):
    # seen before pyarrow opens it, as Python's `open` is: `try: pq.ParquetFile(...)` / `except`
    monkeypatch.chdir(tmp_path)
    with record(str(tmp_path)) as rec, pytest.raises(FileNotFoundError):
        pq.ParquetFile("later.parquet")
    fp = rec.fingerprint()
    assert check(fp, str(tmp_path)) == []
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "later.parquet")
    assert [c.name for c in check(fp, str(tmp_path))] == ["later.parquet"]


def test_a_uri_of_another_file_system_is_no_local_file(tmp_path, monkeypatch):
    # (pyarrow's `mock://` file system needs no network; `s3://`, `gs://`... are named the same way)
    monkeypatch.chdir(tmp_path)
    with record(str(tmp_path)) as rec, pytest.raises(FileNotFoundError):
        pq.read_table("mock:///t.parquet")
    assert rec.fingerprint()["files_read"] == {}


@pytest.mark.parametrize("read", [
    lambda dd, db, da: dd.read_csv("data/*.csv").x.sum().compute(),
    lambda dd, db, da: db.read_text("data/*.csv").compute(),
    lambda dd, db, da: dd.read_csv(["data/a.csv", "data/b.csv"]).x.sum().compute(),
    lambda dd, db, da: dd.read_parquet("parts").x.sum().compute(),
    lambda dd, db, da: dd.read_csv("data/*.csv").x.sum().compute(),  # (data/.b.csv: see `hidden`)
    lambda dd, db, da: db.read_text("~/data/b.csv").compute(),
], ids=["read_csv-glob", "read_text-glob", "read_csv-list", "read_parquet-folder", "read_csv-hidden",
        "read_text-home"])
def test_the_files_a_dask_reader_names_are_read_by_the_step_that_calls_it(read, tmp_path, monkeypatch):
    """Dask's tasks open them, in threads (or processes) the step's recorder does not watch."""
    import dask.array as da
    import dask.bag as db
    import dask.dataframe as dd

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))  # (`~/data`: fsspec reads it as the home folder's)
    hidden = "hidden" in os.environ.get("PYTEST_CURRENT_TEST", "")
    # fsspec's glob matches hidden files, Python's does not (the first file is read here, to sample it)
    a, b = ("+a.csv", ".b.csv") if hidden else ("a.csv", "b.csv")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / a).write_text("x\n1\n")
    (tmp_path / "data" / b).write_text("x\n2\n")
    (tmp_path / "parts").mkdir()
    for i in range(2):
        pd.DataFrame({"x": [i]}).to_parquet(tmp_path / "parts" / f"{i}.parquet")
    with record(str(tmp_path)) as rec:
        read(dd, db, da)
    fp = rec.fingerprint()
    assert check(fp, str(tmp_path)) == []
    (tmp_path / "data" / b).write_text("x\n100\n")
    pd.DataFrame({"x": [100, 200]}).to_parquet(tmp_path / "parts" / "1.parquet")
    changed = {c.name for c in check(fp, str(tmp_path))}
    assert changed & {f"data/{b}", "parts/1.parquet"}, fp["files_read"]
