"""kernels/fatal_errors.py: a process that dies of a crash in compiled code, or of a step's
`os._exit`, leaves the stack it died in, and its death is told with the step's cell and line."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import psutil
from conftest import wait_for

from nbscale.kernels import fatal_errors
from nbscale.kernels.fatal_errors import fatal_reason, fault_file

# code compiled under the name the step shell gives notebook cell 4 (`tracebacks.CellCompiler`)
CRASHING = textwrap.dedent("""
    import ctypes, sys
    from nbscale.kernels import fatal_errors
    from nbscale.kernels.fatal_errors import exit_noted, watch
    path = watch(echo=sys.argv[2:] == ["echo"])
    assert watch() == path, "a step after the first is given another path"  # (once per process)
    tee = fatal_errors._watching[3] if fatal_errors._watching else None
    print(path, tee.pid if tee else "", flush=True)
    with exit_noted():
        exec(compile(sys.argv[1], "<cell 4 [0123456789ab]>", "exec"))
""")


def _dies(tmp_path, cell: str, *flags: str, echo: bool = False) -> tuple[subprocess.CompletedProcess, str]:
    done, path, _ = _echoing(tmp_path, cell, *flags, echo=echo)
    return done, path


def _echoing(tmp_path, cell: str, *flags: str, echo: bool) -> tuple[subprocess.CompletedProcess, str, int | None]:
    """(the process, the path it watches, the pid of its echo's `tee`)"""
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path)}
    env.pop("PYTHONFAULTHANDLER", None)
    done = subprocess.run([sys.executable, *flags, "-c", CRASHING, cell, *(["echo"] if echo else [])],
                          capture_output=True, text=True, timeout=60, env=env)
    path, _, tee = done.stdout.strip().partition(" ")
    return done, path, int(tee) if tee else None


def test_a_segmentation_fault_names_the_cell_line_and_the_function_it_crashed_in(tmp_path):
    done, path = _dies(tmp_path, "x = 1\nctypes.string_at(0)")
    assert done.returncode == -11
    assert path.startswith(str(tmp_path / "nbscale" / "faults")), path
    reason = fatal_reason(path)
    assert reason.startswith("Segmentation fault at cell 4, line 2 (in string_at, __init__.py:"), reason
    assert fatal_reason(path, host="another-host") is None  # (its path names a file of that host)


def test_an_echoing_process_tells_its_crash_on_standard_error_too(tmp_path):
    # `nbscale run` on the local engine: the terminal showed only the shell's "Segmentation fault"
    done, path, tee = _echoing(tmp_path, "x = 1\nctypes.string_at(0)", echo=True)
    assert done.returncode == -11 and tee is not None
    assert "Fatal Python error: Segmentation fault" in done.stderr
    assert 'File "<cell 4 [0123456789ab]>", line 2 in <module>' in done.stderr
    wait_for(lambda: fatal_reason(path) is not None, "the tee's copy", 10)
    assert fatal_reason(path).startswith("Segmentation fault at cell 4, line 2 (in string_at")
    wait_for(lambda: _gone(tee), "the tee's end", 10)


def test_an_echoing_process_that_ends_normally_says_nothing_and_leaves_nothing(tmp_path):
    done, path, tee = _echoing(tmp_path, "x = 1", echo=True)
    assert done.returncode == 0 and done.stderr == "" and tee is not None
    assert not os.path.exists(path)
    assert _gone(tee)  # (waited for as the process exited)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_os_exit_in_the_step_names_the_cell_and_line(tmp_path):
    done, path = _dies(tmp_path, "import os\n\nos._exit(3)")
    assert done.returncode == 3
    assert fatal_reason(path) == "os._exit(3) called by the step's code at cell 4, line 3"


def test_only_a_fault_file_is_read_whatever_a_record_names(tmp_path):
    # a worker's record on a shared scheduler names the file: it cannot make the reader open another one
    other = tmp_path / "notes.txt"
    other.write_text("Fatal Python error: secret\n")
    assert fatal_reason(other) is None
    assert fatal_reason(tmp_path / "faults" / ".." / "notes.txt") is None
    named = tmp_path / "faults" / "host-12.log"
    named.parent.mkdir()
    named.write_text("Fatal Python error: Aborted\n")
    assert fatal_reason(named) == "Aborted"
    linked = tmp_path / "faults" / "host-13.log"
    linked.symlink_to(other)
    assert fatal_reason(linked) is None
    assert fatal_reason(7) is None and fatal_reason({"path": str(named)}) is None  # (a record's value, any type)
    named.write_text("Fatal Python error: " + "x" * 100_000 + "\n")
    assert len(fatal_reason(named)) == fatal_errors.REASON_LIMIT


LINKED = textwrap.dedent("""
    import sys
    from pathlib import Path
    from nbscale.kernels.fatal_errors import fault_file, watch
    fault_file().parent.mkdir(parents=True)
    fault_file().symlink_to(sys.argv[1])  # where this process's file goes, before it watches
    print(watch(), Path(sys.argv[1]).read_text())
""")


def test_a_link_put_where_the_file_goes_is_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("kept")
    done = subprocess.run([sys.executable, "-c", LINKED, str(victim)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "XDG_STATE_HOME": str(tmp_path)})
    assert done.stdout.split() == ["None", "kept"], done.stderr


def test_a_kernels_cell_is_told_by_its_line_as_its_engine_knows_the_cell(tmp_path):
    fault = tmp_path / "faults" / "host-9.log"
    fault.parent.mkdir()
    fault.write_text("Fatal Python error: Floating point exception\n\nCurrent thread 0x1 (most recent call first):\n"
                     '  File "/usr/lib/numlib.py", line 88 in divide\n'
                     '  File "/tmp/ipykernel_4242/1234567.py", line 5 in <module>\n')
    assert fatal_reason(fault) == "Floating point exception at line 5 of the cell it ran (in divide, numlib.py:88)"


def test_a_process_that_ends_normally_leaves_no_file_and_nothing_to_tell(tmp_path):
    done, path = _dies(tmp_path, "x = 1")
    assert done.returncode == 0 and path
    assert not os.path.exists(path)
    assert fatal_reason(path) is None and fatal_reason(None) is None


def test_the_users_own_faulthandler_is_left_as_it_is(tmp_path):
    done, path = _dies(tmp_path, "ctypes.string_at(0)", "-X", "faulthandler")
    assert path == "None"
    assert "Fatal Python error: Segmentation fault" in done.stderr  # where the user asked for it
    assert not (tmp_path / "nbscale" / "faults").exists()


def test_a_forked_child_that_crashes_leaves_its_parents_file_empty(tmp_path):
    done, path = _dies(tmp_path, "import os\npid = os.fork()\nif pid == 0:\n    ctypes.string_at(0)\n"
                                 "os.waitpid(pid, 0)\nos._exit(5)")
    assert done.returncode == 5
    assert fatal_reason(path) == "os._exit(5) called by the step's code at cell 4, line 6"


def test_files_of_processes_that_are_gone_are_removed_empty_at_once_kept_a_while_with_a_crash(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    beyond = int(open("/proc/sys/kernel/pid_max").read())  # pids past the largest: no process has them
    empty, crashed, old = (fault_file(beyond + i) for i in range(1, 4))
    empty.parent.mkdir(parents=True)
    empty.write_text("")
    crashed.write_text("Fatal Python error: Aborted\n")
    old.write_text("Fatal Python error: Aborted\n")
    os.utime(old, (time.time() - fatal_errors.KEEP_S - 60,) * 2)
    alive = fault_file()  # this process's own, empty: it lives
    alive.write_text("")
    fatal_errors._remove_stale(empty.parent)
    assert not empty.exists() and not old.exists()
    assert crashed.exists() and alive.exists()
    assert fatal_reason(crashed) == "Aborted"
