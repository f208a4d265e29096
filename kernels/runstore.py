"""The run store: a SQLite database (WAL) of runs, step runs, events and metrics.

It is the one source the CLI, the panel and the widget read; several processes (engines,
the Jupyter server) may write to it at the same time.

Every run ends: a run records its owner (the process running it, `liveness.py`), which renews the
run's heartbeat while it holds the run; whoever opens or reads the store finishes the runs whose
owner is gone (`failed`, "the process running it stopped"). A damaged or read-only file is a
`RunStoreError` that says so (`storefile.py`); a read-only store can still be read.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any

from . import storefile
from .children import end_orphans_of
from .contract import (
    CACHED,
    CANCELLED,
    FAILED,
    FINISHED,
    OWNER_STOPPED,
    OWNER_STOPPED_EARLY,
    PENDING,
    RUN_FINISHED,
    RUNNING,
    STATUSES,
    STOP_REQUESTED,
    SUCCEEDED,
)
from .errors import AmbiguousRunId, RunStoreError, RunStoreReadOnly, UnknownRun
from .fatal_errors import died_of
from .liveness import (
    HEARTBEAT_INTERVAL_S,
    OWNER_TIMEOUT_S,
    Heartbeat,
    current_owner,
    owner_gone,
    owner_visible,
    process_alive,
)
from .runschema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    STEP_FIELDS,
    check_status,
    metric_value,
    now,
    row_dict,
    step_values,
    to_json,
)

__all__ = ["SCHEMA_VERSION", "STATUSES", "RunStore", "now"]

BUSY_TIMEOUT_MS = 30_000
REAP_INTERVAL_S = 1.0  # reads look for runs whose owner is gone at most this often
HEAVY_FIELDS = frozenset({"profiles", "lineage"})  # large JSON a step run keeps; `get_run(heavy=False)` skips it


class RunStore:
    """`heartbeat_s`: how often this process renews the heartbeat of the runs it owns;
    `owner_timeout_s`: how old another host's heartbeat may be before its run is taken for dead."""

    def __init__(self, path: str | os.PathLike, *, heartbeat_s: float = HEARTBEAT_INTERVAL_S,
                 owner_timeout_s: float = OWNER_TIMEOUT_S):
        self.path = os.fspath(path)
        self.heartbeat_s, self.owner_timeout_s = heartbeat_s, owner_timeout_s
        self.read_only = False
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._owned: set[str] = set()  # runs this store created and has not finished
        self._heartbeat: Heartbeat | None = None  # runs while this store owns runs
        self._heartbeat_lock = threading.Lock()
        self._lost, self._lost_listeners, self._lost_lock = False, [], threading.Lock()
        self._next_reap = 0.0
        self._reap_refused = False  # a reap found the store read-only (`_as_reaped`)
        self._db: sqlite3.Connection | None = None
        parent = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(parent):
            try:
                os.makedirs(parent, exist_ok=True)
            except OSError as exc:  # a read-only folder or file system, a file in the way
                raise RunStoreError(_unmade_folder_message(parent, exc)) from exc
        storefile.refuse_cut_short(self.path)
        try:
            self._open(self.path)
        except RunStoreError as exc:
            cause = exc.__cause__
            if not (storefile.is_read_only(cause) and os.path.exists(self.path)):
                raise
            self._open_read_only()
        self._watch = storefile.FileWatch(self.path)
        self._reap_due()

    def _open(self, target: str, uri: bool = False) -> None:
        with self._sqlite_errors():  # (a folder or a dangling link in its place fails to connect)
            # Autocommit mode: every transaction below is opened explicitly.
            self._db = sqlite3.connect(target, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                       check_same_thread=False, uri=uri)
            self._db.row_factory = sqlite3.Row
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._refuse_foreign(self._db)
            if self.read_only:
                self._check_version(self._version(self._db))
                return
            self._enable_wal()
            # NORMAL is safe under WAL: a power cut may lose the last commits, never corrupt.
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._db.execute("PRAGMA foreign_keys = ON")
        self._migrate()

    def _open_read_only(self) -> None:
        """History can still be read; every write says why it cannot. Without the right to create
        the WAL's shared-memory file (a read-only folder) SQLite reads only as `immutable`."""
        self.read_only = True
        for immutable in (False, True):
            if self._db is not None:
                self._db.close()
            try:
                self._open(storefile.read_only_uri(self.path, immutable), uri=True)
                return
            except RunStoreError as exc:
                if immutable or not storefile.is_read_only(exc.__cause__):
                    raise

    @contextmanager
    def _sqlite_errors(self) -> Iterator[None]:
        """A SQLite error becomes the RunStoreError that says what is wrong with the file (the
        SQLite error stays its `__cause__`)."""
        try:
            yield
        except sqlite3.Error as exc:
            raise storefile.store_error(exc, self.path) from exc

    def _enable_wal(self) -> None:
        # Switching a new database to WAL needs an exclusive lock, and SQLite answers "locked"
        # at once, without waiting, while another process is switching it too: so retry.
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                self._db.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def close(self) -> None:
        heartbeat = self._heartbeat
        if heartbeat is not None:
            heartbeat.stop()
        self._watch.close()
        with self._lock:
            self._db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front: a deferred transaction that upgrades
        # from read to write fails at once under WAL instead of waiting for busy_timeout.
        if self.read_only:
            raise RunStoreReadOnly(self.path, "the file could only be opened for reading")
        self._same_process()
        with self._lock, self._sqlite_errors():
            try:  # BEGIN inside: a Ctrl-C right after it must not leave the transaction open
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
            except BaseException as exc:
                self._rollback()
                if isinstance(exc, sqlite3.IntegrityError):
                    raise RunStoreError(f"{exc} (unknown run, or a duplicate row)") from exc
                raise
            self._db.execute("COMMIT")

    def _same_process(self) -> None:
        """SQLite's connection must not be used by a forked copy of this process (a step's `os.fork`):
        the copy, which is not the run, would write the run's rows through it, and could damage the file."""
        if os.getpid() != self._pid:
            raise RunStoreError(f"{self.path}: opened by process {self._pid}; a process forked from it "
                                f"({os.getpid()}) does not use it")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        # One read transaction: a consistent snapshot across the several SELECTs of a call.
        self._same_process()
        with self._lock, self._sqlite_errors():
            try:
                self._db.execute("BEGIN")
                yield self._db
            finally:
                self._rollback()  # nothing to keep: ends the read

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # no transaction left to end (SQLite ended it on a fatal error)

    def _refuse_foreign(self, db: sqlite3.Connection) -> None:
        """Another program's database (`runs.sqlite` a link to it, or a `--store` typed wrong) is
        left as it is: no journal switch, no tables of ours added to it."""
        tables = {row[0] for row in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
        if tables and not {"schema_version", "runs"} <= tables:
            raise RunStoreError(f"{self.path} is not an nbscale run store (it holds other tables: "
                                f"{', '.join(sorted(tables)[:5])}); nothing was changed. Move it away, or run "
                                "the notebook from another folder")

    @staticmethod
    def _version(db: sqlite3.Connection) -> int:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_version'").fetchone():
            return 0
        row = db.execute("SELECT version FROM schema_version").fetchone()
        return row[0] if row else 0

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise RunStoreError(f"{self.path} has schema version {version}; this nbscale knows up to "
                                f"{SCHEMA_VERSION} (upgrade nbscale)")

    def _migrate(self) -> None:
        with self._lock, self._sqlite_errors():
            current = self._version(self._db) == SCHEMA_VERSION  # the usual case: no write at open
        if current:
            return
        with self._write() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            version = self._version(db)
            self._check_version(version)
            for script in MIGRATIONS[version:]:
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
            db.execute("DELETE FROM schema_version")
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))

    # -- runs -----------------------------------------------------------------------------

    def create_run(
        self, notebook: str, pipeline_name: str, engine: str, parameters: dict | None,
        steps: list[str],
    ) -> str:
        """A new pending run owned by this process, which keeps its heartbeat until it finishes."""
        run_id = uuid.uuid4().hex
        owner = current_owner()
        with self._write() as db:
            db.execute(
                "INSERT INTO runs (id, notebook, pipeline, engine, status, parameters, created, owner_pid,"
                " owner_host, owner_started, owner_space, heartbeat)"
                " VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?)",
                (run_id, str(notebook), pipeline_name, engine, to_json(parameters or {}), now(),
                 owner.pid, owner.host, owner.started, owner.space, time.time()),
            )
            db.executemany(
                "INSERT INTO step_runs (run_id, step, position, status) VALUES (?, ?, ?, 'pending')",
                [(run_id, step, i) for i, step in enumerate(steps)],
            )
        self._owned.add(run_id)
        self._start_heartbeat()
        return run_id

    def start_run(self, run_id: str) -> None:
        self._update_run(run_id, status=RUNNING, started=now())

    @staticmethod
    def _status(db: sqlite3.Connection, run_id: str) -> str:
        row = db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise UnknownRun(f"no run {run_id!r}")
        return row["status"]

    def finish_run(self, run_id: str, status: str, error: Any = None) -> str:
        """End the run with `status`; the final status. A run another process ended meanwhile keeps
        its status: it took the run for dead (no heartbeat for `owner_timeout_s`: a stalled process)
        and told its readers so, and a run must not come back from the dead."""
        check_status(status)
        with self._write() as db:
            recorded = self._status(db, run_id)
            if recorded not in FINISHED:
                db.execute("UPDATE runs SET status = ?, finished = ?, error = ? WHERE id = ?",
                           (status, now(), to_json(error), run_id))
        self._owned.discard(run_id)
        return recorded if recorded in FINISHED else status

    def end_unfinished(self, run_id: str, status: str, error: Any) -> str:
        """Finish a run that stopped before its steps did (cancelled, or its process died): running
        steps end `failed` (with `error`) or `cancelled` as the run, pending ones `cancelled`, and a
        `run_finished` event records it. A run already finished keeps its status; the final status."""
        with self._write() as db:
            recorded = self._status(db, run_id)
            if recorded not in FINISHED:
                self._end(db, run_id, check_status(status), error)
        self._owned.discard(run_id)
        return recorded if recorded in FINISHED else status

    def end_unfinished_at_once(self, run_id: str, status: str, error: Any) -> None:
        """`end_unfinished` for a process about to end (a second SIGTERM): see `_at_once`."""
        with self._at_once() as db:
            if self._status(db, run_id) not in FINISHED:
                self._end(db, run_id, check_status(status), error)

    def note_stop_requested_at_once(self, run_id: str, reason: str) -> None:
        """A signal asked the run to stop: if its process dies before the run ends (SIGKILL after the
        grace time of a service manager or Kubernetes), whoever finds its owner gone ends it
        cancelled for `reason`, not failed. See `_at_once`."""
        with self._at_once() as db:
            _insert_event(db, run_id, STOP_REQUESTED, None, {"reason": reason})

    @contextmanager
    def _at_once(self, wait_s: float = 1.0) -> Iterator[sqlite3.Connection]:
        """A write from a signal handler: through a connection of its own, taking none of this
        store's locks (the thread it interrupted may hold them), giving up after `wait_s` if another
        writer holds the file."""
        if self.read_only:
            raise RunStoreReadOnly(self.path, "the file could only be opened for reading")
        db = sqlite3.connect(self.path, timeout=wait_s, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            self._refuse_foreign(db)  # the file may have been replaced since the store opened it
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        finally:
            db.close()  # uncommitted: rolled back

    @staticmethod
    def _end(db: sqlite3.Connection, run_id: str, status: str, error: Any) -> None:
        stamp = now()
        if status == FAILED:
            db.execute("UPDATE step_runs SET status = ?, finished = ?, error = ? WHERE run_id = ? AND status = ?",
                       (FAILED, stamp, to_json(error), run_id, RUNNING))
        db.execute("UPDATE step_runs SET status = ?, finished = ? WHERE run_id = ? AND status IN (?, ?)",
                   (CANCELLED, stamp, run_id, PENDING, RUNNING))
        db.execute("UPDATE runs SET status = ?, finished = ?, error = ? WHERE id = ?",
                   (status, stamp, to_json(error), run_id))
        _insert_event(db, run_id, RUN_FINISHED, None, {"status": status, "error": error}, stamp)

    # -- owners: heartbeats, and the runs whose owner is gone ----------------------------------------

    def reap(self) -> list[str]:
        """Fail the unfinished runs whose owner is gone (`liveness.owner_gone`); their ids."""
        with self._read() as db:
            rows = db.execute("SELECT id, owner_pid, owner_host, owner_started, owner_space, heartbeat FROM runs"
                              " WHERE status IN (?, ?)", (PENDING, RUNNING)).fetchall()
        stamp = time.time()
        gone = [row for row in rows if row["id"] not in self._owned and owner_gone(
            row["owner_pid"], row["owner_host"], row["owner_started"], row["heartbeat"], space=row["owner_space"],
            now=stamp, timeout=self.owner_timeout_s)]
        reaped, owners = [], []
        for row in gone:
            with self._write() as db:
                # unchanged since read: not finished meanwhile, no heartbeat since
                still = db.execute("SELECT 1 FROM runs WHERE id = ? AND status IN (?, ?) AND heartbeat IS ?",
                                   (row["id"], PENDING, RUNNING, row["heartbeat"])).fetchone()
                if still:
                    asked = self._stop_requested(db, row["id"])
                    self._end(db, row["id"], *((CANCELLED, f"{asked} ({OWNER_STOPPED_EARLY})") if asked
                                               else (FAILED, _owner_stopped(row["owner_pid"], row["owner_host"]))))
                    reaped.append(row["id"])
            if row["id"] in reaped and owner_visible(row["owner_pid"], row["owner_host"], row["owner_space"]):
                owners.append((row["owner_pid"], row["owner_started"] or 0.0))
        if owners:
            # what their steps started; not while the read that found them waits (a process that
            # ignores SIGTERM holds it 2 s), and not a daemon: a CLI that exits first still ends them
            threading.Thread(target=_end_orphans_of_all, args=(owners,), name="nbscale-end-orphans").start()
        return reaped

    @staticmethod
    def _stop_requested(db: sqlite3.Connection, run_id: str) -> str | None:
        row = db.execute("SELECT payload FROM events WHERE run_id = ? AND kind = ? ORDER BY id LIMIT 1",
                         (run_id, STOP_REQUESTED)).fetchone()
        payload = row_dict(row).get("payload") if row else None
        return payload.get("reason") if isinstance(payload, dict) else None

    def _reap_due(self) -> None:
        """`reap`, at most once per REAP_INTERVAL_S (every read calls this)."""
        if self.read_only or time.monotonic() < self._next_reap:
            return
        self._next_reap = time.monotonic() + REAP_INTERVAL_S
        try:
            self.reap()
        except RunStoreReadOnly:
            self._next_reap = float("inf")  # a store we cannot write is only read
            self._reap_refused = True

    def _start_heartbeat(self) -> None:
        with self._heartbeat_lock:
            if self._heartbeat is None:
                self._heartbeat = Heartbeat(self._beat, self.heartbeat_s)
                self._heartbeat.start()

    def _beat(self) -> bool:
        """Renew the heartbeat of the runs this store owns, and watch the file; False (the thread
        ends, and the store can be collected) once it owns none: the next run starts another."""
        self.file_lost()
        with self._heartbeat_lock:
            owned = list(self._owned)
            if not owned:
                self._heartbeat = None
                return False
        with self._write() as db:
            stamp = time.time()
            db.executemany("UPDATE runs SET heartbeat = ? WHERE id = ?", [(stamp, run_id) for run_id in owned])
        return True

    # -- the file under the store ---------------------------------------------------------------

    def file_lost(self) -> bool:
        """True once the store's file was deleted or replaced while open (its records went with it;
        SQLite goes on writing to the unlinked file). Calls the `on_file_lost` listeners once."""
        with self._lost_lock:
            if self._lost or not self._watch.lost():
                return self._lost
            self._lost = True
        for listener in list(self._lost_listeners):
            listener()
        return True

    def on_file_lost(self, listener) -> None:
        """Call `listener()` (from the heartbeat thread, or whoever asks `file_lost`) once the file is lost."""
        self._lost_listeners.append(listener)

    def remove_file_lost_listener(self, listener) -> None:
        if listener in self._lost_listeners:
            self._lost_listeners.remove(listener)

    def _update_run(self, run_id: str, **fields: Any) -> None:
        columns = ", ".join(f"{name} = ?" for name in fields)
        with self._write() as db:
            cursor = db.execute(f"UPDATE runs SET {columns} WHERE id = ?", (*fields.values(), run_id))
            if cursor.rowcount == 0:
                raise UnknownRun(f"no run {run_id!r}")

    # -- step runs ------------------------------------------------------------------------

    def update_step(self, run_id: str, step: str, **fields: Any) -> None:
        """Set columns of a step run. Entering `running` or a finished status stamps
        `started` / `finished` unless given."""
        unknown = set(fields) - STEP_FIELDS
        if unknown:
            raise RunStoreError(f"unknown step run field(s): {', '.join(sorted(unknown))}")
        if not fields:
            return
        values = step_values(fields)
        columns = ", ".join(f"{name} = ?" for name in values)
        with self._write() as db:
            if run_id in self._owned and self._status(db, run_id) in FINISHED:
                return  # another process took this one's run for dead: its steps stay as it left them
            cursor = db.execute(
                f"UPDATE step_runs SET {columns} WHERE run_id = ? AND step = ?",
                (*values.values(), run_id, step),
            )
            if cursor.rowcount == 0:
                raise RunStoreError(f"no step {step!r} in run {run_id!r}")

    # -- events, metrics -------------------------------------------------------

    def add_event(
        self, run_id: str, kind: str, step: str | None = None, payload: Any = None
    ) -> int:
        with self._write() as db:
            return _insert_event(db, run_id, kind, step, payload)

    def events_since(self, run_id: str, after_id: int = 0) -> list[dict]:
        with self._read() as db:
            rows = db.execute(
                "SELECT * FROM events WHERE run_id = ? AND id > ? ORDER BY id", (run_id, after_id)
            ).fetchall()
        return [row_dict(row) for row in rows]

    def notebook_events_since(self, notebook: str, after_id: int = 0) -> list[dict]:
        """Events of every run of `notebook` newer than `after_id` (to follow runs of other processes)."""
        self._reap_due()
        with self._read() as db:
            rows = db.execute(
                "SELECT e.* FROM events e JOIN runs r ON r.id = e.run_id WHERE r.notebook = ? AND e.id > ?"
                " ORDER BY e.id", (str(notebook), after_id)
            ).fetchall()
        return [row_dict(row) for row in rows]

    def last_event_id(self) -> int:
        with self._read() as db:
            return db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]

    def record_metrics(self, run_id: str, step: str | None, metrics: dict[str, Any]) -> None:
        """Record a step's metrics (an integer stays an integer: `runschema.metric_value`)."""
        try:
            rows = [(run_id, str(name), metric_value(value), step) for name, value in metrics.items()]
        except (TypeError, ValueError, OverflowError) as exc:
            raise RunStoreError(f"metrics must be numbers: {exc}") from exc
        with self._write() as db:
            db.executemany(
                "INSERT OR REPLACE INTO metrics (run_id, name, value, step) VALUES (?, ?, ?, ?)",
                rows,
            )

    # -- queries --------------------------------------------------------------------------

    def resolve(self, prefix: str) -> str:
        """The full id of the one run whose id starts with `prefix` (like git's short ids)."""
        prefix = prefix.strip().lower()
        if not re.fullmatch(r"[0-9a-f]+", prefix):
            raise UnknownRun(f"no run {prefix!r}")
        with self._read() as db:
            rows = db.execute(
                "SELECT id FROM runs WHERE id >= ? AND id < ? ORDER BY id LIMIT 2",
                (prefix, prefix + "g"),  # "g" sorts after every hex digit
            ).fetchall()
        if not rows:
            raise UnknownRun(f"no run {prefix!r}")
        if len(rows) > 1:
            raise AmbiguousRunId(f"run id prefix {prefix!r} is ambiguous")
        return rows[0][0]

    def get_run(self, run_id: str, heavy: bool | Collection[str] = True) -> dict:
        """The run with its step runs and metrics. `heavy=False` leaves the steps' profiles and
        lineage out (None): what a view that polls a run does not show costs it nothing; or the
        heavy fields to read (`("profiles",)`: a drift check reads no lineage)."""
        self._reap_due()
        run_id = self.resolve(run_id)
        left_out = HEAVY_FIELDS - (HEAVY_FIELDS if heavy is True else set(heavy or ()))
        columns = "*" if not left_out else ", ".join(("run_id", "step", "position", *sorted(STEP_FIELDS - left_out)))
        with self._read() as db:
            run = row_dict(db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone())
            run["steps"] = self._all(
                db, f"SELECT {columns} FROM step_runs WHERE run_id = ? ORDER BY position", run_id
            )
            if left_out:
                run["steps"] = [{**row, **dict.fromkeys(left_out)} for row in run["steps"]]
            run["metrics"] = self._all(
                db, "SELECT name, value, step FROM metrics WHERE run_id = ? ORDER BY name", run_id
            )
        return self._as_reaped(run)

    def _as_reaped(self, run: dict) -> dict:
        """A run as `reap` would leave it, in a store it cannot write (read-only): one whose owner was
        a process of this host that is gone shows failed, its unfinished steps cancelled, instead of
        running in a dead process. (Owners elsewhere are told by heartbeats, which a read cannot renew.)"""
        unreaped = self.read_only or self._reap_refused
        if not unreaped or run.get("status") not in (PENDING, RUNNING) or run["id"] in self._owned:
            return run
        pid, host, space = run.get("owner_pid"), run.get("owner_host"), run.get("owner_space")
        if not owner_visible(pid, host, space) or process_alive(int(pid), run.get("owner_started")):
            return run
        steps = [{**step, "status": CANCELLED} if step.get("status") in (PENDING, RUNNING) else step
                 for step in run.get("steps", ())]
        ended = {"status": FAILED, "error": _owner_stopped(pid, host)}
        return {**run, **ended, **({"steps": steps} if "steps" in run else {})}

    def stored_lineage(self, key: str, other_than: str) -> tuple[dict | None, str | None]:
        """The lineage record of the newest step run (of a run other than `other_than`) that ran
        under cache key `key` and was not itself cached, and its run's id; (None, None) if none.
        Only that row's lineage is read, not whole runs with their profiles."""
        self._reap_due()
        with self._read() as db:
            rows = db.execute(
                "SELECT s.run_id, s.lineage FROM step_runs s JOIN runs r ON r.id = s.run_id"
                " WHERE s.hash = ? AND s.run_id != ? AND NOT s.cached AND s.lineage IS NOT NULL"
                " ORDER BY r.created DESC, r.rowid DESC",
                (key, other_than),
            )
            for row in rows:
                record = row_dict(row)["lineage"]
                if isinstance(record, dict) and record.get("key") == key:
                    return record, row["run_id"]
        return None, None

    def list_runs(self, notebook: str | None = None, limit: int = 50) -> list[dict]:
        """Runs, newest first."""
        self._reap_due()
        where, args = ("WHERE notebook = ?", [str(notebook)]) if notebook is not None else ("", [])
        with self._read() as db:
            rows = db.execute(
                f"SELECT * FROM runs {where} ORDER BY created DESC, rowid DESC LIMIT ?",
                (*args, limit),
            ).fetchall()
        return [self._as_reaped(row_dict(row)) for row in rows]

    def last_keys(self, notebook: str, runs: int = 20) -> dict[str, str]:
        """Step → the key of its latest result, run or reused, among the notebook's last `runs` runs."""
        with self._read() as db:
            rows = db.execute(
                "SELECT step, hash FROM step_runs JOIN (SELECT id, created, rowid AS n FROM runs WHERE notebook = ? "
                "ORDER BY created DESC, rowid DESC LIMIT ?) AS recent ON recent.id = step_runs.run_id "
                "WHERE status IN (?, ?) AND hash IS NOT NULL ORDER BY recent.created, recent.n",
                (str(notebook), runs, SUCCEEDED, CACHED),
            ).fetchall()
        return {step: key for step, key in rows}

    def metrics_history(self, notebook: str) -> list[dict]:
        """Every metric of every run of a notebook, oldest run first."""
        self._reap_due()
        with self._read() as db:
            rows = db.execute(
                "SELECT r.id AS run_id, r.created, r.status, r.parameters,"
                " m.name, m.value, m.step FROM metrics m JOIN runs r ON r.id = m.run_id"
                " WHERE r.notebook = ? ORDER BY r.created, r.rowid, m.name",
                (str(notebook),),
            ).fetchall()
        return [row_dict(row) for row in rows]

    # -- pins: a run kept under a name per notebook (a baseline to compare later runs with) --------------

    def pin(self, notebook: str, name: str, run_id: str) -> str:
        """Pin run `run_id` (a unique prefix works) as `name` for `notebook`, replacing an earlier pin
        of that name; the full run id. UnknownRun for an unknown run."""
        run_id = self.resolve(run_id)
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO pins (notebook, name, run_id, created) VALUES (?, ?, ?, ?)",
                       (str(notebook), str(name), run_id, now()))
        return run_id

    def unpin(self, notebook: str, name: str) -> bool:
        """Remove the pin `name` of `notebook`; False when there was none."""
        with self._write() as db:
            return db.execute("DELETE FROM pins WHERE notebook = ? AND name = ?",
                              (str(notebook), str(name))).rowcount > 0

    def pinned(self, notebook: str, name: str) -> str | None:
        """The run id pinned as `name` for `notebook`, or None."""
        with self._read() as db:
            row = db.execute("SELECT run_id FROM pins WHERE notebook = ? AND name = ?",
                             (str(notebook), str(name))).fetchone()
        return row[0] if row else None

    def pins(self, notebook: str | None = None) -> list[dict]:
        """Pins (of `notebook`, or of every notebook), by notebook and name: notebook, name, run_id, created."""
        where, args = ("WHERE notebook = ?", (str(notebook),)) if notebook is not None else ("", ())
        with self._read() as db:
            rows = db.execute(f"SELECT notebook, name, run_id, created FROM pins {where} ORDER BY notebook, name",
                              args).fetchall()
        return [dict(row) for row in rows]

    @staticmethod
    def _all(db: sqlite3.Connection, sql: str, run_id: str) -> list[dict]:
        return [row_dict(row) for row in db.execute(sql, (run_id,)).fetchall()]


def _insert_event(db: sqlite3.Connection, run_id: str, kind: str, step: str | None, payload: Any,
                  stamp: str | None = None) -> int:
    return db.execute("INSERT INTO events (run_id, time, kind, step, payload) VALUES (?, ?, ?, ?, ?)",
                      (run_id, stamp or now(), kind, step, to_json(payload))).lastrowid


def _owner_stopped(pid, host) -> str:
    """Why a run whose owner is gone ended: "the process running it stopped", and how, where its
    process wrote that it died of a fatal error (`fatal_errors`, on this host only)."""
    fatal = died_of(pid, host)
    return f"{OWNER_STOPPED}: {fatal}" if fatal else OWNER_STOPPED


def _end_orphans_of_all(owners: list[tuple[int, float]]) -> None:
    for pid, started in owners:
        end_orphans_of(pid, started)


def _unmade_folder_message(folder: str, exc: OSError) -> str:
    """Why the run store's folder cannot be made, and what to do: a file or a broken link in its
    place is not a folder that is not writable."""
    blocker = next((p for p in (folder, os.path.dirname(folder)) if os.path.lexists(p) and not os.path.isdir(p)), None)
    if blocker is not None:
        what = "a link to nothing" if os.path.islink(blocker) and not os.path.exists(blocker) else "a file"
        return (f"cannot create the folder {folder} for the run store: {blocker} is {what}, not a folder. Move it "
                "away (nbscale keeps its state in that folder)")
    return (f"cannot create the folder {folder} for the run store ({exc.strerror or exc}): no run can be recorded. "
            "Make the notebook's folder writable, or run a copy of the notebook in a writable folder")
