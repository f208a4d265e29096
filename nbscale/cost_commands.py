"""`nbscale cost RUN` (per step and totals: wall time, CPU time, peak memory, estimated cost, what
cache hits saved) and `nbscale history STEP` (one step across runs, with the runs where it got slower).

The models are `kernels.cost`'s; this module finds the runs (as `nbscale show` does: the run store of
the notebook's folder, unique id prefixes) and prints them, every name literally (`reporting.literal`).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from .diff_commands import new_table, text
from .reporting import EXIT_BAD_INPUT, duration_text, fail, literal, reporting_errors


@click.command()
@click.argument("run_id")
@click.option("--notebook", type=click.Path(dir_okay=False), help="Notebook whose folder holds the run store.")
@click.option("--core-hour", type=float, help="Price of one CPU-hour (else NBSCALE_CORE_HOUR, "
                                              "[tool.nbscale.cost] core_hour, 0.05).")
@click.option("--gb-hour", type=float, help="Price of 1 GB of memory for an hour (else NBSCALE_GB_HOUR, "
                                            "[tool.nbscale.cost] gb_hour, 0.005).")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def cost(run_id, notebook, core_hour, gb_hour, output):
    """What RUN cost, step by step: wall time, CPU time, peak memory, an estimated cost in units of
    the prices given, and the time and cost its cached steps saved."""
    model = load_cost(notebook, run_id, core_hour, gb_hour)
    if output == "json":
        click.echo(json.dumps(model, indent=2))
    else:
        print_cost(model)


@click.command()
@click.argument("step")
@click.option("--notebook", type=click.Path(dir_okay=False),
              help="The notebook (needed when the folder's runs are of several notebooks).")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def history(step, notebook, limit, output):
    """STEP across runs, newest first: wall time, CPU time, peak memory, and `slower` where it took
    more than 1.5 × its median of earlier runs."""
    from nbscale.kernels.cost import SLOWER_FACTOR, step_history

    from .run_commands import store_for

    store = store_for(notebook)
    with reporting_errors():
        try:
            path = history_notebook(store, notebook)
            rows = step_history(store, path, step, limit)
            if not rows:
                known = sorted({s["step"] for run in store.list_runs(path, limit=5)
                                for s in store.get_run(run["id"])["steps"]})
                fail(f"error: no step {literal(repr(step))} in the runs of {literal(Path(path).name)} "
                     f"(its steps: {literal(', '.join(known)) or 'none yet'})", EXIT_BAD_INPUT)
        finally:
            store.close()
    if output == "json":
        click.echo(json.dumps({"notebook": path, "step": step, "factor": SLOWER_FACTOR, "runs": rows}, indent=2))
    else:
        print_history(step, path, rows)


def register(group):
    for command in (cost, history):
        group.add_command(command)


# -- finding the runs --------------------------------------------------------------------------------


def load_cost(notebook, run_id: str, core_hour=None, gb_hour=None) -> dict:
    """The cost model of a run from the run store of `notebook`'s folder; exits 2 when the run is
    unknown or ambiguous, or a price is not a number ≥ 0."""
    from nbscale.kernels.cost import cached_hashes, load_prices, producing_steps, run_cost

    from .diff_commands import store_of_runs

    with store_of_runs(notebook, [run_id]) as store:
        run = store.get_run(run_id)
        prices = load_prices(run["notebook"], core_hour, gb_hour)
        return run_cost(run, prices, producing_steps(store, run["notebook"], cached_hashes(run)))


def history_notebook(store, notebook) -> str:
    """The notebook whose step history is asked for: the one given, else the one notebook the
    folder's runs are of (more than one: say to give --notebook)."""
    if notebook:
        return str(Path(notebook).resolve())
    notebooks = sorted({run["notebook"] for run in store.list_runs(None, limit=1000)})
    if len(notebooks) != 1:
        names = ", ".join(literal(Path(n).name) for n in notebooks) or "none"
        fail(f"error: the runs in this folder are of {len(notebooks)} notebooks ({names}): "
             "give --notebook NB", EXIT_BAD_INPUT)
    return notebooks[0]


# -- printing ------------------------------------------------------------------------------------------


def print_cost(model: dict) -> None:
    total, prices = model["total"], model["prices"]
    table = new_table(f"Cost of run {model['run_id'][:12]} (prices: {prices['core_hour']:g} per CPU-hour, "
                      f"{prices['gb_hour']:g} per GB-hour)",
                      ["step", "status", "wall", "cpu", "peak memory", "cost", "saved"])
    for step in model["steps"]:
        table.add_row(text(step["step"]), text(step["status"].replace("_", " ")), text(duration_text(step["wall_s"])),
                      text(duration_text(step["cpu_s"])), text(bytes_text(step["peak_rss_bytes"])),
                      text(cost_text(step["cost"])), text(saved_text(step)))
    table.add_row(text("total", "bold"), text(""), text(duration_text(total["wall_s"])),
                  text(duration_text(total["cpu_s"])), text(bytes_text(total["peak_rss_bytes"])),
                  text(cost_text(total["cost"])), text(saved_text(total)))
    echo(table)
    click.echo(f"the run took {duration_text(total['elapsed_s'])} from start to end")
    if total["cached"]:
        click.echo(f"{total['cached']} cached step(s) saved {duration_text(total['saved_s'])} and "
                   f"{cost_text(total['saved_cost'])} units")


def cost_line(model: dict) -> str:
    """One line for `nbscale run`'s summary: CPU time, peak memory, cost, and what the cache saved."""
    total = model["total"]
    line = (f"cost: {cost_text(total['cost'])} units (cpu {duration_text(total['cpu_s'])}, "
            f"peak memory {bytes_text(total['peak_rss_bytes'])})")
    if total["cached"]:
        line += (f"; {total['cached']} cached step(s) saved {duration_text(total['saved_s'])} and "
                 f"{cost_text(total['saved_cost'])} units")
    return line + f"  (nbscale cost {model['run_id'][:12]})"


def print_history(step: str, notebook: str, rows: list[dict]) -> None:
    table = new_table(f"Step {step} of {Path(notebook).name}, newest first (* slower than 1.5 × its median before)",
                      ["run", "when", "status", "wall", "cpu", "peak memory", "vs median"])
    for row in rows:
        ratio = f"{row['ratio']:.2f}×" if row["ratio"] is not None else "-"
        mark = "* " if row["slower"] else "  "
        style = "bold red" if row["slower"] else ""
        table.add_row(text(mark + row["run_id"][:8], style), text((row["created"] or "")[:16].replace("T", " ")),
                      text(row["status"].replace("_", " ")), text(duration_text(row["wall_s"]), style),
                      text(duration_text(row["cpu_s"])), text(bytes_text(row["peak_rss_bytes"])), text(ratio, style))
    echo(table)
    slower = sum(row["slower"] for row in rows)
    if slower:
        click.echo(f"{slower} run(s) of {literal(step)} were slower than 1.5 × its median of earlier runs")


def echo(renderable) -> None:
    """Print a rich table without interpreting anything in it, lines without trailing blanks."""
    from rich.console import Console

    console = Console(markup=False, emoji=False, highlight=False)
    with console.capture() as captured:
        console.print(renderable)
    click.echo("\n".join(line.rstrip() for line in captured.get().splitlines()),
               color=console.color_system is not None)


def bytes_text(value) -> str:
    if value is None:
        return "-"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{int(value)} B"


def cost_text(value) -> str:
    return "-" if value is None else f"{value:.3g}"


def saved_text(row: dict) -> str:
    if row.get("saved_s") is None and row.get("saved_cost") is None:
        return ""
    return f"{duration_text(row['saved_s'])} / {cost_text(row['saved_cost'])}"
