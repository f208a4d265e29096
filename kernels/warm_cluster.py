"""The warm cluster of a project folder: an embedded LocalCluster kept alive in the background.

`nbscale cluster start` runs `warm_cluster_serve` as a detached process that holds the cluster
and writes, in the folder's state folder (`contract.state_dir`), Dask's scheduler file and
`warm-cluster.json` (pid, address, workers, started, idle timeout). Runs of the notebooks in the
folder and in its subfolders find it (`find`: the nearest live one of the notebook's folder and its
ancestors) and share it instead of starting a cluster of their own; Dask's
`distributed.scheduler.idle-timeout` ends it when nothing ran on it for a while. The JupyterLab
server's cluster is such a cluster too: the panel starts (or adopts) the warm cluster of the
server's root (jupyter_ext/cluster.py), so CLI runs under the root and `nbscale cluster status`
find it, and it outlives the server until its idle timeout.

What a file in the state folder says is checked before anything trusts it: it must be yours (its
owner is this user: a run sends its code and data to the cluster and loads what comes back), JSON
of the expected shape, name an address on this machine (a run never connects across hosts because
a file says so), a process of this user that is this folder's warm cluster and listens on that
address (a stale file, its process gone or killed, is noticed by its pid, or by a 2 s request).
A cluster of another environment (`sys.prefix`, `PYTHONPATH`) or of other nbscale code
(`own_code`: installed again since it started) is not used; `start` replaces one of other code
once no run is on it. Only such a verified process is ever signalled. Starts are serialised by an
`fcntl` lock on `warm-cluster.lock`: two `start`s at once give one cluster.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from . import own_code
from .contract import STATE_DIR_NAME
from .errors import NbscaleRuntimeError

INFO_NAME = "warm-cluster.json"  # ours: pid, address, workers, started, idle timeout
SCHEDULER_FILE_NAME = "warm-cluster-scheduler.json"  # Dask's own (`--scheduler-file` takes it)
LOCK_NAME = "warm-cluster.lock"
# its TLS certificate and key (the owner's alone): every connection to it, a worker's or a client's,
# proves it can read this file; without TLS any local user could connect and run code as its owner
TLS_NAME = "warm-cluster-tls.pem"
LOG_NAME = "warm-cluster.log"
SERVE_MODULE = "nbscale.kernels.warm_cluster_serve"
PROBE_TIMEOUT_S = 2.0  # a warm cluster that does not answer in this time is stale
SCALE_HANDLER = "nbscale_scale"  # the scheduler handler of the warm cluster's process that scales it
ADAPT_HANDLER = "nbscale_adapt"  # ... that makes it adaptive
ADAPTIVE_HANDLER = "nbscale_adaptive"  # ... that says its adaptive bounds (None: not adaptive)
HOLD_HANDLER = "nbscale_hold"  # ... that keeps it from its idle timeout while the asking client (a run) is connected
MAX_WORKERS = 256
PATIENT_PROBE_S = 15.0  # ... before `start` replaces a cluster whose process still runs
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
DEFAULT_IDLE_TIMEOUT = "30 minutes"
MAX_INFO_BYTES = 64_000

LIVE, STALE, INVALID, NONE = "live", "stale", "invalid", "none"


class WarmClusterError(NbscaleRuntimeError):
    """A warm cluster could not be started, or a file of one is not usable."""


@dataclass
class WarmCluster:
    """What `warm-cluster.json` says about a warm cluster."""

    folder: str  # the project folder (absolute)
    address: str
    pid: int
    workers: int
    started: float  # epoch seconds
    idle_timeout_s: float | None
    scheduler_file: str
    prefix: str | None = None  # the Python environment (sys.prefix) its workers run steps in
    pythonpath: list | None = None  # the PYTHONPATH it started with (`pythonpath_entries`): on its workers' sys.path
    code: str | None = None  # the nbscale code its processes run (`own_code`); None: started by a release before it

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Lookup:
    """The warm cluster of a folder as found: LIVE (usable), STALE, INVALID, or NONE; and why."""

    state: str
    cluster: WarmCluster | None = None
    reason: str = ""
    folder: str = ""  # the folder whose state folder was read
    runs: list = field(default_factory=list)  # `stop`: the runs that were on the cluster it stopped

    @property
    def live(self) -> bool:
        return self.state == LIVE


def state_folder(folder) -> Path:
    """The state folder of a project folder (the one `contract.state_dir` gives its notebooks)."""
    return Path(folder).resolve() / STATE_DIR_NAME


def info_path(folder) -> Path:
    return state_folder(folder) / INFO_NAME


def scheduler_file_path(folder) -> Path:
    return state_folder(folder) / SCHEDULER_FILE_NAME


def log_path(folder) -> Path:
    return state_folder(folder) / LOG_NAME


def tls_path(folder) -> Path:
    return state_folder(folder) / TLS_NAME


def new_security(folder):
    """A Dask `Security` of a new self-signed certificate and key, written to `folder`'s TLS file
    (0600) for the clients that find the cluster: TLS both ways, no connection without them."""
    from distributed.security import Security

    made = Security.temporary()
    write_private(tls_path(folder), made.tls_client_cert + made.tls_client_key)
    return made


def cluster_security(cluster: WarmCluster):
    """The `Security` to connect to `cluster` with, from its TLS file; None for a cluster that
    listens without TLS (started by an older nbscale) or whose file is not the owner's alone."""
    if urlsplit(cluster.address).scheme != "tls":
        return None
    from distributed.security import Security

    try:
        st, raw = read_regular(tls_path(cluster.folder), MAX_INFO_BYTES, follow=False)
        if raw is None or st.st_uid != os.geteuid() or st.st_mode & 0o077:
            return None
        pem = raw.decode("ascii")
    except (OSError, UnicodeDecodeError):
        return None
    key_at = pem.find("-----BEGIN PRIVATE KEY-----")
    if key_at <= 0:
        return None
    cert, key = pem[:key_at], pem[key_at:]
    return Security(require_encryption=True, tls_ca_file=cert, tls_client_cert=cert, tls_client_key=key)


def security_for(address: str, folder):
    """The `Security` for a scheduler `address` given as `--scheduler` (or in a scheduler file): the
    warm cluster's of `folder` or a folder above it that listens there; None for any other."""
    if not address.startswith("tls://"):
        return None
    for candidate in (Path(folder).resolve(), *Path(folder).resolve().parents):
        found = lookup(candidate, probe=False)
        if found.cluster is not None and found.cluster.address == address:
            return cluster_security(found.cluster)
    return None


# --- finding one ----------------------------------------------------------------------------------


def find(folder, probe: bool = True) -> Lookup:
    """The warm cluster that runs of notebooks in `folder` use: the nearest live one of `folder` and
    its ancestors (a project's warm cluster serves its subfolders, as the Jupyter server's serves
    every notebook under its root); when none is live, what `folder`'s own file says (stale,
    invalid). A folder above's file that is not live is passed over without a word: a file left by a
    cluster killed in the home folder must not put a warning on every run below it."""
    start = Path(folder).resolve()
    own = lookup(start, probe)
    if own.live:
        return own
    for candidate in start.parents:
        found = lookup(candidate, probe)
        if found.live:
            return found
    return own


def lookup(folder, probe: bool = True) -> Lookup:
    """The warm cluster of `folder` itself. `probe`: also check that its scheduler answers."""
    folder = str(Path(folder).resolve())
    path = info_path(folder)
    try:  # (not blocking: a FIFO planted there, in a folder above, held every run below it)
        st, raw = read_regular(path, MAX_INFO_BYTES + 1)
        if raw is None:
            return Lookup(INVALID, reason=f"{path} is not a regular file", folder=folder)
        owner = st.st_uid
    except FileNotFoundError:
        return Lookup(NONE, folder=folder)
    except NotADirectoryError:
        return Lookup(INVALID, reason=_not_a_folder(folder), folder=folder)
    except OSError as exc:
        return Lookup(INVALID, reason=f"{path} cannot be read: {exc}", folder=folder)
    if owner != os.geteuid():
        return Lookup(INVALID, reason=f"{path} belongs to another user (uid {owner}): only a file of yours "
                                      "names a cluster to run on", folder=folder)
    cluster, problem = parse_info(raw, folder)
    if cluster is None:
        return Lookup(INVALID, reason=f"{path} {problem}", folder=folder)
    problem = process_problem(cluster.pid, cluster.folder) or address_problem(cluster.pid, cluster.address)
    if problem:
        return Lookup(STALE, cluster, problem, folder)
    if probe and not answers(cluster.address, security=cluster_security(cluster)):
        return Lookup(STALE, cluster, f"its scheduler at {cluster.address} does not answer", folder)
    return Lookup(LIVE, cluster, folder=folder)


def read_regular(path, limit: int, follow: bool = True) -> tuple[os.stat_result, bytes | None]:
    """(the stat, the first `limit` bytes) of the file at `path`, opened without blocking; None for
    the bytes of anything but a regular file (a FIFO or a device planted there has no end to wait for)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow else os.O_NOFOLLOW)
    with os.fdopen(os.open(path, flags), "rb") as f:
        st = os.fstat(f.fileno())
        return st, (f.read(limit) if stat.S_ISREG(st.st_mode) else None)


def _not_a_folder(folder) -> str:
    return f"{state_folder(folder)} is a file, not a folder: move it away to keep a warm cluster here"


def parse_info(raw: bytes, folder) -> tuple[WarmCluster | None, str]:
    """The cluster a `warm-cluster.json` describes, or None and what is wrong with it."""
    if len(raw) > MAX_INFO_BYTES:
        return None, "is too large to be a warm cluster file"
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None, "is not a warm cluster file (not JSON)"
    kinds = {"address": str, "pid": int, "workers": int, "started": (int, float), "scheduler_file": str}
    if not isinstance(data, dict) or any(not isinstance(data.get(k), t) or isinstance(data.get(k), bool)
                                         for k, t in kinds.items()):
        return None, f"is not a warm cluster file (it needs {', '.join(kinds)})"
    if data["pid"] <= 0:
        return None, f"names no process (pid {data['pid']})"
    if not is_local_address(data["address"]):
        return None, (f"names the address {data['address']!r}, which is not on this machine: a warm cluster "
                      "is only used on the machine that runs it")
    idle = data.get("idle_timeout_s")
    cluster = WarmCluster(folder=str(Path(folder).resolve()), address=data["address"], pid=data["pid"],
                          workers=data["workers"], started=float(data["started"]),
                          idle_timeout_s=float(idle) if isinstance(idle, (int, float)) else None,
                          scheduler_file=data["scheduler_file"],
                          prefix=data["prefix"] if isinstance(data.get("prefix"), str) else None,
                          pythonpath=_strings(data.get("pythonpath")),
                          code=data["code"] if isinstance(data.get("code"), str) else None)
    return cluster, ""


def is_local_address(address: str) -> bool:
    """Whether a Dask address is a TCP address of this machine (loopback, or one of its interfaces)."""
    try:
        parts = urlsplit(address)
        host, port = parts.hostname, parts.port
    except ValueError:
        return False
    if parts.scheme not in ("tcp", "tls") or not host or not port:
        return False
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False  # a host name: resolving it is trusting the network
    return ip.is_loopback or str(ip) in own_addresses()


def own_addresses() -> set[str]:
    import psutil

    return {a.address.split("%")[0] for addrs in psutil.net_if_addrs().values() for a in addrs
            if a.family in (socket.AF_INET, socket.AF_INET6)}


def is_serving(pid: int, folder) -> bool:
    """Whether `pid` is a live warm cluster process of `folder` (not a reused pid, not another program)."""
    return process_problem(pid, folder) is None


def process_problem(pid: int, folder) -> str | None:
    """Why `pid` is not the live warm cluster process of `folder`; None when it is."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return f"its process {pid} is gone"
        command = process.cmdline()
        uid = process.uids().real
    except psutil.NoSuchProcess:
        return f"its process {pid} is gone"
    except psutil.AccessDenied:
        uid, command = None, []
    if uid != os.getuid():
        return f"its process {pid} is not this folder's warm cluster (it belongs to another user)"
    if SERVE_MODULE in command and str(Path(folder).resolve()) in command:
        return None
    if SERVE_MODULE in command:
        return f"its process {pid} is the warm cluster of another folder (a file copied from there?)"
    return f"its process {pid} is gone (pid {pid} is now another program)"


def address_problem(pid: int, address: str) -> str | None:
    """Why the verified process `pid` is not the one serving `address` (a file that names a port of
    another program beside a real cluster's pid, or a cluster closing); None when `pid` listens there."""
    import psutil

    parts = urlsplit(address)
    try:
        listening = [c.laddr for c in psutil.Process(pid).net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        listening = []
    for ip, port in listening:
        if port == parts.port and (ip in ("0.0.0.0", "::") or ip == parts.hostname
                                   or (parts.hostname == "localhost" and ipaddress.ip_address(ip).is_loopback)):
            return None
    if not listening:  # its scheduler has closed and the process is ending (idle timeout, `cluster stop`)
        return f"it is closing: its process {pid} listens no more"
    return f"its process {pid} does not listen at {address}"


def answers(address: str, timeout: float = PROBE_TIMEOUT_S, security=None) -> bool:
    """Whether a Dask scheduler answers at `address` within `timeout` (an `identity` request).

    A TCP connect is not enough: the kernel accepts connections for a frozen process (SIGSTOP,
    swapped out), and `Client(timeout=...)` then waits for its handshake for ever. The request
    runs on a thread of its own: the caller may be inside an event loop (a Jupyter kernel)."""
    import distributed.comm  # noqa: F401 - imported here, not on the clock (a second or more)

    answer = []

    def ask():
        import asyncio

        with suppress(Exception):
            answer.append(asyncio.run(asyncio.wait_for(identity(address, timeout, security), timeout)))

    thread = threading.Thread(target=ask, name="nbscale-warm-cluster-probe", daemon=True)
    thread.start()
    thread.join(timeout + 1)
    return bool(answer) and isinstance(answer[0], dict) and answer[0].get("type") == "Scheduler"


async def identity(address: str, timeout: float, security=None) -> dict:
    from distributed.comm import connect as dask_connect

    tls = security.get_connection_args("client") if security is not None else {}
    comm = await dask_connect(address, timeout=timeout, **tls)
    try:
        await comm.write({"op": "identity", "reply": True})
        return await comm.read()
    finally:
        comm.abort()


def for_notebook(notebook) -> Lookup:
    """The warm cluster a run of `notebook` may use: the nearest of its folder and their ancestors."""
    return find(Path(notebook).resolve().parent)


def same_environment(cluster: WarmCluster) -> bool:
    return environment_difference(cluster) is None


def environment_difference(cluster: WarmCluster) -> str | None:
    """How the Python environment the cluster's workers run steps in differs from this process's
    (its packages; its PYTHONPATH, on their sys.path: `import util` would load another file than
    top to bottom; the nbscale code they run: `own_code`); None when it does not."""
    if cluster.prefix != sys.prefix:
        return f"it runs the Python environment {cluster.prefix or '(not recorded)'}, this run {sys.prefix}"
    here, there = pythonpath_entries(), cluster.pythonpath or []
    if here != there:
        return (f"it was started with PYTHONPATH={os.pathsep.join(there) or '(unset)'}, this run "
                f"has PYTHONPATH={os.pathsep.join(here) or '(unset)'}")
    if cluster.code != own_code.IMPORTED:
        if cluster.code == own_code.on_disk():
            return ("this process imported nbscale before it was installed again or edited, and the cluster runs "
                    "the code there now: start this process again (the kernel, the server) to use it")
        return ("it runs other nbscale code than this run (nbscale was installed again or edited since it "
                "started; `nbscale cluster start` replaces it once no run uses it)")
    return None


def outdated(cluster: WarmCluster) -> bool:
    """Whether the cluster runs in this process's environment with other nbscale code than the one
    installed now: no run started from now on would use it. (A long-lived process that imported
    nbscale before it was replaced does not count its own code: it would replace a current
    cluster with another current one, for ever.)"""
    return cluster.prefix == sys.prefix and cluster.code != own_code.on_disk()


def pythonpath_entries() -> list[str]:
    """The folders PYTHONPATH puts on this process's sys.path, as Python does: relative ones (an empty
    one is ".") in its working directory, each once; none for an empty PYTHONPATH."""
    value = os.environ.get("PYTHONPATH") or ""
    return list(dict.fromkeys(os.path.abspath(entry or ".") for entry in value.split(os.pathsep))) if value else []


def _strings(value) -> list[str] | None:
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


def connect(notebook, timeout: float = PROBE_TIMEOUT_S * 2):
    """A Dask client of the live warm cluster of `notebook`'s folder (or of a folder above it), and a
    note saying which cluster the run uses or why it does not use the warm one; (None, None) when
    there is none."""
    found = for_notebook(notebook)
    folder = found.folder
    if found.state == NONE:
        return None, None
    if not found.live:
        return None, (f"not using the warm cluster of {folder}: {found.reason}; running on a cluster of its "
                      "own (`nbscale cluster start` replaces it)")
    difference = environment_difference(found.cluster)  # its workers would import other files
    if difference:
        return None, f"not using the warm cluster of {folder}: {difference}; running on a cluster of its own"
    from distributed import Client

    try:
        client = Client(found.cluster.address, timeout=f"{timeout}s", set_as_default=False,
                        security=cluster_security(found.cluster))
    except (OSError, TimeoutError) as exc:
        return None, (f"not using the warm cluster at {found.cluster.address}: it does not answer ({exc}); "
                      "running on a cluster of its own")
    # not idle while the run is open, though no task runs (its values going to a slow store)
    with suppress(Exception):  # (a cluster of an older nbscale has no such handler: its timeout as before)
        client.sync(getattr(client.scheduler, HOLD_HANDLER), client=client.id)
    return client, f"on the warm cluster of {folder} at {found.cluster.address} (nbscale cluster status)"


# --- starting and stopping ------------------------------------------------------------------------


@contextmanager
def start_lock(folder, timeout: float = START_TIMEOUT_S):
    """Held while a warm cluster of `folder` is started or stopped (`fcntl.flock`: the kernel lets
    go of it when its holder dies, so a killed `start` never blocks the next one)."""
    path = state_folder(folder) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    # the owner's alone: another user who can open it can hold its lock, and stop every start and stop
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600), "a") as handle:
        if os.fstat(handle.fileno()).st_uid == os.geteuid():
            os.fchmod(handle.fileno(), 0o600)  # (one an older nbscale made readable by all)
        end = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > end:
                    raise WarmClusterError(f"another `nbscale cluster` command holds {path}: try again later") from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def start_or_find(folder, workers: int | None = None, idle_timeout: str | float = DEFAULT_IDLE_TIMEOUT,
                  timeout: float = START_TIMEOUT_S) -> tuple[WarmCluster, bool]:
    """The live warm cluster that runs in `folder` use (its own or a folder's above it: `find`), else
    `folder`'s own, started now. Returns it and whether it was started now."""
    found = find(folder)
    if found.live and not outdated(found.cluster):
        return found.cluster, False
    return start(found.folder if found.live else folder, workers, idle_timeout, timeout)


def start(folder, workers: int | None = None, idle_timeout: str | float = DEFAULT_IDLE_TIMEOUT,
          timeout: float = START_TIMEOUT_S, say=None) -> tuple[WarmCluster, bool]:
    """The live warm cluster of `folder`, started in a detached process unless one runs already
    (a stale or invalid one is replaced, and so is one running other nbscale code than this
    process's, once no run uses it). Returns it and whether it was started now. `say(text)`: told
    before a wait of seconds (a cluster whose process runs but does not answer), and of a replaced one."""
    from dask.utils import parse_timedelta

    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise WarmClusterError(f"{folder} is not a folder")
    if state_folder(folder).exists() and not state_folder(folder).is_dir():
        raise WarmClusterError(_not_a_folder(folder))
    idle_s = parse_timedelta(idle_timeout, default="s")
    try:
        with start_lock(folder, timeout):
            found = lookup(folder)
            if found.live and outdated(found.cluster) and not _runs_on(found.cluster):
                if say is not None:
                    say(f"replacing the warm cluster of {folder}: it runs other nbscale code than this one "
                        "(installed again or edited since it started)")
                end_process(found.cluster.pid, STOP_TIMEOUT_S)
            elif found.live:
                return found.cluster, False
            elif found.cluster is not None and is_serving(found.cluster.pid, folder):
                # its process runs but did not answer in time: slow (a loaded machine) or frozen
                if say is not None:
                    say(f"the warm cluster of {folder} (process {found.cluster.pid}) does not answer: waiting "
                        f"up to {PATIENT_PROBE_S:.0f} s for it, then replacing it (up to {STOP_TIMEOUT_S:.0f} s more)")
                if answers(found.cluster.address, timeout=PATIENT_PROBE_S, security=cluster_security(found.cluster)):
                    return found.cluster, False
                end_process(found.cluster.pid, STOP_TIMEOUT_S)  # one cluster per folder, never two
            remove_files(folder)
            process = spawn(folder, workers, idle_s)
            try:
                return wait_until_live(folder, process, timeout), True
            except BaseException:  # it did not start in time, or Ctrl-C: no cluster is left behind
                end_process(process.pid, STOP_TIMEOUT_S)
                process.wait()
                remove_files(folder, pid=process.pid)
                raise
    except OSError as exc:  # a read-only folder, a folder where the file should be
        raise WarmClusterError(f"cannot start a warm cluster in {state_folder(folder)}: "
                               f"{exc.strerror or exc}{f' ({exc.filename})' if exc.filename else ''}") from exc


def spawn(folder: Path, workers: int | None, idle_s: float) -> subprocess.Popen:
    """The warm cluster's process, detached: its own session, no terminal, output to its log."""
    command = [sys.executable, "-m", SERVE_MODULE, str(folder), "--idle-timeout", str(idle_s)]
    if workers:
        command += ["--workers", str(workers)]
    with open(log_path(folder), "ab") as log:
        return subprocess.Popen(command, cwd=folder, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, close_fds=True)


def wait_until_live(folder: Path, process: subprocess.Popen, timeout: float) -> WarmCluster:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = lookup(folder)
        if found.live and found.cluster.pid == process.pid:
            return found.cluster
        if process.poll() is not None:
            raise WarmClusterError(f"the warm cluster did not start (exit {process.returncode}):\n"
                                   f"{log_tail(folder)}")
        time.sleep(0.1)
    raise WarmClusterError(f"the warm cluster did not answer within {timeout:.0f} s:\n{log_tail(folder)}")


def log_tail(folder, lines: int = 20) -> str:
    try:
        return "\n".join(log_path(folder).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop(folder, timeout: float = STOP_TIMEOUT_S, pid: int | None = None) -> Lookup:
    """Stop the warm cluster that runs in `folder` use (`find`: its own, else the nearest live one
    above it) — SIGTERM to its verified process, SIGKILL after `timeout` — and remove its files.
    With `pid`: only `folder`'s own cluster, and only while its file still names that process (the
    Jupyter server closing the cluster it attached to, never one started since). Returns what was found."""
    folder = Path(folder).resolve()
    if pid is None:
        folder = Path(find(folder, probe=False).folder or folder)
    if not any(path.exists() for path in (info_path(folder), scheduler_file_path(folder))):
        return lookup(folder, probe=False)  # nothing to stop: no lock file made, nothing written
    try:
        with start_lock(folder, timeout):
            found = lookup(folder, probe=False)
            if pid is not None and (found.cluster is None or found.cluster.pid != pid):
                return found
            if found.cluster is not None and is_serving(found.cluster.pid, folder):
                found.runs = _runs_on(found.cluster)
                end_process(found.cluster.pid, timeout)
            remove_files(folder)
    except OSError as exc:
        raise WarmClusterError(f"cannot remove the warm cluster's files in {state_folder(folder)}: "
                               f"{exc.strerror or exc}{f' ({exc.filename})' if exc.filename else ''}") from exc
    return found


def _runs_on(cluster: WarmCluster) -> list[str]:
    """The runs with steps on `cluster` (none when it does not answer)."""
    security = cluster_security(cluster)
    if not answers(cluster.address, security=security):
        return []
    try:
        return list(scheduler_facts(cluster.address, security).get("runs", []))
    except Exception:  # noqa: BLE001 - it is being stopped: what it ran is only told
        return []


def end_process(pid: int, timeout: float) -> None:
    """SIGTERM `pid` (it closes its cluster), then SIGKILL it and what is left below it."""
    import psutil

    try:
        process = psutil.Process(pid)
        below = process.children(recursive=True)
        os.kill(pid, signal.SIGTERM)
        process.wait(timeout)
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired:
        for p in [process, *below]:
            with suppress(psutil.NoSuchProcess):
                p.kill()
        psutil.wait_procs([process, *below], timeout=5)


def remove_files(folder, pid: int | None = None) -> None:
    """Remove the warm cluster's files (with `pid`: only if they still describe that process)."""
    if pid is not None:
        found = lookup(folder, probe=False)
        if found.cluster is None or found.cluster.pid != pid:
            return
    for path in (info_path(folder), scheduler_file_path(folder), tls_path(folder)):
        with suppress(FileNotFoundError):
            path.unlink()


def write_json(path: Path, data: dict) -> None:
    # readable by the owner alone: it names the scheduler's address, where a run sends its code
    write_private(path, json.dumps(data, indent=1))


def write_private(path: Path, text: str) -> None:
    """Atomically (a reader sees the old file, the new one, or none), readable by the owner alone."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with suppress(FileNotFoundError):
        tmp.unlink()  # (left by a killed writer of the same pid)
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


# --- what it is doing -----------------------------------------------------------------------------


def status(folder) -> dict:
    """The warm cluster that runs in `folder` use (`find`) as `nbscale cluster status` shows it
    (JSON-serialisable); `folder` is the one it belongs to, `asked` the one asked about."""
    asked = Path(folder).resolve()
    found = find(asked)
    answer = {"folder": found.folder or str(asked), "asked": str(asked), "state": found.state,
              "reason": found.reason or None}
    if found.cluster is not None:
        answer.update(found.cluster.to_json())
        answer["not_used"] = environment_difference(found.cluster)  # why runs started here do not use it
    if found.live:
        try:
            answer.update(scheduler_facts(found.cluster.address, cluster_security(found.cluster)))
        except (OSError, TimeoutError) as exc:
            answer.update(state=STALE, reason=f"its scheduler at {found.cluster.address} does not answer ({exc})")
    return answer


def scale(folder, n: int, timeout: float = 60.0) -> dict:
    """Scale the live warm cluster of `folder` to `n` workers and wait until it has them; the new
    workers are started as the first ones were. WarmClusterError when there is none or `n` is refused."""
    found = find(folder)
    if not found.live:
        raise WarmClusterError(f"no live warm cluster in {Path(folder).resolve()}"
                               + (f": {found.reason}" if found.reason else "") + " (nbscale cluster start)")
    from distributed import Client

    with Client(found.cluster.address, timeout=f"{PROBE_TIMEOUT_S * 2}s", set_as_default=False,
                security=cluster_security(found.cluster)) as client:
        answer = client.sync(getattr(client.scheduler, SCALE_HANDLER), n=n)
        if "error" in answer:
            raise WarmClusterError(answer["error"])
        deadline = time.monotonic() + timeout
        while len(client.scheduler_info(n_workers=-1)["workers"]) != n:
            if time.monotonic() > deadline:
                raise WarmClusterError(f"the warm cluster did not reach {n} workers in {timeout:.0f} s "
                                       f"(see {log_path(found.folder)})")
            time.sleep(0.2)
    return status(folder)


def scheduler_facts(address: str, security=None) -> dict:
    from distributed import Client

    with Client(address, timeout=f"{PROBE_TIMEOUT_S * 2}s", set_as_default=False, security=security) as client:
        facts = client.run_on_scheduler(facts_on_scheduler)
    facts["clients"] -= 1  # this one
    return facts


BUSY_STATES = ("processing", "waiting", "queued", "no-worker")


def busy_runs(dask_scheduler=None) -> list[str]:
    """The runs (first 8 characters of their ids) with steps executing or waiting on a scheduler
    (run there by `run_on_scheduler`): those that stopping the cluster would fail. A finished run's
    results still held by its client do not count."""
    return sorted({str(key).rsplit("-", 1)[-1] for key, task in dask_scheduler.tasks.items()
                   if str(key).startswith("nbscale-") and task.state in BUSY_STATES})


def facts_on_scheduler(dask_scheduler=None) -> dict:
    """Workers, memory, idle time and the runs on a scheduler (run there by `run_on_scheduler`)."""
    from .engines.dask_lifecycle import NAMESPACE

    workers = list(dask_scheduler.workers.values())
    runs = set(dask_scheduler.task_metadata.get(NAMESPACE, {}))
    # tasks of runs whose records are gone already: keys end in the run id's first 8 characters
    prefixes = {str(k).rsplit("-", 1)[-1] for k in dask_scheduler.tasks if str(k).startswith("nbscale-")}
    runs |= {p for p in prefixes if not any(r.startswith(p) for r in runs)}
    idle_since = dask_scheduler.idle_since
    return {
        "workers": len(workers),
        "threads": sum(ws.nthreads for ws in workers),
        "memory_bytes": sum(ws.memory.process for ws in workers),
        "memory_limit_bytes": sum(ws.memory_limit or 0 for ws in workers),
        "idle_s": round(time.time() - idle_since, 1) if idle_since else 0.0,
        "tasks": len(dask_scheduler.tasks),
        "clients": len([c for c in dask_scheduler.clients if c != "fire-and-forget"]),
        "runs": sorted(runs),
    }
