"""`nbscale drift RUN` (a run's data against a reference run's, column by column) and
`nbscale baseline pin|show|unpin` (the runs pinned as a notebook's reference).

The model is `kernels.drift.run_drift`; this module finds the runs as `nbscale diff` does (the run
store of the notebook's folder, unique id prefixes; an unknown or ambiguous id exits 2 with nothing
on stdout) and prints the model, every name literally (`reporting.literal`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .reporting import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, fail, literal, reporting_errors


@click.command()
@click.argument("run_id", metavar="RUN")
@click.option("--reference", metavar="RUN", help="The run to compare with (default: the pinned baseline, "
                                                 "else the notebook's previous succeeded run).")
@click.option("--baseline", metavar="NAME", help="Compare with the run pinned as NAME (`nbscale baseline pin`).")
@click.option("--notebook", type=click.Path(dir_okay=False), help="Notebook whose folder holds the run store.")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--threshold", "thresholds", multiple=True, metavar="NAME=VALUE",
              help="A drift threshold (small_n, ks_p_value, wasserstein, chi2_p_value, jensenshannon, psi, share; "
                   "numeric_test, categorical_test); default from pyproject.toml [tool.nbscale.drift].")
@click.option("--fail-on-drift", is_flag=True, help=f"Exit {EXIT_CHECK_FAILED} when a value drifted (for CI).")
def drift(run_id, reference, baseline, notebook, output, thresholds, fail_on_drift):
    """Data drift of RUN's step outputs against a reference run: per column a test chosen by type and
    size (KS or Wasserstein; chi-squared or Jensen–Shannon), PSI, and the share of drifted columns."""
    from nbscale.kernels.drift import load_thresholds, run_drift

    from .diff_commands import store_of_runs

    if reference and baseline:
        fail("error: give --reference RUN or --baseline NAME, not both", EXIT_BAD_INPUT)
    with store_of_runs(notebook, [run_id] + ([reference] if reference else [])) as store:
        run = store.get_run(run_id)
        settings = load_thresholds(run["notebook"], _assignments(thresholds))
        model = run_drift(store, run_id, reference, baseline, settings)
    if baseline and model["reference"] is None:
        fail(f"error: {literal(model['why'])} (`nbscale baseline show` lists the pins)", EXIT_BAD_INPUT)
    if output == "json":
        click.echo(json.dumps(model, indent=2))
    else:
        print_drift(model)
    sys.exit(EXIT_CHECK_FAILED if fail_on_drift and model["drifted"] else 0)


def _assignments(pairs) -> dict:
    given = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            fail(f"error: --threshold takes NAME=VALUE, got {literal(repr(pair))}", EXIT_BAD_INPUT)
        given[name.strip()] = value.strip()
    return given


# -- printing ------------------------------------------------------------------------------------------


def print_drift(model: dict) -> None:
    from rich.console import Console

    from .diff_commands import text

    console = Console(markup=False, emoji=False, highlight=False)
    with console.capture() as captured:
        if model["reference"] is None:
            console.print(text(f"run {model['run_id'][:12]}: nothing to compare with: {model['why']} "
                               "(give --reference RUN, or pin one with `nbscale baseline pin RUN`)"))
        else:
            console.print(text(f"data drift of run {model['run_id'][:12]} against {model['reference'][:12]} "
                               f"({model.get('why', 'given')}): {summary_text(model)}"))
            for value in model["values"]:
                console.print()
                console.print(value_table(value))
                for line in value_notes(value):
                    console.print(text(line))
            for key, label in (("missing_values", "not in this run"), ("new_values", "not in the reference")):
                for entry in model.get(key) or []:
                    console.print(text(f"{entry['step']}.{entry['value']}: {label}"))
    click.echo("\n".join(line.rstrip() for line in captured.get().splitlines()),
               color=console.color_system is not None)


def summary_text(model: dict) -> str:
    compared = model["columns_compared"]
    if not compared:
        return "no column profiled in both runs"
    return (f"{model['columns_drifted']} of {compared} column(s) drifted ({model['share']:.0%})"
            + ("; drift flagged" if model["drifted"] else ""))


def value_table(value: dict):
    from .diff_commands import new_table, text

    rows = value["rows"]
    title = (f"{value['step']}.{value['value']} ({rows[0]} → {rows[1]} rows): {value['drifted']} of "
             f"{value['compared']} column(s) drifted ({value['share']:.0%})"
             + (" — DRIFT" if value["dataset_drift"] else ""))
    table = new_table(title, ["column", "type", "test", "score", "p-value", "threshold", "PSI", "drifted"])
    for column in table.columns:
        column.overflow = "fold"  # a long or hostile name is shown whole, over several lines
    for column in value["columns"]:
        style = "bold red" if column["drifted"] else ""
        table.add_row(*(text(str(cell), style) for cell in (
            column["name"], column.get("type") or "-", column.get("test") or "-", number(column.get("score")),
            number(column.get("p_value")), number(column.get("threshold")), number(column.get("psi")),
            ("yes" if column["drifted"] else "no") + (f" ({column['note']})" if column.get("note") else ""))))
    return table


def value_notes(value: dict) -> list[str]:
    notes = [f"  column {name}: not in this run" for name in value["missing_columns"]]
    notes += [f"  column {name}: not in the reference" for name in value["new_columns"]]
    notes += [f"  column {c['name']}: type changed {c['from']} → {c['to']}" for c in value["type_changes"]]
    if value.get("truncated"):
        notes.append("  (only the first columns of a wide value are profiled)")
    return notes


def number(value) -> str:
    return "-" if value is None else f"{value:.3g}"


# -- baselines -------------------------------------------------------------------------------------------


@click.group()
def baseline():
    """Pin a run as a notebook's reference for `nbscale drift` (and show or remove pins)."""


def _pin_name(ctx, param, value: str) -> str:
    """A pin's name: a line of text, not empty (`drift --against NAME` names it)."""
    if not value.strip() or not value.isprintable():
        raise click.BadParameter("a pin's name is a non-empty line of printable text")
    return value


@baseline.command()
@click.argument("run_id", metavar="RUN")
@click.option("--name", default="baseline", show_default=True, callback=_pin_name, help="The pin's name.")
@click.option("--notebook", type=click.Path(dir_okay=False), help="Notebook whose folder holds the run store.")
def pin(run_id, name, notebook):
    """Pin RUN as NAME for its notebook (replacing an earlier pin of that name)."""
    from .diff_commands import store_of_runs

    with store_of_runs(notebook, [run_id]) as store:
        run = store.get_run(run_id)
        store.pin(run["notebook"], name, run["id"])
    click.echo(literal(f"pinned run {run['id'][:12]} as {name!r} for {Path(run['notebook']).name}"))


@baseline.command(name="show")
@click.option("--notebook", type=click.Path(dir_okay=False), help="Only this notebook's pins (and its run store).")
def show_pins(notebook):
    """List the pinned runs."""
    from .run_commands import store_for

    store = store_for(notebook)
    with reporting_errors():
        try:
            pins = store.pins(str(Path(notebook).resolve()) if notebook else None)
        finally:
            store.close()
    if not pins:
        click.echo("no pinned runs (`nbscale baseline pin RUN` pins one)")
    for entry in pins:
        click.echo(literal(f"{entry['name']}  {entry['run_id'][:12]}  {Path(entry['notebook']).name}  "
                            f"pinned {entry['created'][:19].replace('T', ' ')}"))


@baseline.command()
@click.option("--name", default="baseline", show_default=True, help="The pin's name.")
@click.option("--notebook", type=click.Path(dir_okay=False), help="The notebook whose pin to remove.")
def unpin(name, notebook):
    """Remove a pin (of NOTEBOOK; without it, the one notebook of the run store pinned as NAME)."""
    from .run_commands import store_for

    store = store_for(notebook)
    with reporting_errors():
        try:
            found = [p for p in store.pins(str(Path(notebook).resolve()) if notebook else None) if p["name"] == name]
            if len(found) != 1:
                where = "" if found else " (`nbscale baseline show` lists the pins)"
                fail(literal(f"error: {len(found) or 'no'} notebooks have a pin named {name!r}{where}"
                              + ("; give --notebook NB" if found else "")), EXIT_BAD_INPUT)
            store.unpin(found[0]["notebook"], name)
        finally:
            store.close()
    click.echo(literal(f"unpinned {name!r} of {Path(found[0]['notebook']).name}"))


def register(group):
    group.add_command(drift)
    group.add_command(baseline)
