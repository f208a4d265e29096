"""pandas' Parquet reads and writes (opened by pyarrow in C++) reach the dependency recorder."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pandas as pd

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
