"""kernels/steplineage.py: the lineage record a step run leaves in the run store — credentials out
of URLs, lists capped with the count left out, long parameter values cut, never the values."""

from __future__ import annotations

import pytest
from conftest import make_notebook

from nbscale.kernels.contract import run_store_path
from nbscale.kernels.runner import RunOptions, run_notebook
from nbscale.kernels.runstore import RunStore
from nbscale.kernels.steplineage import MAX_PARAMETER_CHARS, MAX_PATHS, public_url


@pytest.mark.parametrize(("url", "shown"), [
    ("s3://AKIAKEY:s3cr3t@bucket/prefix", "s3://bucket/prefix"),
    ("gs://bucket/p?X-Goog-Signature=abc&token=t0k#frag", "gs://bucket/p"),
    ("https://user:pw@example.org:8443/store", "https://example.org:8443/store"),
    ("memory://user:secret@bucket/store", "memory://bucket/store"),
    ("/home/me/.nbscale/artifacts", "/home/me/.nbscale/artifacts"),
    ("relative/folder", "relative/folder"),
])
def test_public_urls_keep_no_credentials(url, shown):
    assert public_url(url) == shown


def records(nb, run_id) -> dict:
    store = RunStore(run_store_path(nb))
    try:
        return {s["step"]: s["lineage"] for s in store.get_run(run_id)["steps"]}
    finally:
        store.close()


def test_files_in_the_notebooks_folder_are_kept_before_those_elsewhere(tmp_path):
    # a kernel (or a test run) has many modules from elsewhere loaded: the folder's own are not the ones cut
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for i in range(MAX_PATHS + 5):
        (elsewhere / f"far-{i:03d}.txt").write_text(str(i))
    folder = tmp_path / "nb"
    folder.mkdir()
    (folder / "near.txt").write_text("1")
    nb = make_notebook(folder, [(f"import glob\nfar = [open(p).read() for p in sorted(glob.glob({str(elsewhere)!r} + "
                                 "'/far-*.txt'))]\nnear = open('near.txt').read()", ["step:read"])])
    result = run_notebook(nb, {}, options=RunOptions(engine="local"))
    assert result.status == "succeeded", result.steps
    record = records(nb, result.run_id)["read"]
    assert "near.txt" in record["files_read"] and record["truncated"]["files_read"] == 6


def test_a_step_reading_many_files_keeps_a_capped_record(tmp_path):
    for i in range(MAX_PATHS + 12):
        (tmp_path / f"part-{i:03d}.txt").write_text(str(i))
    nb = make_notebook(tmp_path, [
        (f"names = [{'x' * 500!r}]", ["parameters"]),
        ("import glob\ntotal = sum(int(open(p).read()) for p in sorted(glob.glob('part-*.txt')))\nn = len(names)",
         ["step:read"]),
        ("mean = total / n", ["step:use"]),
        ("mean", ["metrics"]),
    ])
    result = run_notebook(nb, {}, options=RunOptions(engine="local"))
    assert result.status == "succeeded", result.steps
    record = records(nb, result.run_id)["read"]
    assert len(record["files_read"]) == MAX_PATHS and record["truncated"]["files_read"] == 12
    assert all(path.startswith("part-") and digest for path, digest in record["files_read"].items())
    assert len(record["parameters"]["names"]) == MAX_PARAMETER_CHARS + 1  # cut, and said so
    assert record["truncated"]["parameters"] == ["names"]
    assert set(record["outputs"]) == {"total", "n"}
    assert all(digest.startswith(("xxh3_128:", "blake2b:")) for digest in record["outputs"].values())
    assert "python" in record["packages"] and "error" not in record


def test_a_failed_step_records_its_inputs_and_parameters_and_no_outputs(tmp_path):
    nb = make_notebook(tmp_path, [("k = 3", ["parameters"]), ("x = k + 1", ["step:a"]),
                                  ("y = x / (k - 3)", ["step:fail"])])
    result = run_notebook(nb, {}, options=RunOptions(engine="local"))
    assert result.status == "failed"
    both = records(nb, result.run_id)
    record = both["fail"]
    assert record["outputs"] == {} and record["parameters"] == {"k": 3}
    assert record["inputs"] == {"x": {"step": "a", "digest": both["a"]["outputs"]["x"]}}
