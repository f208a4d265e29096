"""kernels/shell_holder.py: a run stopped while its steps wait for a process's shell never starts
them there, and a run whose step holds the shell is not stopped that way (its worker must restart).
The whole path, on a real Dask worker of two threads, is tested in test_dask_lifecycle.py."""

from __future__ import annotations

import os
import threading

import pytest

from nbscale.kernels import shell_holder
from nbscale.kernels.errors import StepStopped


def test_a_run_whose_step_holds_the_shell_is_not_stopped_here():
    with shell_holder.held_for_run("run-holding"):
        assert shell_holder.stop_unstarted("run-holding") is False
    with shell_holder.held_for_run("run-holding"):  # its next step still starts
        pass


def test_a_run_stopped_while_another_runs_step_holds_the_shell_never_starts_a_step_here():
    started = []
    with shell_holder.held_for_run("run-other"):
        assert shell_holder.stop_unstarted("run-waiting") is True
    with pytest.raises(StepStopped, match="run run-wait was stopped before this step started"):
        with shell_holder.held_for_run("run-waiting"):
            started.append(True)
    assert started == []
    with shell_holder.held_for_run("run-other"):  # other runs go on
        started.append("other")
    assert started == ["other"]


def test_a_step_waiting_on_another_thread_ends_stopped_as_it_gets_the_shell():
    """As on a Dask worker of two threads: the shell's lock orders the steps."""
    shell_lock, outcome = threading.Lock(), []

    def waiting_step():
        with shell_lock:
            try:
                with shell_holder.held_for_run("run-queued"):
                    outcome.append("ran")
            except StepStopped:
                outcome.append("stopped")

    with shell_lock, shell_holder.held_for_run("run-running"):
        thread = threading.Thread(target=waiting_step)
        thread.start()
        assert shell_holder.stop_unstarted("run-queued") is True
    thread.join(10)
    assert outcome == ["stopped"]


def test_no_run_is_stopped_so_while_no_step_holds_the_shell():
    """Its task may be between two steps, or a thread its step left may run: the worker restarts."""
    assert shell_holder.stop_unstarted("run-idle") is False
    with shell_holder.held_for_run("run-idle"):
        pass


def test_steps_of_no_run_are_never_stopped_and_the_stopped_runs_kept_are_bounded(monkeypatch):
    monkeypatch.setattr(shell_holder, "STOPPED_KEPT", 3)
    with shell_holder.held_for_run("run-other"):
        assert shell_holder.stop_unstarted("") is False
        for i in range(5):
            assert shell_holder.stop_unstarted(f"run-bounded-{i}")
    assert [r for r in shell_holder._STOPPED_RUNS if r.startswith("run-bounded-")] == [
        "run-bounded-2", "run-bounded-3", "run-bounded-4"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork: POSIX only")
def test_a_forked_child_runs_no_step_whatever_its_parent_ran():
    with shell_holder.held_for_run("run-parent"):
        pid = os.fork()
        if pid == 0:  # the child: no step holds its shell, so no run's steps can be only waiting there
            os._exit(0 if shell_holder.stop_unstarted("run-forked-other") is False else 3)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
