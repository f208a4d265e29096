"""`nbscale cache ls / verify / gc / why` on a real store written by real runs."""

from __future__ import annotations

import json
import os
import re

from click.testing import CliRunner
from conftest import make_notebook

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
