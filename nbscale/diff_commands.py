"""`nbscale diff RUN_A RUN_B [RUN_C…]`: two or more runs side by side, as text or JSON.

The model is `kernels.compare.compare_runs`, the one the panel's comparison view shows; this module
only finds the runs (as `nbscale show` does: the run store of the notebook's folder, unique id
prefixes) and prints the model. RUN_A is the reference: changes, deltas and reasons are said
against it. Every value that comes from a notebook, a file name or a parameter is printed
literally: rich markup is not interpreted and control characters (ANSI escapes) are shown escaped
(`reporting.literal`).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import click

from .reporting import EXIT_BAD_INPUT, duration_text, fail, literal, reporting_errors

# The model's sections this module knows how to print; any other non-empty one (data drift, a
# later item) is printed as a table of its rows, after these.
KNOWN_SECTIONS = ("notebook", "runs", "parameters", "steps", "metrics", "drift")
LONGEST_VALUE = 80  # characters of a parameter value in the text output (JSON has it whole)


@click.command()
@click.argument("run_ids", nargs=-1, required=True, metavar="RUN_A RUN_B [RUN_C]...")
@click.option("--notebook", type=click.Path(dir_okay=False), help="Notebook whose folder holds the run store.")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def diff(run_ids, notebook, output):
    """Compare runs: parameters, steps that ran again and why, metric deltas, durations.

    RUN_A is the reference; unique id prefixes work (as in `nbscale show`)."""
    if len(run_ids) < 2:
        fail("error: nbscale diff needs two or more runs to compare (`nbscale runs` lists them)",
             EXIT_BAD_INPUT)
    model = load_model(notebook, list(run_ids))
    if output == "json":
        click.echo(json.dumps(model, indent=2))
    else:
        print_model(model)


def register(group):
    group.add_command(diff)


# -- finding the runs ------------------------------------------------------------------------------


def load_model(notebook, run_ids: list[str]) -> dict:
    """The comparison model of `run_ids` from the run store of `notebook`'s folder (the current
    folder without one); exits 2, printing nothing on stdout, when a run is unknown or ambiguous."""
    from nbscale.kernels.compare import compare_runs

    with store_of_runs(notebook, run_ids) as store:
        return compare_runs(store, run_ids)


@contextmanager
def store_of_runs(notebook, run_ids: list[str]):
    """The run store of `notebook`'s folder (the current folder without one) once each of `run_ids`
    names one of its runs, else exit 2 with a line per bad id and nothing on stdout; errors in the
    block exit as the CLI's do (`reporting_errors`); the store is closed after."""
    from nbscale.run_commands import store_for

    store = store_for(notebook)
    with reporting_errors():
        try:
            problems = unresolved(store, run_ids)
            if problems:
                fail("\n".join(problems), EXIT_BAD_INPUT)
            yield store
        finally:
            store.close()


def unresolved(store, run_ids: list[str]) -> list[str]:
    """One error line per id that names no run, more than one, or a run an earlier id names (a run
    compared with itself)."""
    from nbscale.kernels.errors import AmbiguousRunId, UnknownRun

    problems, named = [], {}
    for run_id in run_ids:
        shown = literal(repr(run_id))
        try:
            found = store.resolve(run_id)
            if found in named:
                problems.append(f"error: {shown} names the same run as {literal(repr(named[found]))}: "
                                "give different runs")
            named.setdefault(found, run_id)
        except AmbiguousRunId:
            problems.append(f"error: run id prefix {shown} is ambiguous: give more of its characters")
        except UnknownRun:
            problems.append(f"error: no run {shown} in {literal(str(store.path))} "
                            "(`nbscale runs` lists the runs; --notebook NB reads the runs beside NB)")
    return problems


# -- printing ----------------------------------------------------------------------------------------


def print_model(model: dict) -> None:
    from rich.console import Console

    # markup, emoji codes and highlighting off: nothing in a value is ever interpreted
    console = Console(markup=False, emoji=False, highlight=False)
    labels = run_labels(model)
    with console.capture() as captured:
        console.print(text(f"{len(labels)} runs of {Path(model['notebook']).name} "
                           f"(#1 is the reference: changes are against it)"))
        for section in (runs_table(model, labels), parameters_table(model, labels),
                        steps_table(model, labels), reasons_table(model, labels), metrics_table(model, labels),
                        drift_table(model, labels), *extra_tables(model)):
            if section is not None:
                console.print()
                console.print(section)
    # a table pads its lines to its width: no trailing blanks in a pipe, a file or a diff; rich
    # decides on colours (a terminal, FORCE_COLOR, NO_COLOR), click keeps them
    click.echo("\n".join(line.rstrip() for line in captured.get().splitlines()),
               color=console.color_system is not None)


def run_labels(model: dict) -> list[str]:
    return [f"#{i}" for i in range(1, len(model["runs"]) + 1)]


def runs_table(model: dict, labels: list[str]):
    table = new_table("Runs", ["", "run", "notebook", "when", "status", "duration"])
    for label, run in zip(labels, model["runs"]):
        name = Path(run["notebook"]).name + (" (another notebook)" if run["other_notebook"] else "")
        when = (run.get("started") or run.get("created") or "")[:19].replace("T", " ")
        table.add_row(text(label), text(run["run_id"][:12]), text(name), text(when), text(run["status"]),
                      text(duration_text(run["duration_s"])))
    return table


def parameters_table(model: dict, labels: list[str]):
    if not model["parameters"]:
        return None
    table = new_table("Parameters (* changed)", ["parameter", *labels])
    for row in model["parameters"]:
        cells = [value_text(v) if present else "(not set)" for v, present in zip(row["values"], row["set"])]
        mark = "* " if row["changed"] else "  "
        style = "bold" if row["changed"] else ""
        table.add_row(text(mark + row["name"], style), *(text(c, style) for c in cells))
    return table


def steps_table(model: dict, labels: list[str]):
    if not model["steps"]:
        return None
    table = new_table("Steps (* ran again after #1)", ["step", *labels])
    for row in model["steps"]:
        mark = "* " if row["reran"] else "  "
        style = "bold" if row["reran"] else ""
        table.add_row(text(mark + row["name"], style), *(text(step_text(cell), style) for cell in row["runs"]))
    return table


def step_text(cell: dict | None) -> str:
    if cell is None:
        return "-"  # the step is not in that run
    status = cell["status"].replace("_", " ")
    return f"{status} {duration_text(cell['duration_s'])}" if cell["ran"] else status


def reasons_table(model: dict, labels: list[str]):
    """Why each step of a later run ran again or did not run (a reused result needs no reason)."""
    from nbscale.kernels.compare import CACHED_REASON

    if not model["steps"]:
        return None
    rows = [(row["name"], label, cell["why"]) for row in model["steps"]
            for label, cell in zip(labels[1:], row["runs"][1:])
            if cell is not None and cell["why"] != CACHED_REASON]
    if not rows:
        return text("Every step of the later runs reused its stored result.")
    table = new_table("Why steps ran again", ["step", "run", "why"])
    for row in rows:
        table.add_row(*(text(value) for value in row))
    return table


def metrics_table(model: dict, labels: list[str]):
    if not model["metrics"]:
        return None
    table = new_table("Metrics (change from #1)", ["metric", "better", *labels])
    for row in model["metrics"]:
        cells = [text(number_text(row["values"][0]))]
        for value, delta, relative, better in list(zip(row["values"], row["deltas"], row["relative"],
                                                       row["better"]))[1:]:
            cells.append(metric_cell(value, delta, relative, better))
        table.add_row(text(row["name"]), text("higher" if row["direction"] == "max" else "lower"), *cells)
    return table


def metric_cell(value, delta, relative, better):
    """`value`, then its delta from the reference (relative too) and whether it is better."""
    from rich.text import Text

    cell = text(number_text(value))
    if delta is None:
        return cell
    if delta == 0:
        cell.append(Text("\nsame", style="dim"))
        return cell
    change = f"{delta:+.4g}" + (f" ({relative:+.1%})" if relative is not None else "")
    verdict, style = ("better", "green") if better else ("worse", "red")
    cell.append(Text(f"\n{change} {verdict}", style=style))
    return cell


def drift_table(model: dict, labels: list[str]):
    """Data drift of the later runs' step outputs against #1's, column by column (`kernels/drift.py`)."""
    rows = model.get("drift") or []
    if not rows:
        return None
    table = new_table("Data drift against #1 (* drifted)",
                      ["run", "value", "column", "test", "score", "status"])
    for row in rows:
        score = "-" if row.get("score") is None else f"{row['score']:.4g}"
        if row.get("p_value") is not None:
            score += f" (p {row['p_value']:.3g})"
        status = row["status"] + (f": {row['note']}" if row.get("note") else "")
        style = "bold red" if row["status"] == "drifted" else ""
        table.add_row(*(text(cell, style) for cell in (
            labels[row["run"] - 1] if row["run"] <= len(labels) else str(row["run"]),
            f"{row['step']}.{row['value']}", ("* " if row["status"] == "drifted" else "  ") + row["column"],
            row.get("test") or "-", score, status)))
    return table


def extra_tables(model: dict):
    """Sections of the model this module does not know yet (data drift): a table of their rows."""
    for key, rows in model.items():
        if key in KNOWN_SECTIONS or not rows:
            continue
        title = key.replace("_", " ").capitalize()
        if not (isinstance(rows, list) and all(isinstance(row, dict) for row in rows)):
            yield text(f"{title}: {value_text(rows)}")
            continue
        columns = list(dict.fromkeys(name for row in rows for name in row))
        table = new_table(title, columns)
        for row in rows:
            table.add_row(*(text(value_text(row.get(name)) if name in row else "-") for name in columns))
        yield table


# -- literal text ------------------------------------------------------------------------------------


def new_table(title: str, columns: list[str]):
    from rich import box
    from rich.table import Table

    table = Table(title=text(title, "bold"), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in columns:
        table.add_column(text(column))
    return table


def text(value: str, style: str = ""):
    """A rich Text of `value` shown literally (markup is not parsed in a Text)."""
    from rich.text import Text

    return Text(literal(value), style=style)


def value_text(value) -> str:
    """A parameter value as JSON (so "1" and 1 differ), cut to LONGEST_VALUE characters."""
    shown = json.dumps(value, ensure_ascii=False)
    if len(shown) > LONGEST_VALUE:
        shown = f"{shown[:LONGEST_VALUE - 1]}… ({len(shown)} chars)"
    return shown


def number_text(value) -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.6g}"
