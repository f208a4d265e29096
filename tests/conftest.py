"""Shared test helpers.

`make_notebook(tmp_path, cells)` writes a real .ipynb with nbformat and returns its path. Use it
as a plain function (`from conftest import make_notebook`) or as the fixture of the same name.
Each cell is one of:
  - "source"                      → a code cell without tags
  - ("source", ["step:a", ...])   → a code cell with tags
  - an nbformat cell node, e.g. nbformat.v4.new_markdown_cell("# Title")
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = ROOT / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.ipynb"))


def rewrite_keeping_mtime(path, text: str) -> None:
    """Another content for a file, its old mtime set back (as `cp -p` or `rsync -t` may)."""
    mtime = os.stat(path).st_mtime_ns
    time.sleep(0.02)  # a kernel with a coarse file clock (before Linux 6.13) gives a new ctime a tick later
    Path(path).write_text(text)
    os.utime(path, ns=(mtime, mtime))


def install_library(site: Path, name: str, version: str, value) -> None:
    """Install (or reinstall, as pip does: the old metadata folder goes) a one-module library `name`
    whose `VALUE` is `value`, in `site` (a folder named site-packages, as an interpreter's is), with
    the RECORD of its files pip writes."""
    site.mkdir(parents=True, exist_ok=True)
    for old in site.glob(f"{name}-*.dist-info"):
        for file in old.iterdir():
            file.unlink()
        old.rmdir()
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "top_level.txt").write_text(f"{name}\n")
    module = f"VALUE = {value!r}\n".encode()
    (site / f"{name}.py").write_bytes(module)
    digest = base64.urlsafe_b64encode(hashlib.sha256(module).digest()).rstrip(b"=").decode()
    (info / "RECORD").write_text(f"{name}.py,sha256={digest},{len(module)}\n{info.name}/top_level.txt,,\n"
                                 f"{info.name}/RECORD,,\n")  # as pip writes it
    shutil.rmtree(site / "__pycache__", ignore_errors=True)  # (pip removes the old bytecode too)
    # a new mtime for the folder, whatever the clock's granularity: the installation is seen as changed
    later = max(site.stat().st_mtime_ns, time.time_ns()) + 1_000_000_000
    os.utime(site, ns=(later, later))


@pytest.fixture
def library(tmp_path, monkeypatch):
    """(site folder, name) of a library `name` 1.0 (VALUE 1) installed there (`install_library`),
    importable from this process; unloaded afterwards."""
    site = tmp_path / "venv" / "lib" / "site-packages"
    name = f"nbsprobe{uuid.uuid4().hex[:8]}"
    install_library(site, name, "1.0", 1)
    monkeypatch.syspath_prepend(str(site))
    yield site, name
    sys.modules.pop(name, None)


# A step's code that connects to `address` from C (libc through ctypes, as libpq under psycopg2 does),
# where no audit event shows, and keeps the connection open in `kept`
C_CONNECT = """import ctypes, socket
libc = ctypes.CDLL(None)
class _Address(ctypes.Structure):
    _fields_ = [("family", ctypes.c_ushort), ("port", ctypes.c_uint16), ("ip", ctypes.c_uint8 * 4),
                ("zero", ctypes.c_uint8 * 8)]
def c_connect(host, port):
    fd = libc.socket(socket.AF_INET, socket.SOCK_STREAM, 0)
    address = _Address(socket.AF_INET, socket.htons(port), (ctypes.c_uint8 * 4)(*socket.inet_aton(host)))
    assert libc.connect(fd, ctypes.byref(address), ctypes.sizeof(address)) == 0
    return fd
"""


def this_machines_address() -> str:
    """This machine's address on its network (not loopback): the route a datagram would take."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # (nothing is sent)
        return probe.getsockname()[0]


_SERVER = """import socket, sys
server = socket.create_server((sys.argv[1], 0))
print(server.getsockname()[1], flush=True)
taken = []
while True:
    taken.append(server.accept()[0])
"""


@pytest.fixture
def server_elsewhere():
    """(host, port) of a TCP server in a process of its own, on this machine's network address, which
    takes every connection and keeps it: for a step, another machine's database as far as it can tell."""
    host = this_machines_address()
    server = subprocess.Popen([sys.executable, "-c", _SERVER, host], stdout=subprocess.PIPE, text=True)
    try:
        yield host, int(server.stdout.readline())
    finally:
        server.kill()
        server.wait()
        server.stdout.close()


def make_notebook(tmp_path, cells, name="nb", metadata=None) -> Path:
    nb = nbformat.v4.new_notebook(metadata=metadata or {})
    for cell in cells:
        if isinstance(cell, str):
            cell = nbformat.v4.new_code_cell(cell)
        elif isinstance(cell, tuple):
            source, tags = cell
            cell = nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)} if tags else {})
        nb.cells.append(cell)
    path = Path(tmp_path) / f"{name}.ipynb"
    # nbformat.write validates; tags with commas only make it log, and are still written
    nbformat.write(nb, str(path))
    return path


# one call into C code that holds the interpreter for hours, as a Cython loop without `nogil` or a huge
# `pickle.dumps` does: no other thread of the process (a Dask worker's event loop, a timer) runs meanwhile
HOLDS_THE_INTERPRETER = "import collections, itertools\ncollections.deque(itertools.repeat(None, 10**12), maxlen=0)"


def wait_for(condition, what, timeout=60):
    """Poll `condition` until it holds; fail the test naming `what` after `timeout` seconds."""
    end = time.time() + timeout
    while time.time() < end:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")



def in_forked_child(work, timeout=30) -> str:
    """Run `work()` in a child forked from this process: "ok", "failed" (it raised) or "hung" (still
    running after `timeout` seconds: killed)."""
    pid = os.fork()
    if pid == 0:  # the child: no pytest machinery from here on
        try:
            work()
        except BaseException:  # noqa: BLE001 - reported through the exit code
            os._exit(1)
        os._exit(0)
    end = time.time() + timeout
    while time.time() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return "ok" if os.waitstatus_to_exitcode(status) == 0 else "failed"
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return "hung"


def collect_events(kind):
    """([{"step", "payload"} of each run event of `kind`], the `on_event` callback that collects them)."""
    seen = []

    def on_event(event_kind, step, payload):
        if event_kind == kind:
            seen.append({"step": step, "payload": payload})
    return seen, on_event

@pytest.fixture(name="make_notebook")
def _make_notebook_fixture():
    return make_notebook


@pytest.fixture
def examples_dir() -> Path:
    return EXAMPLES_DIR


@pytest.fixture
def root(tmp_path):
    """A Jupyter server root: a folder of its own, so that tmp_path's other files lie outside it."""
    (tmp_path / "root").mkdir()
    return tmp_path / "root"


def make_immutable(*paths) -> None:
    """Read-only even for root: `chmod` for a user, `chattr +i` for root (undo with `chattr -i`)."""
    if os.geteuid() != 0:
        for path in paths:
            os.chmod(path, 0o555 if os.path.isdir(path) else 0o444)
        return
    done = subprocess.run(["chattr", "+i", *map(str, paths)])
    assert done.returncode == 0, "the read-only tests need chattr (e2fsprogs) when run as root"


@pytest.fixture(scope="module", autouse=True)
def _no_warm_cluster_outlives_its_module(tmp_path_factory):
    """The JupyterLab server's cluster is the root's warm cluster, a detached process that outlives the
    server until its idle timeout (30 minutes): end those a module's tests left in their folders."""
    yield
    from warm_harness import end_clusters, serving_folders

    for folder in serving_folders(tmp_path_factory.getbasetemp()):
        end_clusters(folder)
