"""Where an output file goes: the file its path names, kept what it is (compiler/output_files.py)."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from nbscale.compiler.output_files import output_place, written_to
from nbscale.compiler.targets import write_atomically


def test_a_new_or_regular_file_is_renamed_into_place_keeping_its_mode(tmp_path):
    new = tmp_path / "new.json"
    write_atomically(new, "one")
    assert new.read_text() == "one" and output_place(new) == (new, False)
    os.chmod(new, 0o640)
    write_atomically(new, "two")
    assert new.read_text() == "two" and stat.S_IMODE(new.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["new.json"]  # no temporary file left


def test_a_symlink_is_followed_and_stays_a_link(tmp_path):
    """Renamed over, the link became a regular file and the file it named kept its old text."""
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    write_atomically(link, "new")
    assert link.is_symlink() and real.read_text() == "new"


def test_a_file_with_other_hard_links_is_written_in_place(tmp_path):
    first = tmp_path / "a.json"
    first.write_text("old")
    os.link(first, tmp_path / "b.json")
    write_atomically(first, "new")
    assert (tmp_path / "b.json").read_text() == "new" and first.stat().st_nlink == 2


def test_a_fifo_is_written_through_to_its_reader(tmp_path):
    fifo = tmp_path / "out.json"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo).read()))
    reader.start()
    write_atomically(fifo, "through the pipe")
    reader.join(10)
    assert got == ["through the pipe"] and stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_failed_write_leaves_the_file_as_it_was(tmp_path):
    kept = tmp_path / "kept.json"
    kept.write_text("before")
    with pytest.raises(RuntimeError), written_to(kept) as partial:
        partial.write_text("half")
        raise RuntimeError("the writer failed")
    assert kept.read_text() == "before" and [p.name for p in tmp_path.iterdir()] == ["kept.json"]


def test_a_missing_folder_is_named_as_given_not_as_the_temporary_file(tmp_path):
    with pytest.raises(FileNotFoundError) as raised, written_to(tmp_path / "nodir" / "dsl.py", ".py"):
        pass
    assert raised.value.filename == str(tmp_path / "nodir" / "dsl.py")
