"""`nbscale cluster start|status|scale|stop`: the warm cluster of a project folder, kept in the
background so that runs of the notebooks in the folder and its subfolders share it instead of
starting their own. `status`, `scale` and `stop` act on the cluster runs in `--dir` use: its own,
else the nearest live one of a folder above it (the JupyterLab server's cluster of its root is one).

The commands only parse and print; `nbscale.kernels.warm_cluster` does the work.
"""

from __future__ import annotations

import json
import shlex
import sys
import time

import click

from .reporting import EXIT_BAD_INPUT, EXIT_FAILED, fail, literal, reporting_errors

SHORTEST_IDLE_S = 1.0  # a shorter idle timeout ended the cluster before its start was confirmed
dir_option = click.option("--dir", "folder", default=".", show_default=True,
                          type=click.Path(file_okay=False, exists=True),
                          help="The project folder: runs of the notebooks in it use its warm cluster.")


@click.group()
def cluster():
    """A warm Dask cluster for the notebooks of a folder (shared by their runs)."""


@cluster.command()
@dir_option
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes (default: one per core).")
@click.option("--idle-timeout", default="30m", show_default=True, metavar="TIME",
              help="Stop after this long with nothing running (e.g. 90s, 30m, 2h; 0: never).")
def start(folder, workers, idle_timeout):
    """Start the warm cluster of a folder in the background (unless it runs already)."""
    from dask.utils import parse_timedelta

    from nbscale.kernels import warm_cluster
    from nbscale.kernels.interrupts import sigterm_interrupts

    try:
        idle_s = parse_timedelta(idle_timeout, default="s")
    except (ValueError, KeyError, TypeError):
        fail(f"error: --idle-timeout {idle_timeout!r} is not a time (e.g. 90s, 30m, 2h)", EXIT_BAD_INPUT)
    if 0 < idle_s < SHORTEST_IDLE_S:
        fail(f"error: --idle-timeout {idle_timeout!r} is too short: at least 1s (0: never stop)", EXIT_BAD_INPUT)
    with reporting_errors(), sigterm_interrupts():  # SIGTERM as Ctrl-C: no cluster is left behind
        found, started = warm_cluster.start(folder, workers=workers, idle_timeout=idle_s,
                                            say=lambda text: click.echo(literal(text), err=True))
    if started:
        click.echo(literal(f"started the warm cluster of {found.folder} at {found.address} "
                           f"({found.workers} workers, {_idle_text(found.idle_timeout_s)})"))
    else:
        click.echo(literal(f"the warm cluster of {found.folder} runs already at {found.address} "
                           f"({found.workers} workers; `nbscale cluster stop` first to start another)"))


@cluster.command()
@dir_option
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def status(folder, output):
    """Show the warm cluster runs in a folder use (its own, or a folder's above it): address,
    workers, memory, idle time, runs on it. Exits 1 when there is no live one."""
    from nbscale.kernels import warm_cluster

    with reporting_errors():
        facts = warm_cluster.status(folder)
    if output == "json":
        click.echo(json.dumps(facts, indent=2))
    else:
        _print_status(facts)
    sys.exit(0 if facts["state"] == warm_cluster.LIVE else EXIT_FAILED)


@cluster.command()
@dir_option
@click.argument("workers", type=int)
def scale(folder, workers):
    """Scale the warm cluster of a folder to WORKERS worker processes (runs on it go on)."""
    from nbscale.kernels import warm_cluster

    with reporting_errors():
        facts = warm_cluster.scale(folder, workers)
    click.echo(literal(f"the warm cluster of {facts['folder']} has {facts.get('workers')} workers"))


@cluster.command()
@dir_option
def stop(folder):
    """Stop the warm cluster runs in a folder use (its own, or a folder's above it) and remove its
    files (a stale one's files too)."""
    from nbscale.kernels import warm_cluster

    with reporting_errors():
        found = warm_cluster.stop(folder)
    if found.state == warm_cluster.NONE:
        click.echo(literal(f"no warm cluster in {warm_cluster.state_folder(folder).parent}: nothing to stop"))
    elif found.state == warm_cluster.LIVE:
        above = "" if found.folder == str(warm_cluster.state_folder(folder).parent) else f" of {found.folder}"
        click.echo(literal(f"stopped the warm cluster{above} at {found.cluster.address}"))
        if found.runs:
            click.echo(literal(f"warning: run(s) {', '.join(found.runs)} were running on it: they fail "
                               "(the cluster was stopped)"), err=True)
    else:
        click.echo(literal(f"removed the files of the warm cluster, which was {found.state}: {found.reason}"))


def _print_status(facts: dict) -> None:
    from dask.utils import format_bytes

    from nbscale.kernels import warm_cluster

    state, folder = facts["state"], facts["folder"]
    if state == "none":
        click.echo(literal(f"no warm cluster in {folder} (`nbscale cluster start --dir {shlex.quote(folder)}` "
                           "starts one)"))
        return
    if state != "live":
        click.echo(literal(f"the warm cluster of {folder} is {state}: {facts['reason']}"))
        if warm_cluster.state_folder(folder).is_dir():
            click.echo("`nbscale cluster start` replaces it, `nbscale cluster stop` removes its files")
        return
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(facts["started"]))
    used_below = facts.get("asked", folder) != folder and not facts.get("not_used")
    serves = f" (runs in {facts['asked']} use it)" if used_below else ""
    lines = [
        literal(f"warm cluster of {folder}: live{serves}"),
        literal(f"  address  {facts['address']} (process {facts['pid']}; scheduler file {facts['scheduler_file']})"),
        f"  workers  {facts['workers']} ({facts['threads']} threads), memory {format_bytes(facts['memory_bytes'])}"
        f" of {format_bytes(facts['memory_limit_bytes'])}",
        f"  started  {started}; idle for {facts['idle_s']:.0f}s, {_idle_text(facts['idle_timeout_s'])}",
        f"  runs     {', '.join(facts['runs']) or 'none'} ({facts['clients']} other client(s) connected)",
    ]
    if facts.get("not_used"):
        lines.append(literal(f"  not used by runs started here: {facts['not_used']}"))
    click.echo("\n".join(lines))


def _idle_text(seconds) -> str:
    if not seconds:
        return "never stops when idle"
    return f"stops after {_duration(seconds)} idle"


def _duration(seconds: float) -> str:
    """90 → "1m 30s", 1800 → "30m", 7200 → "2h" (as --idle-timeout takes it)."""
    seconds = round(seconds)
    parts = [(seconds // 3600, "h"), (seconds % 3600 // 60, "m"), (seconds % 60, "s")]
    return " ".join(f"{n}{unit}" for n, unit in parts if n) or "0s"


def register(group):
    group.add_command(cluster)
