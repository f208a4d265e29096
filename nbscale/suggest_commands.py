"""`nbscale suggest`: step tags proposed for a notebook (compiler/suggest.py), shown as a DAG with
the expected speed-up, and written on request."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .reporting import EXIT_BAD_INPUT, EXIT_OK, fail, literal, reporting_errors


@click.command()
@click.argument("notebook", type=click.Path(dir_okay=False))
@click.option("--durations", type=click.Choice(["auto", "last-run", "notebook", "estimate"]), default="auto",
              show_default=True, help="Cell times to plan with: the last successful run's, the notebook's execution "
                                      "metadata (papermill, JupyterLab's recorded timing), or an estimate; auto "
                                      "takes the first that covers every cell.")
@click.option("--write", "write", is_flag=True, help="Write the tags to NB.suggested.ipynb (or -o FILE).")
@click.option("--in-place", is_flag=True, help="Write the tags into the notebook itself.")
@click.option("-o", "--out", type=click.Path(dir_okay=False), help="With --write: the file to write.")
@click.option("--output", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def suggest(notebook, durations, write, in_place, out, fmt):
    """Propose step tags for NOTEBOOK: independent heavy cells in parallel steps, chains and tiny
    cells merged, cells that must stay together kept together."""
    from nbscale.compiler.graph import render
    from nbscale.compiler.suggest import SuggestError, write_tags
    from nbscale.compiler.suggest import suggest as propose
    from nbscale.kernels.cell_durations import last_run_durations

    if in_place and out:
        fail("error: --in-place writes the notebook itself; leave out -o", EXIT_BAD_INPUT)
    _refuse_writing_over(notebook, out)
    with reporting_errors():
        given = last_run_durations(notebook) if durations in ("auto", "last-run") else None
        if durations == "last-run" and not given:
            fail(literal(f"error: {notebook} has no successful run whose steps cover its cells"), EXIT_BAD_INPUT)
        proposal = propose(notebook, given if durations != "estimate" else None,
                           use_notebook_times=durations in ("auto", "notebook"))
    target = Path(notebook) if in_place else Path(out) if out else _suggested_path(Path(notebook))
    written = None
    if write or in_place or out:
        try:
            written = write_tags(notebook, proposal.tags, target, proposal.sources)
        except OSError as exc:
            fail(f"error: cannot write {target}: {exc.strerror or exc}", EXIT_BAD_INPUT)
        except SuggestError as exc:
            fail(f"error: {exc}", EXIT_BAD_INPUT)
    if fmt == "json":
        click.echo(json.dumps({**proposal.as_dict(), "written": str(written) if written else None}, indent=2))
    else:
        click.echo(describe(proposal, render(proposal.pipeline, "text")))
        click.echo(literal(f"wrote {written}" if written else
                           f"nothing written: --write writes {target.name}, --in-place the notebook itself"))
    sys.exit(EXIT_OK)


def _refuse_writing_over(notebook, out) -> None:
    """A typo must not cost the notebook (as `compile -o` refuses it): only --in-place writes it."""
    from .cli import same_file

    if out and same_file(out, notebook):
        fail(literal(f"error: -o {out} is the notebook itself; nothing written (--in-place writes the tags into it)"),
             EXIT_BAD_INPUT)


def _suggested_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.suggested{path.suffix}")


def describe(proposal, dag: str) -> str:
    from nbscale.compiler.notebook import cell_number

    unit = "s" if proposal.durations != "estimate" else " units"
    source = {"given": "the last successful run", "notebook": "the notebook's execution metadata",
              "estimate": "an estimate: fits, reads and loops weigh 1, other cells 0.1"}[proposal.durations]
    lines = [f"{proposal.notebook}: {len(proposal.steps)} steps proposed (cell times from {source})", ""]
    width = max(len(s.name) for s in proposal.steps)
    for step in proposal.steps:
        cells = ", ".join(str(cell_number(c)) for c in step.cells)
        after = ", ".join(step.after) or "-"
        lines.append(f"  {step.name:<{width}}  cells {cells:<12} {step.seconds:>8.2f}{unit}  after {after}")
    for cell, role in sorted(proposal.roles.items()):
        lines.append(f"  cell {cell_number(cell)} becomes '{role}'")
    lines += ["", *dag.rstrip("\n").split("\n"), "",
              f"critical path {proposal.critical_path:.2f} of {proposal.total:.2f}{unit} in all: "
              f"expected speed-up {proposal.speedup:.2f}× with enough workers"]
    lines += [f"note: {note}" for note in proposal.notes]
    # line by line: the path (any text), names and notes are shown literally, a newline in them too
    return "\n".join(literal(line) for line in lines)


def register(group):
    group.add_command(suggest)
