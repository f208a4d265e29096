"""The digest of the nbscale code a process runs (kernels/own_code.py)."""

from __future__ import annotations

import os
import subprocess
import sys

from nbscale.kernels import own_code


def package(tmp_path):
    root = tmp_path / "pkg"
    (root / "sub" / "__pycache__").mkdir(parents=True)
    (root / "a.py").write_text("x = 1\n")
    (root / "sub" / "b.py").write_text("y = 2\n")
    (root / "sub" / "__pycache__" / "b.cpython-311.pyc").write_bytes(b"\0" * 8)
    (root / "data.json").write_text("{}")
    return root


def test_the_digest_changes_with_a_python_file_and_with_nothing_else(tmp_path):
    root = package(tmp_path)

    def digest(recursive=True):
        return own_code.code_digest([("pkg", str(root), recursive)])

    first = digest()
    assert digest() == first
    (root / "sub" / "__pycache__" / "b.cpython-311.pyc").write_bytes(b"\1" * 9)  # bytecode: not the code
    (root / "data.json").write_text('{"a": 1}')
    assert digest() == first
    (root / "sub" / "b.py").write_text("y = 3\n")  # same size, another mtime: another file
    os.utime(root / "sub" / "b.py", ns=(1, 1))
    changed = digest()
    assert changed != first
    (root / "sub" / "c.py").write_text("")
    assert digest() != changed
    # not recursive: the subfolders' files are no part of it
    flat = digest(recursive=False)
    (root / "sub" / "b.py").write_text("y = 44\n")
    assert digest(recursive=False) == flat and digest() != changed


def test_the_digest_names_its_package_so_that_one_file_cannot_pass_for_another(tmp_path):
    root = package(tmp_path)
    assert own_code.code_digest([("one", str(root), True)]) != own_code.code_digest([("two", str(root), True)])
    assert own_code.code_digest([("one", str(tmp_path / "missing"), True)]) == own_code.code_digest([])


def test_a_process_takes_it_of_the_run_times_packages_as_it_imports_them():
    folders = {label: recursive for label, _, recursive in own_code._package_folders()}
    assert folders == {"nbscale": False, "nbscale.compiler": True, "nbscale.kernels": True}
    out = subprocess.run([sys.executable, "-c", "from nbscale.kernels import own_code as c; "
                          "print(c.IMPORTED == c.on_disk(), c.IMPORTED)"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", own_code.IMPORTED]  # another process of the same code: the same digest
