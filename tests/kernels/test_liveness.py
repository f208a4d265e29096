"""Whether a run's owner is still there: real processes (alive, ended, zombie), hosts, heartbeats."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from nbscale.kernels.liveness import Heartbeat, current_owner, owner_gone, process_alive, process_start_time


def ended_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_this_process_is_alive_and_an_ended_one_is_not():
    me = current_owner()
    assert me.pid == os.getpid() and me.host and me.started == process_start_time(os.getpid())
    assert me.space.count("/") == 1 and "pid:[" in me.space  # this boot, this pid namespace (Linux)
    assert process_alive(me.pid, me.started)
    assert not process_alive(ended_pid(), None)
    assert not process_alive(me.pid, me.started - 3600)  # the same pid, another process: reused


def test_a_step_of_the_wall_clock_does_not_make_a_live_owner_another_process(monkeypatch):
    """The boot time the wall clock implies moves when the clock is stepped (NTP, a virtual machine
    resumed): a live run's owner once judged by it was taken for a process that reused its pid."""
    import psutil
    from psutil import _pslinux

    me = current_owner()
    shifted = _pslinux.boot_time() + 32
    monkeypatch.setattr(_pslinux, "boot_time", lambda: shifted)
    assert process_start_time(me.pid) == me.started
    assert process_alive(me.pid, me.started)
    monkeypatch.undo()
    # an owner recorded by an earlier nbscale, in epoch seconds, is judged as before
    assert process_alive(me.pid, psutil.Process().create_time())
    assert not process_alive(me.pid, psutil.Process().create_time() - 3600)


def test_a_zombie_is_alive_only_for_its_parent():
    # our own zombie child: its supervisor (us) still has to finish its run
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = process_start_time(child.pid)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        time.sleep(0.05)
    assert process_alive(child.pid, started)
    child.wait()
    assert not process_alive(child.pid, started)
    # a zombie another process has not collected: stopped
    parent = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time\n"
                               "p = subprocess.Popen([sys.executable, '-c', 'pass'])\n"
                               "print(p.pid, flush=True)\ntime.sleep(60)  # never collects it"],
                              stdout=subprocess.PIPE, text=True)
    try:
        grandchild = int(parent.stdout.readline())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process_alive(grandchild, None):
            time.sleep(0.05)
        assert not process_alive(grandchild, None)
    finally:
        parent.kill()
        parent.wait()


def test_owners_on_other_hosts_are_judged_by_their_heartbeat():
    now = time.time()
    assert not owner_gone(12345, "elsewhere", 1.0, now - 5, now=now, timeout=30)
    assert owner_gone(12345, "elsewhere", 1.0, now - 31, now=now, timeout=30)
    assert owner_gone(None, None, None, None, now=now)  # no owner and no heartbeat: nothing will end it
    here = current_owner()
    assert not owner_gone(here.pid, here.host, here.started, now - 3600, space=here.space, now=now)  # the pid decides
    assert owner_gone(ended_pid(), here.host, None, now, space=here.space, now=now)
    # the same host name in another container (another pid namespace): our process table says nothing
    assert not owner_gone(ended_pid(), here.host, None, now, space="another boot/pid:[1]", now=now)
    assert owner_gone(ended_pid(), here.host, None, now - 31, space="another boot/pid:[1]", now=now, timeout=30)


def test_the_heartbeat_beats_until_stopped_and_survives_a_failing_beat():
    beats = []

    def beat():
        beats.append(time.monotonic())
        if len(beats) == 2:
            raise RuntimeError("a busy store")

    heartbeat = Heartbeat(beat, interval=0.02)
    heartbeat.start()
    deadline = time.monotonic() + 30
    while len(beats) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    heartbeat.stop()
    assert len(beats) >= 4 and not heartbeat.is_alive() and heartbeat.daemon
    count = len(beats)
    time.sleep(0.1)
    assert len(beats) == count
