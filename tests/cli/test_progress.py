"""Live progress in the terminal, fed by run events."""

from __future__ import annotations

from nbscale.kernels.contract import (
    CACHED,
    FAILED,
    RUN_STARTED,
    STEP_FINISHED,
    STEP_STALE,
    STEP_STARTED,
    SUCCEEDED,
    WARNING,
)
from nbscale.progress import Progress


def test_each_event_is_one_line(capsys):
    with Progress() as progress:
        progress.event(RUN_STARTED, None, {"steps": 3, "engine": "dask"})
        progress.event(STEP_STALE, "load", {"changes": ["data.csv changed (content)"]})
        progress.event(STEP_STARTED, "load", {"worker": "tcp://127.0.0.1:1"})
        progress.event(STEP_FINISHED, "load", {"status": SUCCEEDED})
        progress.event(STEP_FINISHED, "train", {"status": CACHED})
        progress.event(STEP_FINISHED, "eval", {"status": FAILED})
        progress.event(WARNING, "train", {"message": "resources gpu ignored"})
    err = capsys.readouterr().err
    assert "running 3 steps on dask" in err
    assert "↻ load runs again: data.csv changed (content)" in err
    assert "▶ load on tcp://127.0.0.1:1" in err and "✓ load succeeded (" in err
    assert "≡ train cached" in err and "✗ eval failed" in err and "! train: resources gpu ignored" in err


def test_disabled_progress_prints_nothing(capsys):
    with Progress(enabled=False) as progress:
        progress.event(RUN_STARTED, None, {"steps": 1, "engine": "local"})
    assert capsys.readouterr() == ("", "")
