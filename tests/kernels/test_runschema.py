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
    # NaN and infinities (None in a step's JSON summary) are kept as NULL, not refused
    assert [runschema.metric_value(v) for v in (None, float("nan"), float("-inf"))] == [None, None, None]


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


def test_a_version_5_store_gains_profiles_lineage_saved_time_and_pins(tmp_path):
    import sqlite3

    from nbscale.kernels.runstore import RunStore

    path = tmp_path / "runs.sqlite"
    db = sqlite3.connect(path)
    db.executescript("".join(runschema.MIGRATIONS[:5]) +
                     "CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (5);"
                     "INSERT INTO runs (id, notebook, pipeline, engine, status, created)"
                     " VALUES ('abc1', 'nb.ipynb', 'nb', 'local', 'succeeded', '2026-01-01T00:00:00');"
                     "INSERT INTO step_runs (run_id, step, position, status) VALUES ('abc1', 'load', 0, 'succeeded');")
    db.close()
    with RunStore(path) as store:
        store.update_step("abc1", "load", profiles={"df": {"rows": 3}}, lineage={"inputs": {}}, saved_s=1.5)
        step = store.get_run("abc1")["steps"][0]
    assert (step["profiles"], step["lineage"], step["saved_s"]) == ({"df": {"rows": 3}}, {"inputs": {}}, 1.5)
    assert sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE name = 'pins'").fetchone()
