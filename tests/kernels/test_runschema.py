"""The run store's schema text and row conversions."""

from __future__ import annotations

import sqlite3

import pytest

from nbscale.kernels import runschema
from nbscale.kernels.errors import RunStoreError


def test_migrations_build_the_current_schema_in_order():
    assert len(runschema.MIGRATIONS) == runschema.SCHEMA_VERSION
    db = sqlite3.connect(":memory:")
    for script in runschema.MIGRATIONS:
        db.executescript(script)
    columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    assert {"owner_pid", "owner_host", "owner_started", "owner_space", "heartbeat"} <= columns
    assert "stale" in {row[1] for row in db.execute("PRAGMA table_info(step_runs)")}
    # v5: the metric value has no declared type, so SQLite keeps each value's own type
    assert {row[1]: row[2] for row in db.execute("PRAGMA table_info(metrics)")}["value"] == ""


def test_metric_values_keep_integers():
    assert [(v, type(v)) for v in map(runschema.metric_value, [3, True, 0.5, "2"])] == [
        (3, int), (1, int), (0.5, float), (2.0, float)]
    assert type(runschema.metric_value(2**64)) is float  # beyond SQLite's INTEGER
    with pytest.raises(ValueError):
        runschema.metric_value("high")


def test_step_values_stamp_times_and_encode_json():
    values = runschema.step_values({"status": "running", "error": {"ename": "E"}, "cached": 1, "finished": 0.0})
    assert values["started"] and values["error"] == '{"ename": "E"}' and values["cached"] == 1
    assert values["finished"] == "1970-01-01T00:00:00.000000+00:00"
    assert "finished" in runschema.step_values({"status": "failed"})
    with pytest.raises(RunStoreError, match="invalid status"):
        runschema.step_values({"status": "done"})


def test_rows_decode_json_columns_and_keep_plain_text():
    db = sqlite3.connect(":memory:")
    db.row_factory = sqlite3.Row
    row = db.execute("SELECT '{\"a\": 1}' AS parameters, 'plain reason' AS error, 1 AS cached").fetchone()
    assert runschema.row_dict(row) == {"parameters": {"a": 1}, "error": "plain reason", "cached": True}
