"""`nbscale run`, `nbscale runs`, `nbscale show`: running pipelines and reading run history.

Heavy imports (Dask, the executor) happen inside the commands, so `nbscale check` stays light.
What a notebook controls (metric names, exception messages, tracebacks, what steps printed, file
names) is printed through `reporting.literal`: escape codes in it are shown, never obeyed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .reporting import (
    EXIT_BAD_INPUT,
    EXIT_CHECK_FAILED,
    EXIT_FAILED,
    duration_text,
    error_headline,
    fail,
    literal,
    literal_lines,
    reporting_errors,
)


def _nothing_to_run(notebook) -> str:
    """Why a notebook has no step (the compiler's `nothing-to-run` diagnostic says it best)."""
    from nbscale.compiler import compile_notebook

    return next((d.message for d in compile_notebook(notebook).diagnostics if d.code == "nothing-to-run"),
                "nothing to run")


def engine_options(command):
    """Where and how a run runs (`nbscale run`, `nbscale sweep`): engine, cluster, cache, store."""
    for option in reversed([
        click.option("--engine", default="dask", show_default=True, help="dask, local, or a plug-in engine."),
        click.option("--scheduler", metavar="ADDRESS", help="Use a running Dask scheduler (tcp://host:port)."),
        click.option("--scheduler-file", type=click.Path(dir_okay=False), help="Dask scheduler file."),
        click.option("--workers", type=click.IntRange(min=1), help="Workers of the embedded LocalCluster."),
        click.option("--no-cache", is_flag=True, help="Run every step, even when its outputs are cached."),
        click.option("--store", "store_url", metavar="URL",
                     help="Artifact store (fsspec URL); default .nbscale/artifacts."),
    ]):
        command = option(command)
    return command


@click.command()
@click.argument("notebook", type=click.Path(dir_okay=False))
@click.option("-p", "--parameter", "assignments", multiple=True, metavar="NAME=VALUE",
              help="Set a pipeline parameter (typed like the parameters cell's value).")
@click.option("-f", "--parameters-file", type=click.Path(exists=True, dir_okay=False),
              help="YAML file of NAME: VALUE parameters.")
@engine_options
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("-v", "--log", "verbose", is_flag=True, help="Echo what the steps print (on stderr).")
@click.option("--fail-on-regression", is_flag=True,
              help=f"Exit {EXIT_CHECK_FAILED} when a metric is worse than the previous or the best earlier run's "
                   "beyond the threshold (the run is recorded first).")
@click.option("--regression-threshold", type=float, metavar="SHARE",
              help="Relative threshold of a regression for every metric (0.05: 5 %% worse); default 0.01 "
                   "or pyproject.toml [tool.nbscale.regressions].")
def run(notebook, assignments, parameters_file, engine, scheduler, scheduler_file, workers, no_cache,
        store_url, output, verbose, fail_on_regression, regression_threshold):
    """Run NOTEBOOK as a pipeline. Ctrl-C or SIGTERM cancels the run (exit 130, 143); a metric that
    regressed exits 3 with --fail-on-regression."""
    from nbscale.kernels import params
    from nbscale.kernels.interrupts import sigterm_interrupts
    from nbscale.kernels.runner import RunOptions, run_notebook

    from .progress import Progress

    with reporting_errors(), sigterm_interrupts():
        given = params.load_file(parameters_file) if parameters_file else {}
        given.update(params.parse_assignments(assignments))
        settings = run_settings(notebook, regression_threshold)  # bad settings: nothing runs
        options = RunOptions(engine=engine, use_cache=not no_cache, store_url=store_url,
                             scheduler=scheduler, scheduler_file=scheduler_file, workers=workers)
        with Progress(enabled=output == "text" or verbose, verbose=verbose) as progress:
            result = run_notebook(notebook, given, options, on_event=progress.event)
    insights = run_insights(notebook, result, settings)
    if output == "json":
        click.echo(json.dumps({**result.to_json(), **insights}, indent=2, default=str))
    elif result.ok and not result.steps:
        click.echo(literal(f"{notebook}: {_nothing_to_run(notebook)}"))
    else:
        _print_summary(result)
        print_insights(insights)
    if result.error:
        click.echo(f"error: {literal_lines(result.error)}", err=True)
    regressed = fail_on_regression and (insights.get("regressions") or {}).get("regressed")
    sys.exit(EXIT_FAILED if not result.ok else EXIT_CHECK_FAILED if regressed else 0)


@click.command()
@click.argument("notebook", required=False, type=click.Path(dir_okay=False))
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--repair", is_flag=True,
              help="Move a damaged run store aside (to runs.sqlite.corrupt-<time>) and start an empty one; "
                   "a sound one is left alone.")
def runs(notebook, limit, repair):
    """List runs (of NOTEBOOK, or of the notebooks in this folder), newest first."""
    if repair:
        _repair(_store_path(notebook))
        return
    with reporting_errors():
        store = store_for(notebook)
        rows = store.list_runs(str(Path(notebook).resolve()) if notebook else None, limit=limit)
    if not rows:
        click.echo("no runs yet")
        return
    for row in rows:
        why = f"  ({row['error']})" if isinstance(row.get("error"), str) else ""
        click.echo(literal(f"{row['id'][:12]}  {row['status']:<10} {row['engine']:<8} {row['created'][:19]}  "
                           f"{Path(row['notebook']).name}{why}"))


def _repair(path):
    from nbscale.kernels.runstore import RunStore
    from nbscale.kernels.storefile import repair

    if not path.exists():
        click.echo(literal(f"no run store at {path}: nothing to repair"))
        return
    with reporting_errors():
        moved = repair(path)
        if moved is None:
            click.echo(literal(f"the run store {path} is sound: nothing moved"))
            return
        RunStore(path).close()
    click.echo(literal(f"moved the damaged run store to {moved} (kept for inspection); {path} starts empty"))


@click.command()
@click.argument("run_id")
@click.option("--notebook", type=click.Path(dir_okay=False), help="Notebook whose folder holds the run store.")
@click.option("--logs/--no-logs", default=True, help="Show each step's output.")
def show(run_id, notebook, logs):
    """Show one run: steps, logs, metrics and the traceback of a failure."""
    from nbscale.kernels.contract import FINISHED

    with reporting_errors():
        store = store_for(notebook)
        run = store.get_run(run_id)
        events = store.events_since(run["id"])
    click.echo(literal(f"run {run['id']}  {run['status']}  engine {run['engine']}  {Path(run['notebook']).name}"))
    if isinstance(run.get("error"), str):
        click.echo(f"why: {literal_lines(run['error'])}")
    if run["status"] not in FINISHED and run.get("owner_pid"):
        click.echo(literal(f"running in process {run['owner_pid']} on {run.get('owner_host')}"))
    click.echo(f"parameters: {json.dumps(run['parameters'])}")
    for step in run["steps"]:
        click.echo(literal(f"  {step['step']:<20} {step['status']!s:<16} {duration_text(step.get('duration_s'))}"))
        if step.get("stale"):
            click.echo(f"    ran again because: {literal('; '.join(step['stale']))}")
        _show_output(run, step, events, logs)
        error = step.get("error")
        if isinstance(error, dict):
            click.echo(f"    error {literal_lines(error_headline(error))}")
            click.echo("    " + "\n    ".join(literal_lines(str(error.get("traceback", ""))).splitlines()))
        elif error:
            click.echo("    " + "\n    ".join(literal_lines(str(error)).splitlines()))
    for metric in run["metrics"]:
        click.echo(f"metric {literal(metric['name'])} = {metric_text(metric['value'])}")
    if run["status"] in FINISHED:
        with reporting_errors():  # regressions against the runs before it, and its cost
            print_insights(stored_insights(store, run["id"], run_settings(run["notebook"], None)))


def _show_output(run, step, events, logs):
    """A step's warnings, then (with --logs) what its cells printed and showed, from its log."""
    from nbscale.kernels.contract import truncated_text
    from nbscale.kernels.runner import step_log, step_warnings

    for warning in step_warnings(events, step["step"]):
        click.echo(f"    ! {literal_lines(str(warning.get('message')))}")
    log = step_log(run, step["step"])
    if not logs:
        return
    text = Path(log).read_text(encoding="utf-8", errors="replace") if log else \
        (step.get("stdout") or "") + (step.get("stderr") or "")
    text = truncated_text(text, log)
    if text.strip():
        # split first: a carriage return (a progress bar's redraw) starts a line, not an escape
        click.echo("    | " + "\n    | ".join(literal_lines(line) for line in text.rstrip().splitlines()))
    if log:
        click.echo(f"    log: {literal(str(log))}")


def run_settings(notebook, regression_threshold, where="--regression-threshold") -> tuple:
    """The regression thresholds and the prices of a run of `notebook` (project, environment, the
    threshold given as `where`)."""
    from nbscale.kernels.cost import load_prices
    from nbscale.kernels.regressions import load_thresholds

    return load_thresholds(notebook, regression_threshold, where), load_prices(notebook)


def run_insights(notebook, result, settings) -> dict:
    """The finished run's `regressions` and `cost` models, read back from the run store ({} when its
    record was lost)."""
    from nbscale.kernels.errors import RunStoreError
    from nbscale.kernels.runner import default_run_store

    if result.error:
        return {}
    try:
        with default_run_store(notebook) as store:
            return stored_insights(store, result.run_id, settings)
    except RunStoreError as exc:
        click.echo(f"warning: cannot check the run's metrics and cost: {literal_lines(str(exc))}", err=True)
        return {}


def stored_insights(store, run_id, settings) -> dict:
    """`regressions` and `cost` of a run in `store`, with `settings` (`run_settings`)."""
    from nbscale.kernels.cost import cached_hashes, producing_steps, run_cost
    from nbscale.kernels.regressions import check_run

    thresholds, prices = settings
    run = store.get_run(run_id)
    return {"regressions": check_run(store, run["id"], thresholds),
            "cost": run_cost(run, prices, producing_steps(store, run["notebook"], cached_hashes(run)))}


def print_insights(insights: dict) -> None:
    """The summary's last lines: the metrics that regressed, and what the run cost and saved."""
    from nbscale.kernels.regressions import summary_lines

    from .cost_commands import cost_line

    for line in summary_lines(insights["regressions"]) if insights.get("regressions") else []:
        click.echo(literal(line))
    if insights.get("cost"):
        click.echo(cost_line(insights["cost"]))


def register(group):
    for command in (run, runs, show):
        group.add_command(command)


def _store_path(notebook):
    from nbscale.kernels.contract import run_store_path

    # any file name in the folder gives the folder's run store
    return run_store_path(Path(notebook) if notebook else Path.cwd() / "_")


def store_for(notebook):
    """The run store beside NOTEBOOK (of the current folder without one); exits 2 when there is none."""
    from nbscale.kernels.runstore import RunStore

    path = _store_path(notebook)
    if not path.exists():
        fail(f"error: no run store at {path} (no runs in this folder yet; give the notebook to read the runs "
             "beside it)", EXIT_BAD_INPUT)
    with reporting_errors():  # (a damaged store: its one-line message, whichever command asked)
        return RunStore(path)


def _print_summary(result):
    """The run's steps as a table (rich on a terminal, plain columns in a pipe or a log), the
    failures with their tracebacks, and the metrics."""
    rows = [(s["name"], s["status"], duration_text(s["duration_s"]), "yes" if s["cached"] else "")
            for s in result.steps]
    title = f"run {result.run_id[:12]}: {result.status}"
    if sys.stdout.isatty():
        _print_rich_table(title, rows)
    else:
        click.echo(title)
        widths = [max(len(str(v)) for v in column) for column in zip(("step", "status", "duration", "cached"), *rows)]
        for row in [("step", "status", "duration", "cached"), *rows]:
            click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())
    for step in result.steps:
        error = step.get("error")
        if isinstance(error, dict):
            click.echo(f"{step['name']} failed {literal_lines(error_headline(error))}")
            click.echo(literal_lines(str(error.get("traceback", ""))))
    for name, value in result.metrics.items():
        click.echo(f"metric {literal(name)} = {metric_text(value)}")
    logs = [s["log"] for s in result.steps if s.get("log")]
    if logs:
        click.echo(f"logs: {literal(str(Path(logs[0]).parent))}  (nbscale show {result.run_id[:12]})")


def _print_rich_table(title, rows):
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in ("step", "status", "duration", "cached"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def metric_text(value) -> str:
    """A metric as the summary prints it; the store keeps NaN and infinities as None."""
    return "none (NaN or infinite)" if value is None else str(value)
