"""Live progress in the terminal, fed by run events."""

from __future__ import annotations

from nbscale.kernels.contract import (
    CACHED,
    FAILED,
    RUN_STARTED,
    STEP_FINISHED,
    STEP_OUTPUT,
    STEP_PROGRESS,
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


def test_verbose_echoes_live_output_line_by_line(capsys):
    with Progress(verbose=True) as progress:
        progress.event(STEP_OUTPUT, "fit", {"stream": "stdout", "text": "epoch 1\nepo"})
        progress.event(STEP_OUTPUT, "fit", {"stream": "stdout", "text": "ch 2\nlast"})
        progress.event(STEP_FINISHED, "fit", {"status": SUCCEEDED, "summary": {"stdout": "not again\n"}})
    err = capsys.readouterr().err
    assert "  fit | epoch 1\n  fit | epoch 2\n  fit | last\n" in err
    assert "not again" not in err  # the output came live: not echoed twice


def test_verbose_echoes_a_steps_output_at_its_end_when_none_came_live(capsys):
    with Progress(verbose=True) as progress:
        progress.event(STEP_FINISHED, "fit", {"status": SUCCEEDED, "summary": {"stdout": "a\nb\n", "stderr": "w\n"}})
    assert "  fit | a\n  fit | b\n  fit | w\n" in capsys.readouterr().err


def test_output_is_not_echoed_without_verbose(capsys):
    with Progress() as progress:
        progress.event(STEP_OUTPUT, "fit", {"stream": "stdout", "text": "quiet\n"})
        progress.event(STEP_FINISHED, "fit", {"status": SUCCEEDED, "summary": {"stdout": "quiet\n"}})
    assert "quiet" not in capsys.readouterr().err


def test_output_echoed_at_the_end_keeps_the_order_of_stdout_and_stderr(capsys):
    cells = [{"cell": 1, "outputs": [{"output_type": "stream", "name": "stdout", "text": "first\n"},
                                     {"output_type": "stream", "name": "stderr", "text": "then\n"},
                                     {"output_type": "stream", "name": "stdout", "text": "last\n"}]}]
    with Progress(verbose=True) as progress:
        progress.event(STEP_FINISHED, "fit", {"status": SUCCEEDED, "summary": {"cells": cells}})
    assert "  fit | first\n  fit | then\n  fit | last\n" in capsys.readouterr().err



def test_escape_codes_in_what_a_step_prints_or_warns_are_shown_as_text(capsys):
    with Progress(verbose=True) as progress:
        progress.event(STEP_OUTPUT, "fit", {"stream": "stdout", "text": "a\x1b]0;PWNED\x07\tb\nlast\x1b[2J"})
        progress.event(WARNING, "fit", {"message": "old\x1b[31m"})
        progress.event(STEP_STALE, "fit", {"changes": ["data\x07.csv changed"]})
        progress.event(STEP_FINISHED, "fit", {"status": SUCCEEDED})
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err
    assert "  fit | a\\x1b]0;PWNED\\x07\tb\n" in err and "  fit | last\\x1b[2J\n" in err  # tabs, lines kept
    assert "! fit: old\\x1b[31m" in err and "↻ fit runs again: data\\x07.csv changed" in err

def test_a_compute_shows_its_first_count_then_few_and_its_end(capsys):
    with Progress() as progress:
        for done in (3, 5, 9, 40):  # one compute of 40 tasks, counted more often than shown
            progress.event(STEP_PROGRESS, "agg", {"done": done, "total": 40, "what": "compute"})
        progress.event(STEP_PROGRESS, "agg", {"done": 2, "total": 10, "what": "compute"})  # the step's next one
        progress.event(STEP_PROGRESS, "agg", {"done": "?", "total": None})  # not a count: nothing
    lines = [line.strip() for line in capsys.readouterr().err.splitlines()]
    assert lines == ["⋯ agg: computing 3/40 tasks", "⋯ agg: computing 40/40 tasks", "⋯ agg: computing 2/10 tasks"]


def test_a_cli_run_whose_reader_goes_away_is_recorded_as_succeeded(tmp_path):
    import subprocess
    import sys

    from conftest import make_notebook

    from nbscale.kernels.runner import default_run_store

    nb = make_notebook(tmp_path, [("import time\ntime.sleep(1)\na = 1", ["step:first"]), ("b = a", ["step:second"])])
    done = subprocess.run(f"{sys.executable} -m nbscale run {nb} --engine local 2>&1 | head -1", shell=True,
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.startswith("running 2 steps")
    with default_run_store(nb) as store:
        [run] = store.list_runs()
        assert run["status"] == "succeeded", run
