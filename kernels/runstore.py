"""The run store: a SQLite database (WAL) of runs, step runs, events and metrics.

It is the one source the CLI, the panel and the widget read; several processes (engines,
the Jupyter server) may write to it at the same time.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from .contract import FINISHED, RUNNING, STATUSES
from .errors import AmbiguousRunId, RunStoreError

SCHEMA_VERSION = 3
BUSY_TIMEOUT_MS = 30_000

_SCHEMA_V1 = """
CREATE TABLE runs (
    id TEXT PRIMARY KEY, notebook TEXT NOT NULL, pipeline TEXT NOT NULL, engine TEXT NOT NULL,
    status TEXT NOT NULL, parameters TEXT NOT NULL DEFAULT '{}',
    created TEXT NOT NULL, started TEXT, finished TEXT, error TEXT
);
CREATE INDEX runs_notebook ON runs (notebook, created);
CREATE TABLE step_runs (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE, step TEXT NOT NULL,
    position INTEGER NOT NULL, status TEXT NOT NULL, hash TEXT, started TEXT, finished TEXT,
    duration_s REAL, cpu_s REAL, peak_rss_bytes INTEGER, attempts INTEGER NOT NULL DEFAULT 0,
    stdout TEXT, stderr TEXT, error TEXT, cached INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, step)
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    time TEXT NOT NULL, kind TEXT NOT NULL, step TEXT, payload TEXT
);
CREATE INDEX events_run ON events (run_id, id);
CREATE TABLE metrics (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE, name TEXT NOT NULL,
    value REAL, step TEXT, PRIMARY KEY (run_id, name)
);
CREATE TABLE artifacts (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE, step TEXT NOT NULL,
    hash TEXT NOT NULL, url TEXT NOT NULL, manifest TEXT, PRIMARY KEY (run_id, step)
);
"""

# v2: the artifacts table never had a writer (the artifact store's manifests are the record)
_SCHEMA_V2 = "DROP TABLE IF EXISTS artifacts;"
# v3: why a step's stored result was not reused (the dependencies that changed), as a JSON list
_SCHEMA_V3 = "ALTER TABLE step_runs ADD COLUMN stale TEXT;"

# Migration i brings the schema from version i to i + 1; append, never edit.
_MIGRATIONS: list[str] = [_SCHEMA_V1, _SCHEMA_V2, _SCHEMA_V3]

STEP_FIELDS = {
    "status", "hash", "started", "finished", "duration_s", "cpu_s", "peak_rss_bytes",
    "attempts", "stdout", "stderr", "error", "cached", "stale",
}
_JSON_COLUMNS = {"parameters", "error", "payload", "manifest", "stale"}


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _timestamp(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, timezone.utc)
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds")


def _json(value: Any) -> str | None:
    # default=str: an odd payload (a numpy float, a path) must never fail a run mid-way.
    return None if value is None else json.dumps(value, default=str, ensure_ascii=False)


def _check_status(status: str) -> str:
    if status not in STATUSES:
        raise RunStoreError(f"invalid status {status!r}; expected one of {', '.join(STATUSES)}")
    return status


def _row(row: sqlite3.Row) -> dict:
    data = dict(row)
    for key in _JSON_COLUMNS & data.keys():
        if data[key] is not None:
            data[key] = _loads(data[key])
    if "cached" in data:
        data["cached"] = bool(data["cached"])
    return data


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # a run error stored as plain text


class RunStore:
    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        self._lock = threading.Lock()
        # Autocommit mode: every transaction below is opened explicitly.
        self._db = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
            check_same_thread=False,
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self._enable_wal()
        # NORMAL is safe under WAL: a power cut may lose the last commits, never corrupt.
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute("PRAGMA foreign_keys = ON")
        self._migrate()

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
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException as exc:
                self._db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.IntegrityError):
                    raise RunStoreError(f"{exc} (unknown run, or a duplicate row)") from exc
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        # One read transaction: a consistent snapshot across the several SELECTs of a call.
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield self._db
            finally:
                self._db.execute("COMMIT")

    def _migrate(self) -> None:
        with self._write() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = db.execute("SELECT version FROM schema_version").fetchone()
            version = row[0] if row else 0
            if version > SCHEMA_VERSION:
                raise RunStoreError(
                    f"{self.path} has schema version {version}; this nbscale knows up to "
                    f"{SCHEMA_VERSION} (upgrade nbscale)"
                )
            for script in _MIGRATIONS[version:]:
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
            db.execute("DELETE FROM schema_version")
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))

    # -- runs -----------------------------------------------------------------------------

    def create_run(
        self, notebook: str, pipeline_name: str, engine: str, parameters: dict | None,
        steps: list[str],
    ) -> str:
        run_id = uuid.uuid4().hex
        with self._write() as db:
            db.execute(
                "INSERT INTO runs (id, notebook, pipeline, engine, status, parameters, created)"
                " VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                (run_id, str(notebook), pipeline_name, engine, _json(parameters or {}), now()),
            )
            db.executemany(
                "INSERT INTO step_runs (run_id, step, position, status) VALUES (?, ?, ?, 'pending')",
                [(run_id, step, i) for i, step in enumerate(steps)],
            )
        return run_id

    def start_run(self, run_id: str) -> None:
        self._update_run(run_id, status=RUNNING, started=now())

    def finish_run(self, run_id: str, status: str, error: Any = None) -> None:
        self._update_run(run_id, status=_check_status(status), finished=now(), error=_json(error))

    def _update_run(self, run_id: str, **fields: Any) -> None:
        columns = ", ".join(f"{name} = ?" for name in fields)
        with self._write() as db:
            cursor = db.execute(f"UPDATE runs SET {columns} WHERE id = ?", (*fields.values(), run_id))
            if cursor.rowcount == 0:
                raise RunStoreError(f"no run {run_id!r}")

    # -- step runs ------------------------------------------------------------------------

    def update_step(self, run_id: str, step: str, **fields: Any) -> None:
        """Set columns of a step run. Entering `running` or a finished status stamps
        `started` / `finished` unless given."""
        unknown = set(fields) - STEP_FIELDS
        if unknown:
            raise RunStoreError(f"unknown step run field(s): {', '.join(sorted(unknown))}")
        if not fields:
            return
        values = self._step_values(fields)
        columns = ", ".join(f"{name} = ?" for name in values)
        with self._write() as db:
            cursor = db.execute(
                f"UPDATE step_runs SET {columns} WHERE run_id = ? AND step = ?",
                (*values.values(), run_id, step),
            )
            if cursor.rowcount == 0:
                raise RunStoreError(f"no step {step!r} in run {run_id!r}")

    @staticmethod
    def _step_values(fields: dict[str, Any]) -> dict[str, Any]:
        values = dict(fields)
        status = values.get("status")
        if status is not None:
            _check_status(status)
            if status == RUNNING:
                values.setdefault("started", now())
            elif status in FINISHED:
                values.setdefault("finished", now())
        for key in ("started", "finished"):
            if key in values:
                values[key] = _timestamp(values[key])
        for key in ("error", "stale"):
            if key in values:
                values[key] = _json(values[key])
        if "cached" in values:
            values["cached"] = int(bool(values["cached"]))
        return values

    # -- events, metrics -------------------------------------------------------

    def add_event(
        self, run_id: str, kind: str, step: str | None = None, payload: Any = None
    ) -> int:
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO events (run_id, time, kind, step, payload) VALUES (?, ?, ?, ?, ?)",
                (run_id, now(), kind, step, _json(payload)),
            )
            return cursor.lastrowid

    def events_since(self, run_id: str, after_id: int = 0) -> list[dict]:
        with self._read() as db:
            rows = db.execute(
                "SELECT * FROM events WHERE run_id = ? AND id > ? ORDER BY id", (run_id, after_id)
            ).fetchall()
        return [_row(row) for row in rows]

    def notebook_events_since(self, notebook: str, after_id: int = 0) -> list[dict]:
        """Events of every run of `notebook` newer than `after_id` (to follow runs of other processes)."""
        with self._read() as db:
            rows = db.execute(
                "SELECT e.* FROM events e JOIN runs r ON r.id = e.run_id WHERE r.notebook = ? AND e.id > ?"
                " ORDER BY e.id", (str(notebook), after_id)
            ).fetchall()
        return [_row(row) for row in rows]

    def last_event_id(self) -> int:
        with self._read() as db:
            return db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]

    def record_metrics(self, run_id: str, step: str | None, metrics: dict[str, Any]) -> None:
        try:
            rows = [(run_id, str(name), float(value), step) for name, value in metrics.items()]
        except (TypeError, ValueError) as exc:
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
            raise RunStoreError(f"no run {prefix!r}")
        with self._read() as db:
            rows = db.execute(
                "SELECT id FROM runs WHERE id >= ? AND id < ? ORDER BY id LIMIT 2",
                (prefix, prefix + "g"),  # "g" sorts after every hex digit
            ).fetchall()
        if not rows:
            raise RunStoreError(f"no run {prefix!r}")
        if len(rows) > 1:
            raise AmbiguousRunId(f"run id prefix {prefix!r} is ambiguous")
        return rows[0][0]

    def get_run(self, run_id: str) -> dict:
        run_id = self.resolve(run_id)
        with self._read() as db:
            run = _row(db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone())
            run["steps"] = self._all(
                db, "SELECT * FROM step_runs WHERE run_id = ? ORDER BY position", run_id
            )
            run["metrics"] = self._all(
                db, "SELECT name, value, step FROM metrics WHERE run_id = ? ORDER BY name", run_id
            )
        return run

    def list_runs(self, notebook: str | None = None, limit: int = 50) -> list[dict]:
        """Runs, newest first."""
        where, args = ("WHERE notebook = ?", [str(notebook)]) if notebook is not None else ("", [])
        with self._read() as db:
            rows = db.execute(
                f"SELECT * FROM runs {where} ORDER BY created DESC, rowid DESC LIMIT ?",
                (*args, limit),
            ).fetchall()
        return [_row(row) for row in rows]

    def metrics_history(self, notebook: str) -> list[dict]:
        """Every metric of every run of a notebook, oldest run first."""
        with self._read() as db:
            rows = db.execute(
                "SELECT r.id AS run_id, r.created, r.status, r.parameters,"
                " m.name, m.value, m.step FROM metrics m JOIN runs r ON r.id = m.run_id"
                " WHERE r.notebook = ? ORDER BY r.created, r.rowid, m.name",
                (str(notebook),),
            ).fetchall()
        return [_row(row) for row in rows]

    @staticmethod
    def _all(db: sqlite3.Connection, sql: str, run_id: str) -> list[dict]:
        return [_row(row) for row in db.execute(sql, (run_id,)).fetchall()]
