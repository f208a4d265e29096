"""`nbscale sweep NOTEBOOK -p C=0.1,1,10 [-p kernel=linear,rbf]`: a parameter grid run as several runs.

Every combination of the given value lists (their cartesian product, in the order given) is one
ordinary run, recorded in the run store as `nbscale run` records it, so `nbscale runs`, `show`,
`diff` and the panel see each of them. All the runs share one cluster: the folder's warm cluster
when there is one, the given `--scheduler`, or one embedded LocalCluster started for the sweep.
At the end a table lists the runs with their swept parameters and metrics and marks the best run
by `--metric` (its direction from `compiler.metric_direction`), with the command that compares them.

Value lists: `NAME=V1,V2,...` splits on commas, each piece read as `nbscale run -p NAME=PIECE`
reads it (typed by the parameters cell, `kernels.params`). A value holding a comma, or a list or
dict parameter, uses the JSON form: `NAME=["a,b", "c"]` (the outer JSON list is always the list
of values: `layers=[[64, 32], [128]]` is two runs). Everything is checked before the first run
starts: unknown parameters, values that do not fit the parameter's type or that a run refuses (NaN,
infinity), an unknown metric, and more runs than `--max-runs` (100 by default).

Exit codes: 0 every run succeeded; 1 a run failed (the others still ran); 2 bad input (nothing
ran; or a later run refused as it starts, the notebook changed meanwhile: the runs that ran are
named); 130 Ctrl-C and 143 SIGTERM (the run going on is cancelled, the later ones never start).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import sys
from contextlib import contextmanager
from pathlib import Path

import click

from .reporting import EXIT_FAILED, EXIT_OK, literal, reporting_errors
from .run_commands import engine_options

DEFAULT_MAX_RUNS = 100
PANEL_LIMIT = 20  # the panel's comparison view takes at most this many runs


@click.command()
@click.argument("notebook", type=click.Path(dir_okay=False))
@click.option("-p", "--parameter", "assignments", multiple=True, required=True, metavar="NAME=V1,V2,...",
              help='Values of a parameter, comma-separated, or a JSON list (NAME=["a,b","c"]); repeat for a grid.')
@click.option("--metric", metavar="NAME", help="Pick the best run by this metric (default: the notebook's first).")
@click.option("--max-runs", type=click.IntRange(min=1), default=DEFAULT_MAX_RUNS, show_default=True,
              help="Refuse a grid of more runs than this.")
@engine_options
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def sweep(notebook, assignments, metric, max_runs, engine, scheduler, scheduler_file, workers, no_cache,
          store_url, output):
    """Run NOTEBOOK once per combination of parameter values; show the runs and the best one.

    Exit 0 when every run succeeded, 1 when one failed, 2 on bad input (nothing runs); Ctrl-C
    cancels the run going on and starts no other (exit 130; SIGTERM 143)."""
    from nbscale.kernels.interrupts import sigterm_interrupts
    from nbscale.kernels.runner import RunOptions

    with reporting_errors():
        pipeline = compiled(notebook)
        grid = value_grid(pipeline, assignments)
        combos = combinations(grid, max_runs)
        check_runnable(pipeline, combos)
        metric = checked_metric(pipeline, metric)
    options = RunOptions(engine=engine, use_cache=not no_cache, store_url=store_url, scheduler=scheduler,
                         scheduler_file=scheduler_file, workers=workers)
    with reporting_errors(), sigterm_interrupts():
        results = run_all(notebook, combos, options, quiet=output == "json")
    chosen = metric_and_direction(notebook, pipeline.metrics.names, metric, results)
    summary = sweep_summary(notebook, list(grid), results, *chosen)
    if output == "json":
        click.echo(json.dumps(summary, indent=2, default=str))
    else:
        print_summary(summary)
    sys.exit(EXIT_OK if all(r["status"] == "succeeded" for r in summary["runs"]) else EXIT_FAILED)


def register(group):
    group.add_command(sweep)


# -- the grid ----------------------------------------------------------------------------------------


def compiled(notebook):
    """The notebook's pipeline; PipelineNotRunnable when it has errors (nothing may run)."""
    from nbscale.compiler import compile_notebook
    from nbscale.compiler.diagnostics import errors_text
    from nbscale.kernels.errors import PipelineNotRunnable

    pipeline = compile_notebook(notebook)
    if pipeline.has_errors:
        raise PipelineNotRunnable(errors_text(pipeline.diagnostics, str(notebook)))
    return pipeline


def value_grid(pipeline, assignments) -> dict[str, list]:
    """{name: [typed values...]} from `-p NAME=...` texts; ParameterError for anything not usable."""
    from nbscale.kernels import params
    from nbscale.kernels.errors import ParameterError


    texts: dict[str, str] = {}
    for pair in assignments:
        ((name, text),) = params.parse_assignments([pair]).items()
        if name in texts:
            shown = literal(name)
            raise ParameterError(f"parameter '{shown}' is given twice: give all its values in one -p {shown}=V1,V2")
        texts[name] = text
    declared = {p.name: p for p in pipeline.parameters}
    unknown = [literal(name) for name in texts if name not in declared]
    if unknown:
        known = ", ".join(declared) or "none (the notebook has no parameters cell)"
        raise ParameterError(f"unknown parameter(s) {', '.join(unknown)}; parameters: {known}")
    return {name: typed_values(declared[name], text) for name, text in texts.items()}


def typed_values(param, text: str) -> list:
    """The distinct values of one `-p` (typed as `nbscale run -p` types them), in the order given."""
    from nbscale.kernels import params
    from nbscale.kernels.errors import ParameterError

    from_json = text.lstrip().startswith("[")
    pieces = json_values(param.name, text) if from_json else text.split(",")
    values, seen = [], set()
    for piece in pieces:
        if from_json and isinstance(piece, str):  # a JSON string is a value (`["5"]`), not text to read
            piece = params.FileString(piece)
        try:
            value = params.coerce(param, piece)
        except ParameterError as exc:
            hint = f" (a {param.type} value is written in the JSON form: -p {param.name}=[[...], [...]])" \
                if param.type in ("list", "dict") else ""
            raise ParameterError(f"{exc}{hint}") from None
        if isinstance(value, str) and param.type == "none":  # read once: the run reads `-p x="5"` as "5", not 5
            value = params.FileString(value)
        key = json.dumps(value, sort_keys=True)
        if key not in seen:  # the same run twice would only be a cached copy
            seen.add(key)
            values.append(value)
    return values


def json_values(name: str, text: str) -> list:
    from nbscale.kernels.errors import ParameterError


    try:
        values = json.loads(text)
    except ValueError:
        values = None
    if not isinstance(values, list) or not values:
        raise ParameterError(f"-p {name}={literal(text)}: a value list that starts with '[' must be a non-empty "
                             f'JSON list, e.g. -p {name}=["a,b", "c"] (a list parameter: -p {name}=[[1, 2], [3]])')
    return values


def combinations(grid: dict[str, list], max_runs: int) -> list[dict]:
    """Every combination of the grid's values, the first parameter varying slowest."""
    from nbscale.kernels.errors import ParameterError

    count = math.prod(len(values) for values in grid.values())
    if count > max_runs:
        sizes = " x ".join(f"{len(v)} {n}" for n, v in grid.items())
        raise ParameterError(f"the sweep has {count} runs ({sizes}), more than --max-runs {max_runs}: "
                             "give fewer values, or a larger --max-runs")
    names = list(grid)
    return [dict(zip(names, values)) for values in itertools.product(*grid.values())]


def check_runnable(pipeline, combos: list[dict]) -> None:
    """ParameterError when a combination would be refused as its run starts. Each is resolved by the
    call `run_notebook` makes (`params.resolve`), so what passes here passes there: a value typing
    accepts but a run refuses (NaN, text that is not Unicode) stops the sweep before its first run,
    not after earlier combinations were run and recorded."""
    from nbscale.kernels import params

    for combo in combos:
        params.resolve(pipeline, combo)


def checked_metric(pipeline, metric: str | None) -> str | None:
    """`--metric` when the notebook can record it; ParameterError when it cannot. A name bound to a
    dict gives `NAME.KEY` metrics, and a dict spread in the metrics cell gives names known only when
    it runs: those are accepted."""
    from nbscale.kernels.errors import ParameterError

    known = list(pipeline.metrics.names)
    if metric is None or pipeline.metrics.spread or any(metric == k or metric.startswith(k + ".") for k in known):
        return metric
    listed = ", ".join(known) or "none (the notebook has no metrics cell)"
    raise ParameterError(f"unknown metric {json.dumps(metric)}; the notebook's metrics: {listed}")


def metric_and_direction(notebook, declared_names: list[str], metric: str | None,
                         results: list[dict]) -> tuple[str | None, str]:
    """The metric that picks the best run (--metric, else the notebook's first one the runs recorded)
    and its direction, `min` or `max` (declared in the notebook's metadata, else by its name)."""
    from nbscale.compiler.metric_direction import MAX, metric_direction, notebook_directions

    if metric is None:  # the notebook's first metric, else the first one recorded (a dict's keys)
        recorded = list(dict.fromkeys(name for r in results for name in r["metrics"]))
        metric = next((name for name in [*declared_names, *recorded] if name in recorded),
                      declared_names[0] if declared_names else None)
    if metric is None:
        return None, MAX
    return metric, metric_direction(metric, notebook_directions(notebook))


# -- running -----------------------------------------------------------------------------------------


def run_all(notebook, combos: list[dict], options, quiet=False) -> list[dict]:
    """Run each combination on one shared cluster; [{parameters, run_id, status, metrics}]. On Ctrl-C
    (SIGTERM) the run going on ends cancelled (the runner sees to it) and the interrupt goes on; a run
    refused as it starts (the notebook was changed during the sweep: a parameter gone, an error) stops
    the sweep too. Either way the runs that ran are named first (the error alone said "nothing ran").
    The parameters are shown and returned as the run store records them (`params.recorded`): a value
    that may be a credential (`-p token=sk-…`) as its digest, as `show`, `diff` and `lineage` give it."""
    from nbscale.kernels import params
    from nbscale.kernels.runner import run_notebook

    from .progress import Progress

    results = []
    try:
        with shared_cluster(options, notebook, announce=not quiet) as shared:
            for number, combo in enumerate(combos, 1):
                shown = params.recorded(combo)
                if not quiet:
                    click.echo(literal(f"[{number}/{len(combos)}] {assignment_text(shown)}"), err=True)
                with Progress(enabled=not quiet) as progress:
                    result = run_notebook(notebook, combo, shared, on_event=progress.event)
                results.append({"parameters": shown, "run_id": result.run_id, "status": result.status,
                                "metrics": result.metrics, "error": result.error or failure(result.steps)})
    except (KeyboardInterrupt, Exception):  # Ctrl-C; or a later run refused: the notebook changed meanwhile
        done = " ".join(r["run_id"][:12] for r in results)
        click.echo(f"sweep stopped after {len(results)} of {len(combos)} runs" + (f": {done}" if done else ""),
                   err=True)
        raise
    return results


def failure(steps: list[dict]) -> str | None:
    """Why a run failed, in one line: its first failed step and where (None when none failed)."""
    from .reporting import error_headline

    step = next((s for s in steps if s["status"] == "failed"), None)
    if step is None:
        return None
    error = step.get("error")
    return f"{step['name']} failed {error_headline(error) if isinstance(error, dict) else error or ''}".rstrip()


@contextmanager
def shared_cluster(options, notebook, announce=False):
    """RunOptions whose runs all use one cluster. A Dask sweep with no scheduler given gets one
    embedded LocalCluster (or the configured cluster factory's) for all its runs, closed at the end;
    the folder's warm cluster, which each run finds by itself, is used when it is live."""
    if options.engine != "dask" or options.scheduler or options.scheduler_file:
        yield options
        return
    import dask

    from nbscale.kernels import warm_cluster
    from nbscale.kernels.engines.dask import cluster_from_factory, local_cluster

    factory = dask.config.get("nbscale.cluster-factory", None)
    if not factory and options.workers is None and warm_cluster.for_notebook(notebook).live:
        yield options
        return
    cluster = cluster_from_factory(factory) if factory else local_cluster(options.workers)
    if announce:
        click.echo(f"the sweep's runs share one cluster at {cluster.scheduler_address}", err=True)
    try:
        yield dataclasses.replace(options, scheduler=cluster.scheduler_address, workers=None)
    finally:
        cluster.close()


def assignment_text(combo: dict) -> str:
    """`name=value ...`, each value as JSON cut as the table cuts it (a value of 100 000 characters
    filled the terminal)."""
    from .diff_commands import value_text

    return " ".join(f"{name}={literal(value_text(value))}" for name, value in combo.items())


# -- the summary ---------------------------------------------------------------------------------------


def sweep_summary(notebook, names: list[str], results: list[dict], metric, direction) -> dict:
    """The sweep as JSON: its runs, the metric and direction, the best run, the commands to compare."""
    best = best_run(results, metric, direction)
    ids = [r["run_id"] for r in results]
    if best is not None:  # the best run first: diff compares the others with it
        ids = [best["run_id"], *(i for i in ids if i != best["run_id"])]
    return {
        "notebook": str(notebook), "parameters": names, "metric": metric, "direction": direction,
        "best": best["run_id"] if best else None, "runs": results,
        "compare": f"nbscale diff {' '.join(i[:12] for i in ids)}" if len(ids) > 1 else None,
    }


def best_run(results: list[dict], metric: str | None, direction: str) -> dict | None:
    """The succeeded run with the best finite value of `metric` by `direction` (the first of equals),
    by the rule regression checks use (`kernels.regressions.best_of`)."""
    from nbscale.kernels.regressions import best_of, finite

    scored = [{**r, "metrics": {metric: finite(r["metrics"].get(metric))}} for r in results
              if r["status"] == "succeeded" and finite(r["metrics"].get(metric)) is not None]
    best = best_of(scored, metric, direction)
    return next(r for r in results if r["run_id"] == best["run_id"]) if best else None


def print_summary(summary: dict) -> None:
    from rich.console import Console

    from .diff_commands import new_table, number_text, text, value_text

    metrics = list(dict.fromkeys(name for r in summary["runs"] for name in r["metrics"]))
    metric = summary["metric"]
    if metric in metrics:  # the deciding metric first
        metrics = [metric, *(m for m in metrics if m != metric)]
    count = len(summary["runs"])
    table = new_table(f"Sweep of {Path(summary['notebook']).name}: {count} run{'s' * (count != 1)}",
                      ["", "run", "status", *summary["parameters"], *metrics])
    for r in summary["runs"]:
        mark = "*" if r["run_id"] == summary["best"] else ""
        cells = [value_text(r["parameters"][n]) for n in summary["parameters"]]
        cells += [number_text(r["metrics"].get(m)) for m in metrics]
        table.add_row(text(mark), text(r["run_id"][:12]), text(r["status"]), *(text(c) for c in cells))
    console = Console(markup=False, emoji=False, highlight=False)
    with console.capture() as captured:
        console.print(table)
    click.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))
    for line in closing_lines(summary):
        click.echo(line)


def closing_lines(summary: dict) -> list[str]:
    """The best run (or why there is none), the failed runs, and how to compare the runs."""
    from nbscale.compiler.metric_direction import MIN

    from .diff_commands import number_text

    lines = []
    metric, best = summary["metric"], summary["best"]
    better = "lower" if summary["direction"] == MIN else "higher"
    if metric is None:
        lines.append("best: none (the notebook records no metrics; --metric NAME picks one)")
    elif best is None:
        lines.append(f"best: none (no succeeded run recorded {literal(metric)})")
    else:
        run = next(r for r in summary["runs"] if r["run_id"] == best)
        lines.append(f"best: {best[:12]} ({assignment_text(run['parameters'])}) by {literal(metric)} "
                     f"({better} is better) = {number_text(run['metrics'][metric])}")
    for run in summary["runs"]:
        if run["status"] != "succeeded":
            why = f": {literal(run['error'])}" if run.get("error") else ""
            lines.append(f"{run['status']}: {run['run_id'][:12]} ({assignment_text(run['parameters'])}){why}")
    if any(run["status"] != "succeeded" for run in summary["runs"]):
        lines.append("   (nbscale show RUN shows a run's steps, logs and traceback)")
    if summary["compare"]:
        lines.append(f"compare: {summary['compare']}")
        panel = "" if len(summary["runs"]) <= PANEL_LIMIT else f" (up to {PANEL_LIMIT} at once)"
        lines.append(f"   or in JupyterLab: the nbscale panel's Runs section, tick the runs{panel}, "
                     "press Compare")
    return lines
