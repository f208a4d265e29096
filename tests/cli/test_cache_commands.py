"""`nbscale cache ls / verify / gc / why` on a real store written by real runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from click.testing import CliRunner
from conftest import make_notebook, wait_for

from nbscale.cli import main


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def notebook(tmp_path):
    (tmp_path / "data.csv").write_text("4")
    return make_notebook(tmp_path, [("n = int(open('data.csv').read())", ["step:read"]), ("m = n * 2", ["step:use"])])


def test_ls_verify_and_gc(tmp_path):
    nb = notebook(tmp_path)
    assert cli("run", nb, "--engine", "local").exit_code == 0
    listed = cli("cache", "ls", nb)
    assert listed.exit_code == 0 and "read" in listed.output and "use" in listed.output
    assert "2 stored result(s)" in listed.output
    assert cli("cache", "verify", nb).exit_code == 0
    stored = next(p for p in (tmp_path / ".nbscale" / "artifacts").rglob("*") if p.suffix == ".npy" or
                  (p.is_file() and p.name != "manifest.json"))
    data = bytearray(stored.read_bytes())
    data[-1] ^= 0xFF
    stored.write_bytes(bytes(data))
    damaged = cli("cache", "verify", nb)
    assert damaged.exit_code == 1 and "1 damaged result(s)" in damaged.output
    dry = cli("cache", "gc", nb, "--keep-last", "0", "--dry-run")
    assert "would remove" in dry.output and "2 result(s)" in dry.output
    assert "2 stored result(s)" in cli("cache", "ls", nb).output
    assert cli("cache", "gc", nb, "--keep-last", "0").exit_code == 0
    assert "the store is empty" in cli("cache", "ls", nb).output
    assert cli("cache", "gc", nb, "--older-than", "soon").exit_code == 2
    assert cli("cache", "gc", nb).exit_code == 2


def test_gc_keep_last_keeps_the_results_the_last_run_reused(tmp_path):
    # runs with 1, 2, 1: the last one reused the 1 results without loading them, and gc kept the 2 ones
    nb = make_notebook(tmp_path, [("C = 1", ["parameters"]), ("x = C", ["step:load"]), ("y = x + 1", ["step:train"])])
    for c in (1, 2, 1):
        assert cli("run", nb, "--engine", "local", "-p", f"C={c}").exit_code == 0
        for folder in (tmp_path / ".nbscale" / "artifacts").glob("*/*"):  # apart by more than the clock's tick
            os.utime(folder, (os.stat(folder).st_mtime - 10,) * 2)
    assert cli("cache", "gc", nb, "--keep-last", "1").exit_code == 0
    again = cli("run", nb, "--engine", "local", "-p", "C=1")
    assert again.exit_code == 0 and all(re.search(rf"^{s} +cached", again.output, re.M) for s in ("load", "train"))


def test_gc_spares_what_a_run_in_progress_reads_later(tmp_path):
    """`cache gc --keep-last 0` while a run sleeps in `wait`: `b` (cached, read by `c`) is read from the
    store only when the run comes to it, and so is `a` (which only `b` reads) if `b` must run again.
    gc removed both: `b` ran again and failed ("no artifact for sha256:..."), and the run with it. Now gc
    keeps what the run used since it started (`a`); `b` runs again from it, with the right values."""
    from nbscale.kernels.contract import RUNNING
    from nbscale.kernels.runner import default_run_store

    nb = make_notebook(tmp_path, [("S = 0", ["parameters"]), ("a = list(range(10))", ["step:a"]),
                                  ("import time\ntime.sleep(S)\nw = S", ["step:wait"]),
                                  ("b = sum(a) * 2", ["step:b"]), ("c = b + w", ["step:c"]), ("c", ["metrics"])])
    assert cli("run", nb, "--engine", "local").exit_code == 0
    for folder in (tmp_path / ".nbscale" / "artifacts").glob("*/*"):  # used an hour ago
        os.utime(folder, (os.stat(folder).st_mtime - 3600,) * 2)
    run = subprocess.Popen([sys.executable, "-m", "nbscale", "run", str(nb), "--engine", "local", "-p", "S=4",
                            "--output", "json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        def waiting():
            with default_run_store(nb) as store:
                rows = store.list_runs(limit=1)
                steps = {s["step"]: s["status"] for s in store.get_run(rows[0]["id"])["steps"]} if rows else {}
            return steps.get("wait") == RUNNING
        wait_for(waiting, "the run to sleep in its step `wait`")
        gc = cli("cache", "gc", nb, "--keep-last", "0")
        out, _ = run.communicate(timeout=120)
    finally:
        run.kill()
        run.wait()
    result = json.loads(out)
    assert result["status"] == "succeeded", result
    assert gc.exit_code == 0, gc.output
    assert re.search(r"^kept a \(.*still running and may read it$", gc.output, re.M), gc.output
    assert "removed b (" in gc.output and "1 result(s) kept for runs in progress" in gc.output
    assert {s["name"]: s["status"] for s in result["steps"]} == {
        "a": "cached", "wait": "succeeded", "b": "succeeded", "c": "succeeded", "metrics": "succeeded"}
    assert result["metrics"] == {"c": 94}
    # once the run ended, nothing is kept for it
    after = cli("cache", "gc", nb, "--keep-last", "0", "--dry-run")
    assert "kept" not in after.output and "would remove a (" in after.output


def test_verify_while_gc_removes_is_no_traceback(tmp_path):
    # verify listed the results, gc removed them, and verify's look-up of one raised ArtifactNotFound:
    # a traceback and exit 1 ("damaged") for a store that is sound
    from nbscale.kernels.store import ArtifactStore

    nb = notebook(tmp_path)
    store = ArtifactStore(str(tmp_path / ".nbscale" / "artifacts"))
    for i in range(2500):
        store.put(f"sha256:{i:064x}", {"w": i}, [], f"s{i % 5}")
    command = [sys.executable, "-m", "nbscale", "cache"]
    verify = subprocess.Popen([*command, "verify", str(nb)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    gc = subprocess.Popen([*command, "gc", str(nb), "--keep-last", "0"], stdout=subprocess.DEVNULL)
    out, err = verify.communicate(timeout=120)
    assert gc.wait(timeout=120) == 0
    assert "Traceback" not in err and verify.returncode == 0, err[-2000:]
    assert out.endswith("0 damaged result(s)\n")
    assert "the store is empty" in cli("cache", "ls", nb).output


def test_gc_of_a_store_given_as_a_project_folder_leaves_other_programs_folders(tmp_path):
    # `--store .`: every folder two levels down holding a manifest.json (a browser extension, a web
    # app's public/) was an "unreadable" result, removed by gc whatever --keep-last said
    nb = notebook(tmp_path)
    assert cli("run", nb, "--engine", "local", "--store", str(tmp_path)).exit_code == 0
    extension = tmp_path / "ext" / "chrome"
    extension.mkdir(parents=True)
    (extension / "manifest.json").write_text('{"manifest_version": 3, "name": "mine"}')
    (extension / "background.js").write_text("console.log(1)")
    damaged = tmp_path / "sha256" / ("0f" * 32)  # a folder of a key, its manifest cut short: the store's
    damaged.mkdir(parents=True)
    (damaged / "manifest.json").write_text('{"format": "nbscale.artif')
    listed = cli("cache", "ls", nb, "--store", tmp_path)
    assert "ext/chrome" not in listed.output and "3 stored result(s)" in listed.output, listed.output
    verified = cli("cache", "verify", nb, "--store", tmp_path)
    assert "ext/chrome" not in verified.output and "1 damaged result(s)" in verified.output
    gc = cli("cache", "gc", nb, "--store", tmp_path, "--keep-last", "5")
    assert gc.exit_code == 0 and gc.output.splitlines() == [f"removed ? (sha256/{'0f' * 32}, -)", "1 result(s), 0 B"]
    assert (extension / "background.js").read_text() == "console.log(1)" and not damaged.exists()
    assert cli("cache", "gc", nb, "--store", tmp_path, "--keep-last", "0").exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir() and p.name != ".nbscale") == ["ext", "sha256"]
    assert (extension / "manifest.json").exists()


def test_ls_lists_an_entry_whose_manifest_holds_a_time_or_step_of_another_type(tmp_path):
    nb = notebook(tmp_path)
    assert cli("run", nb, "--engine", "local").exit_code == 0
    first, second = sorted((tmp_path / ".nbscale" / "artifacts").glob("*/*/manifest.json"))
    for path, change in ((first, {"created": "yesterday"}), (second, {"step": ["use"], "created": None})):
        path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    listed = cli("cache", "ls", nb)
    assert listed.exit_code == 0 and listed.exception is None, listed.output
    assert "2 stored result(s)" in listed.output and listed.output.count("created -") == 2
    assert listed.output.count("?") == 1


def test_gc_refuses_an_empty_age(tmp_path):
    # it was taken for no --older-than at all, and gc went on with no age limit
    result = cli("cache", "gc", notebook(tmp_path), "--older-than", "")
    assert result.exit_code == 2
    assert result.output == "error: --older-than '': give a number and a unit, e.g. 30d, 12h, 2w\n"


def test_why_names_the_changed_dependency(tmp_path):
    nb = notebook(tmp_path)
    before = cli("cache", "why", nb, "read")
    assert before.exit_code == 0 and "read: runs" in before.output and "no stored result" in before.output
    assert cli("run", nb, "--engine", "local").exit_code == 0
    assert cli("cache", "why", nb).output.splitlines() == ["read: reused", "use: reused"]
    (tmp_path / "data.csv").write_text("44")
    after = cli("cache", "why", nb)
    assert "read: runs" in after.output and "data.csv" in after.output
    assert "use: runs" in after.output and "comes after read" in after.output
    assert cli("cache", "why", nb, "nope").exit_code == 2
    ran = json.loads(cli("run", nb, "--engine", "local", "--output", "json").output)
    assert [s["status"] for s in ran["steps"]] == ["succeeded", "succeeded"]


def test_gc_on_a_read_only_store_says_so_in_one_line(tmp_path, monkeypatch):
    """A stand-in for a read-only file system (the tests run as root, whom permissions do not stop):
    the store's removal fails as it does there. It printed a traceback and exited 1."""
    import errno

    from nbscale.kernels.store import ArtifactStore

    nb = notebook(tmp_path)
    assert cli("run", nb, "--engine", "local").exit_code == 0

    def read_only(self, key):
        raise OSError(errno.EROFS, "Read-only file system", f"{self.root}/{key}/manifest.json")

    monkeypatch.setattr(ArtifactStore, "remove", read_only)
    result = cli("cache", "gc", nb, "--keep-last", "0")
    assert result.exit_code == 2, result.output
    assert "error: cannot remove" in result.output and "Read-only file system" in result.output
    assert "Traceback" not in result.output


def test_why_writes_control_characters_of_a_file_name_as_escapes(tmp_path):
    # a file name in a cell's text is any text: a terminal must not take it for its own escapes
    name = "\x1b]0;pwned\x07r.txt"
    nb = make_notebook(tmp_path, [(f"open('{name}', 'w').write('h')\nn = 1", ["step:make"]),
                                  (f"open('{name}', 'a').write('x')\nm = n", ["step:append"])])
    out = cli("cache", "why", nb).output
    assert "\\x1b]0;pwned\\x07r.txt" in out and "\x1b" not in out and "\x07" not in out
    graph = cli("graph", nb, "--why", "make", "append").output
    assert "\\x1b]0;pwned\\x07r.txt" in graph and "\x1b" not in graph
