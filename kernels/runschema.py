"""The run store's schema and how its rows convert: the SQL of each schema version (migrations
are appended, never edited), the columns a step run may set, timestamps and JSON columns.
"""

from __future__ import annotations

import json
import math
import numbers
import sqlite3
from datetime import datetime, timezone
from typing import Any

from .contract import FINISHED, RUNNING, STATUSES
from .errors import RunStoreError

SCHEMA_VERSION = 6

SCHEMA_V1 = """
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
SCHEMA_V2 = "DROP TABLE IF EXISTS artifacts;"
# v3: why a step's stored result was not reused (the dependencies that changed), as a JSON list
SCHEMA_V3 = "ALTER TABLE step_runs ADD COLUMN stale TEXT;"

# v4: the owner of a run (the process running it: pid, host, start time, the boot and pid namespace
# its pid belongs to) and its heartbeat (epoch seconds). Runs unfinished at the upgrade have no
# owner: they get a heartbeat now, so they end as failed once it is OWNER_TIMEOUT_S old, unless an
# (older) nbscale finishes them first.
SCHEMA_V4 = """
ALTER TABLE runs ADD COLUMN owner_pid INTEGER;
ALTER TABLE runs ADD COLUMN owner_host TEXT;
ALTER TABLE runs ADD COLUMN owner_started REAL;
ALTER TABLE runs ADD COLUMN owner_space TEXT;
ALTER TABLE runs ADD COLUMN heartbeat REAL;
UPDATE runs SET heartbeat = CAST(strftime('%s', 'now') AS REAL) WHERE status IN ('pending', 'running');
CREATE INDEX runs_status ON runs (status);
"""

# v5: a metric keeps its type, so an integer metric (a count, an epoch) comes back an integer. A REAL
# column stores 3 as 3.0, and SQLite cannot change a column's type: the table is made again with an
# untyped value column (no affinity: SQLite keeps a value as it is given; "ANY" or NUMERIC would
# turn 1.0 into 1). Values recorded before stay as they were stored (REAL).
SCHEMA_V5 = """
CREATE TABLE metrics_v5 (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE, name TEXT NOT NULL,
    value, step TEXT, PRIMARY KEY (run_id, name)
);
INSERT INTO metrics_v5 (run_id, name, value, step) SELECT run_id, name, value, step FROM metrics;
DROP TABLE metrics;
ALTER TABLE metrics_v5 RENAME TO metrics;
"""

# v6: what a run learns beyond its status. Per step run: `profiles`, JSON summaries of the
# DataFrame and array values it handed on (kernels/profiles); `lineage`, JSON of what produced
# them (input and output digests, files read, package versions); `saved_s`, for a step found
# cached, the wall time of the run that stored its result (the time the cache saved). `pins`: a
# run pinned under a name per notebook (a baseline to compare later runs with).
SCHEMA_V6 = """
ALTER TABLE step_runs ADD COLUMN profiles TEXT;
ALTER TABLE step_runs ADD COLUMN lineage TEXT;
ALTER TABLE step_runs ADD COLUMN saved_s REAL;
CREATE TABLE pins (
    notebook TEXT NOT NULL, name TEXT NOT NULL,
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE, created TEXT NOT NULL,
    PRIMARY KEY (notebook, name)
);
"""

# Migration i brings the schema from version i to i + 1; append, never edit.
MIGRATIONS: list[str] = [SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5, SCHEMA_V6]

STEP_FIELDS = {
    "status", "hash", "started", "finished", "duration_s", "cpu_s", "peak_rss_bytes",
    "attempts", "stdout", "stderr", "error", "cached", "stale", "profiles", "lineage", "saved_s",
}
JSON_COLUMNS = {"parameters", "error", "payload", "manifest", "stale", "profiles", "lineage"}


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def timestamp(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, timezone.utc)
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds")


def to_json(value: Any) -> str | None:
    # default=str: an odd payload (a numpy float, a path) must never fail a run mid-way.
    return None if value is None else utf8_json(value, default=str)


def utf8_json(value: Any, **options: Any) -> str:
    """`json.dumps` keeping non-ASCII text as it is, unless the text holds what UTF-8 cannot (a file
    name's undecodable byte, which Python keeps as a lone surrogate): then escaped (`\\udce9`),
    which reads back as the same text."""
    text = json.dumps(value, ensure_ascii=False, **options)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, **options)
    return text


def metric_value(value: Any) -> int | float | None:
    """A metric as the store keeps it: an integer (bool and numpy integers too) stays an integer,
    any other number is a float; None (NULL) for NaN and infinities, which a step's summary already
    carries as None (JSON has no NaN). Raises TypeError or ValueError for what is not a number."""
    if value is None:
        return None
    if getattr(value, "shape", None) == () and hasattr(value, "item"):  # numpy scalars, 0-d arrays
        value = value.item()
    if isinstance(value, numbers.Integral) and -(2**63) <= int(value) < 2**63:  # SQLite's INTEGER
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None


def json_number(value: Any) -> int | float | None:
    """A number as JSON can carry it, for the models read from the store: an integer stays one (a
    metric counted, not measured), NaN and infinities and what is not a number become None."""
    if value is None or isinstance(value, bool) or isinstance(value, int):
        return value
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def check_status(status: str) -> str:
    if status not in STATUSES:
        raise RunStoreError(f"invalid status {status!r}; expected one of {', '.join(STATUSES)}")
    return status


def row_dict(row: sqlite3.Row) -> dict:
    data = dict(row)
    for key in JSON_COLUMNS & data.keys():
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


def step_values(fields: dict[str, Any]) -> dict[str, Any]:
    """Column values of a step-run update: `running` or a finished status stamps `started` /
    `finished` unless given; timestamps as ISO text; JSON columns as JSON."""
    values = dict(fields)
    status = values.get("status")
    if status is not None:
        check_status(status)
        if status == RUNNING:
            values.setdefault("started", now())
        elif status in FINISHED:
            values.setdefault("finished", now())
    for key in ("started", "finished"):
        if key in values:
            values[key] = timestamp(values[key])
    for key in ("error", "stale", "profiles", "lineage"):
        if key in values:
            values[key] = to_json(values[key])
    if "cached" in values:
        values["cached"] = int(bool(values["cached"]))
    return values

