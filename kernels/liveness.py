"""Whether the process running a run is still there.

A run records its owner: the pid, the host and the start time of the process running it (a pid is
reused; a pid with another start time is another process), and a heartbeat its process renews
every `HEARTBEAT_INTERVAL_S`. Where the owner's pids are visible (the same host name, and the same
boot and pid namespace: containers may share a host name, not a process table) the process table
answers at once; elsewhere only the heartbeat can, so a run whose heartbeat is older than
`OWNER_TIMEOUT_S` is taken for gone. The run store (`runstore.py`) keeps the heartbeat and
finishes the runs whose owner is gone.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HEARTBEAT_INTERVAL_S = 2.0
OWNER_TIMEOUT_S = 30.0  # a heartbeat older than this, from another host, means its owner is gone
START_TIME_TOLERANCE_S = 1.0  # the same process reports the same start time; allow for rounding


@dataclass(frozen=True)
class Owner:
    pid: int
    host: str
    started: float  # the process's start time (`process_start_time`: since boot where there is a /proc)
    space: str = ""  # the boot and pid namespace its pid belongs to ("" where unknown)


_current: Owner | None = None


def current_owner() -> Owner:
    """This process (computed again in a forked child, whose pid differs)."""
    global _current
    if _current is None or _current.pid != os.getpid():
        _current = Owner(os.getpid(), socket.gethostname(), process_start_time(os.getpid()) or 0.0, pid_space())
    return _current


def pid_space() -> str:
    """Which process table this process's pid belongs to: the boot and the pid namespace (Linux)."""
    parts = []
    for read in (lambda: Path("/proc/sys/kernel/random/boot_id").read_text().strip(),  # (closed once read)
                 lambda: os.readlink("/proc/self/ns/pid")):
        try:
            parts.append(read())
        except OSError:
            return ""
    return "/".join(parts)


def process_start_time(pid: int) -> float | None:
    """When the process `pid` started (None: no such process). Where there is a /proc, in seconds
    since the machine booted, as the kernel counts it: psutil's `create_time` adds the boot time as
    the wall clock has it now, which a clock step (NTP, a virtual machine resumed) moves, and a
    live owner whose start moved by 32 s was taken for another process that had its pid. Elsewhere
    psutil's (epoch seconds, recorded as the process started)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()  # (the command name may hold anything)
        return int(fields[19]) / _CLOCK_TICKS  # field 22, `starttime`, in clock ticks since boot
    except FileNotFoundError:
        return None if os.path.isdir("/proc/self") else _epoch_start_time(pid)
    except (OSError, IndexError, ValueError):
        return _epoch_start_time(pid)


def _epoch_start_time(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def same_start(pid: int, started: float) -> bool:
    """Whether the process `pid` is the one that started at `started` (a `process_start_time`)."""
    now = _epoch_start_time(pid) if _recorded_as_epoch(started) else process_start_time(pid)
    return now is not None and abs(now - started) <= START_TIME_TOLERANCE_S


def _recorded_as_epoch(started: float) -> bool:
    """Where there is no clock since boot; and for an owner an earlier nbscale recorded (in epoch
    seconds: a start since boot later than now)."""
    return _SINCE_BOOT is None or started > time.clock_gettime(_SINCE_BOOT) + START_TIME_TOLERANCE_S


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_SINCE_BOOT = getattr(time, "CLOCK_BOOTTIME", None)


def owner_gone(pid, host, started, heartbeat, *, space: str | None = "", now: float | None = None,
               timeout: float = OWNER_TIMEOUT_S) -> bool:
    """True when the run's owner has stopped: where its pid is visible, its process is gone;
    elsewhere (or when the run names no owner: written before owners were recorded), its heartbeat
    is too old."""
    if owner_visible(pid, host, space):
        return not process_alive(int(pid), started)
    now = time.time() if now is None else now
    return heartbeat is None or now - float(heartbeat) > timeout


def owner_visible(pid, host, space: str | None = "") -> bool:
    """Whether the owner's pid names a process in this process table (this host, boot and pid
    namespace)."""
    here = current_owner()
    return bool(pid) and host == here.host and (space or "") == here.space


def process_alive(pid: int, started: float | None) -> bool:
    """The process `pid` started at `started` still runs. A zombie has stopped, unless it is a child of
    this process: then its parent (here, a supervisor about to collect it) finishes its run."""
    import psutil

    try:
        process = psutil.Process(pid)
        if started and not same_start(pid, float(started)):
            return False  # the pid was reused
        if process.status() == psutil.STATUS_ZOMBIE:
            return process.ppid() == os.getpid()
        return True
    except psutil.NoSuchProcess:  # ZombieProcess is one: a zombie whose details cannot be read
        return False
    except psutil.AccessDenied:
        return True  # it exists; we may not look at it


HEARTBEAT_THREAD = "nbscale-heartbeat"  # its name: engines look for it (a thread safe to fork beside)


class Heartbeat(threading.Thread):
    """Calls `beat()` every `interval` seconds until stopped, or until `beat()` returns False (a
    daemon: it dies with its process)."""

    def __init__(self, beat: Callable[[], bool | None], interval: float = HEARTBEAT_INTERVAL_S):
        super().__init__(name=HEARTBEAT_THREAD, daemon=True)
        self.beat, self.interval = beat, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                if self.beat() is False:
                    return
            except Exception:  # noqa: BLE001 - a busy or vanished store must not end the beats
                pass

    def stop(self) -> None:
        self.stopped.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=5)
