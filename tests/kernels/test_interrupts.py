"""SIGTERM handled like Ctrl-C, in a real process that gets a real signal."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

import pytest

from nbscale.kernels.interrupts import sigterm_interrupts

SCRIPT = """
import sys, time
from nbscale.kernels.errors import Terminated
from nbscale.kernels.interrupts import sigterm_interrupts
try:
    with sigterm_interrupts():
        print("ready", flush=True)
        time.sleep(60)
except Terminated as exc:
    print(f"terminated by {exc.signal_name}, cleaning up", flush=True)
    if sys.argv[1] == "slow-cleanup":
        time.sleep(60)  # a second SIGTERM ends the process at once
    sys.exit(143)
"""


def start(mode, **popen):
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, mode], stdout=subprocess.PIPE, text=True, **popen)
    assert proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_or_sighup_raises_terminated_in_the_main_thread(signum):
    """SIGHUP: the terminal of `nbscale run` closed; before, it killed the run mid-step, unrecorded."""
    proc = start("quick")
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 143 and f"terminated by {signum.name}, cleaning up" in out


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_second_sigterm_or_sighup_ends_the_process(second):
    proc = start("slow-cleanup")
    proc.send_signal(signal.SIGTERM)
    assert proc.stdout.readline().strip() == "terminated by SIGTERM, cleaning up"
    proc.send_signal(second)
    proc.communicate(timeout=30)
    assert proc.returncode == -second


def test_sighup_ignored_as_nohup_ignores_it_stays_ignored():
    def nohup():
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    proc = start("quick", preexec_fn=nohup)
    proc.send_signal(signal.SIGHUP)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert "terminated by SIGTERM" in out


def test_the_handler_is_restored_and_other_threads_leave_it_alone():
    before = signal.getsignal(signal.SIGTERM)
    with sigterm_interrupts():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before
    assert in_another_thread(sigterm_interrupts, signal.SIGTERM) is before


def in_another_thread(block, signum):
    """The handler of `signum` seen inside `block()`, run in a thread that is not the main one."""
    seen = []

    def run():
        with block():
            seen.append(signal.getsignal(signum))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return seen[0]


FORK_SCRIPT = """
import os, signal, sys, time
from nbscale.kernels.errors import Terminated
from nbscale.kernels.interrupts import sigterm_interrupts
with sigterm_interrupts():
    pid = os.fork()
    if pid == 0:  # a child a step forked: SIGTERM must end it, not run the run's clean-up
        try:
            time.sleep(60)
        except Terminated:
            print("child cleaned up as the run", flush=True)
        os._exit(0)
    time.sleep(0.5)
    os.kill(pid, signal.SIGTERM)
    _, status = os.waitpid(pid, 0)
    print("child", os.WTERMSIG(status) if os.WIFSIGNALED(status) else "exited", flush=True)
"""


def test_a_forked_child_ends_on_sigterm_instead_of_cleaning_up_as_the_run():
    done = subprocess.run([sys.executable, "-c", FORK_SCRIPT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["child", str(int(signal.SIGTERM))]


FORKED_HANDLERS_SCRIPT = """
import multiprocessing, os, signal, threading
from nbscale.kernels.interrupts import sigterm_interrupts

def handlers(_):
    return signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

def forked_from_a_thread(found):  # as a Dask worker's step thread forks a pool
    with multiprocessing.get_context("fork").Pool(1) as pool:
        found.extend(pool.map(handlers, [0]))

with sigterm_interrupts():
    found = []
    thread = threading.Thread(target=forked_from_a_thread, args=(found,))
    thread.start()
    thread.join()
    print("run", signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL, "forked", *found, flush=True)
"""


def test_a_process_forked_from_the_run_gets_the_default_sigterm_at_once():
    # a Python handler runs between bytecodes only: a SIGTERM just before a pool worker blocked on its
    # queue's lock was never acted on, and `Pool.terminate` waited for that worker for ever
    done = subprocess.run([sys.executable, "-c", FORKED_HANDLERS_SCRIPT], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["run", "True", "forked", "True"]


def test_a_ctrl_c_is_noted_while_active_and_forgotten_after():
    from nbscale.kernels.interrupts import interrupt_requested

    with sigterm_interrupts():
        assert interrupt_requested() is None
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            pass  # as a step's own `except BaseException` would
        assert interrupt_requested() is KeyboardInterrupt
    assert interrupt_requested() is None and signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_ctrl_c_the_steps_code_swallows_still_cancels_a_local_run(tmp_path):
    # the step went on, and so did the run: the next step ran and the run "succeeded"
    import sqlite3
    import time

    from conftest import make_notebook

    swallow = ("import time\nt0 = time.time()\nwhile time.time() - t0 < 4:\n    try:\n        time.sleep(0.1)\n"
               "    except BaseException:\n        pass\na = 1")
    nb = make_notebook(tmp_path, [(swallow, ["step:swallow"]), ("b = a", ["step:after"])])
    run = subprocess.Popen([sys.executable, "-m", "nbscale", "run", str(nb), "--engine", "local", "--no-cache"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert "running 2 steps" in run.stderr.readline() and "▶ swallow" in run.stderr.readline()
    time.sleep(1)
    run.send_signal(signal.SIGINT)
    run.communicate(timeout=60)
    assert run.returncode == 130
    with sqlite3.connect(tmp_path / ".nbscale" / "runs.sqlite") as db:
        assert db.execute("SELECT status FROM runs").fetchall() == [("cancelled",)]
        # (the swallowing step is cancelled too: what it made as it was stopped is not kept)
        assert dict(db.execute("SELECT step, status FROM step_runs").fetchall()) == {
            "swallow": "cancelled", "after": "cancelled"}


def test_a_second_sigterm_says_the_last_words_of_the_block_it_stops(tmp_path):
    script = """
import sys, time
from pathlib import Path
from nbscale.kernels.errors import Terminated
from nbscale.kernels.interrupts import last_words, sigterm_interrupts
with sigterm_interrupts():
    with last_words(lambda: Path("outside").write_text("no")):
        pass
    with last_words(lambda: Path("said").write_text("cancelled")):
        try:
            print("ready", flush=True)
            time.sleep(60)
        except Terminated:
            print("cleaning up", flush=True)
            time.sleep(60)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.stdout.readline().strip() == "cleaning up"
    assert not (tmp_path / "said").exists()  # the first SIGTERM is a request, not the end
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGTERM
    assert (tmp_path / "said").read_text() == "cancelled" and not (tmp_path / "outside").exists()


UNINTERRUPTED = """
import os, signal, sys
from nbscale.kernels.errors import Terminated
from nbscale.kernels.interrupts import sigterm_interrupts, uninterrupted
done = []
try:
    with sigterm_interrupts():
        try:
            with uninterrupted():
                os.kill(os.getpid(), getattr(signal, sys.argv[1]))
                for _ in range(1000):  # bytecodes at which the handler would have run
                    done.append(len(done))
            print("not interrupted", flush=True)
        except (KeyboardInterrupt, Terminated) as exc:
            print(type(exc).__name__, "after", len(done), signal.getsignal(signal.SIGINT).__name__, flush=True)
except KeyboardInterrupt:
    pass
print("handlers back:", signal.getsignal(signal.SIGINT) is signal.default_int_handler, flush=True)
"""


def test_a_signal_during_an_uninterrupted_block_acts_once_the_block_ends():
    for name, raised in (("SIGINT", "KeyboardInterrupt"), ("SIGTERM", "Terminated")):
        done = subprocess.run([sys.executable, "-c", UNINTERRUPTED, name], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        # the block ran to its end, then the run's own handler raised as it would have
        assert done.stdout.splitlines() == [f"{raised} after 1000 interrupted", "handlers back: True"], done.stdout


def test_an_uninterrupted_block_outside_the_main_thread_changes_no_handler():
    from nbscale.kernels.interrupts import uninterrupted

    assert in_another_thread(uninterrupted, signal.SIGINT) is signal.getsignal(signal.SIGINT)
