"""`nbscale lineage RUN NAME`: what produced a metric or a stored value, and its OpenLineage export.

The model is `kernels.lineage.lineage` (the one the panel's lineage view shows): the step that made
NAME and every step upstream of it, with hashes, parameters, digests, files read and package
versions. `--openlineage DIR` writes the run's OpenLineage run events (`kernels.openlineage`), one
JSON file per event, for Marquez or another consumer; NAME is not needed then. Runs are found as
`nbscale show` and `nbscale diff` find them (the run store of the notebook's folder, unique id
prefixes). Names, paths and values are printed literally (`reporting.literal`).
"""

from __future__ import annotations

import json

import click

from .diff_commands import store_of_runs, value_text
from .reporting import EXIT_BAD_INPUT, fail, literal

SHORT_DIGEST = 24  # characters of a digest or a key in the text output (JSON has them whole)


@click.command()
@click.argument("run_id", metavar="RUN")
@click.argument("name", required=False)
@click.option("--notebook", type=click.Path(dir_okay=False), help="Notebook whose folder holds the run store.")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--openlineage", "openlineage_dir", type=click.Path(file_okay=False),
              help="Write the run's OpenLineage run events (one JSON file each) into this folder.")
@click.option("--namespace", help="OpenLineage job namespace [default: nbscale://<host>/<notebook folder>].")
def lineage(run_id, name, notebook, output, openlineage_dir, namespace):
    """What produced metric or value NAME of RUN: the step, its hash, parameters, inputs (up the
    DAG), files read and package versions. With --openlineage DIR: export the run as OpenLineage
    run events instead (NAME not needed)."""
    with store_of_runs(notebook, [run_id]) as store:
        if openlineage_dir is not None:
            export(store, run_id, openlineage_dir, namespace, output)
        else:
            show(store, run_id, name, output)


def register(group):
    group.add_command(lineage)


def export(store, run_id: str, folder: str, namespace: str | None, output: str) -> None:
    from nbscale.kernels.openlineage import run_events, write_events

    events = run_events(store, run_id, namespace)
    try:
        paths = write_events(events, folder)
    except OSError as exc:  # a file in the way, a read-only or pseudo file system
        fail(f"error: cannot write the OpenLineage events into {literal(folder)}: {literal(exc.strerror or str(exc))}",
             EXIT_BAD_INPUT)
    if output == "json":
        click.echo(json.dumps({"events": [str(p) for p in paths]}, indent=2))
    else:
        click.echo(f"{len(paths)} OpenLineage events written to {literal(folder)}")


def show(store, run_id: str, name: str | None, output: str) -> None:
    from nbscale.kernels.lineage import UnknownLineageName, run_nodes, value_names
    from nbscale.kernels.lineage import lineage as lineage_model

    if name is None:
        run = store.get_run(run_id)
        names = ", ".join(literal(n) for n in value_names(run, run_nodes(store, run)))
        fail(f"error: give the NAME of a metric or a stored value of run {run['id'][:12]}: {names or 'it has none'}"
             " (or --openlineage DIR to export the run)", EXIT_BAD_INPUT)
    try:
        model = lineage_model(store, run_id, name)
    except UnknownLineageName as exc:
        listed = ", ".join(literal(n) for n in exc.names) or "none (no step of it recorded lineage)"
        fail(f"error: run {exc.run_id[:12]} has no metric or stored value named {literal(repr(name))}; "
             f"it has: {listed}", EXIT_BAD_INPUT)
    if output == "json":
        click.echo(json.dumps(model, indent=2, ensure_ascii=False))
    else:
        click.echo("\n".join(tree_lines(model)))


# -- the text tree ----------------------------------------------------------------------------------


def tree_lines(model: dict) -> list[str]:
    run = model["run"]
    if model["kind"] == "metric":
        shown = model.get("value_text") or value_text(model.get("value"))
        what = f"metric {literal(model['name'])} = {shown}"
    else:
        what = f"value {literal(model['name'])} ({short(model.get('digest'))})"
    lines = [f"{what}, made by step {literal(model['step'])} in run {run['id'][:12]} ({run['status']})",
             f"notebook {literal(run['notebook'])} · engine {literal(run['engine'])}"]
    if model.get("also_made_by"):
        lines.append("also handed on by: " + ", ".join(literal(s) for s in model["also_made_by"]))
    nodes = {node["step"]: node for node in model["nodes"]}
    _node_lines(nodes, model["step"], "", "", set(), lines)
    return lines


def _node_lines(nodes: dict, step: str, lead: str, indent: str, shown: set, lines: list) -> None:
    node = nodes[step]
    if step in shown:
        lines.append(f"{lead}{literal(step)} (shown above)")
        return
    shown.add(step)
    lines.append(f"{lead}{literal(step)} [{_status(node)}] key {short(node.get('key'))}")
    for detail in _details(node):
        lines.append(f"{indent}│ {detail}")
    upstream = sorted({given["step"] for given in (node.get("inputs") or {}).values() if given["step"] in nodes})
    for i, source in enumerate(upstream):
        last = i == len(upstream) - 1
        _node_lines(nodes, source, indent + ("└─ " if last else "├─ "), indent + ("   " if last else "│  "),
                    shown, lines)


def _status(node: dict) -> str:
    status = node["status"]
    if node.get("cached_from"):
        status += f", cached from run {node['cached_from'][:12]}"
    elif node.get("source") == "manifest":
        status += ", from the stored result's manifest (the run that stored it is gone)"
    elif node.get("source") == "none":
        status += ", no lineage recorded"
    return status


def _details(node: dict) -> list[str]:
    details = []
    if node.get("parameters"):
        details.append("parameters: " + ", ".join(f"{literal(k)}={value_text(v)}"
                                                  for k, v in node["parameters"].items()))
    for name, given in (node.get("inputs") or {}).items():
        details.append(f"input {literal(name)} ← {literal(given['step'])} ({short(given.get('digest'))})")
    for label, field in (("file read", "files_read"), ("file written", "files_written"), ("module", "modules")):
        for path, digest in (node.get(field) or {}).items():
            details.append(f"{label} {literal(path)} ({short(digest)})")
    details += _packages(node)
    for field, count in (node.get("truncated") or {}).items():
        details.append(f"{literal(field)}: {count if isinstance(count, int) else len(count)} more not recorded")
    return details


def _packages(node: dict) -> list[str]:
    packages = node.get("packages") or {}
    if not packages:
        return []
    named = [n for n in packages if n in set(node.get("imported") or []) or n == "python"]
    text = ", ".join(f"{literal(n)} {literal(str(packages[n]))}" for n in named)
    others = len(packages) - len(named)
    if others:
        text += f" (+{others} more loaded: --output json lists them)"
    return [f"packages: {text}"]


def short(digest) -> str:
    if not digest:
        return "no digest"
    digest = literal(str(digest))
    return digest if len(digest) <= SHORT_DIGEST else digest[:SHORT_DIGEST] + "…"
