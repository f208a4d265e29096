"""`nbscale cache`: what the artifact store holds, checking it, trimming it, and why a step would
or would not run again."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import click

from .reporting import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, fail, literal, reporting_errors

AGE = re.compile(r"^(\d+)([smhdw])$")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
IN_USE_SLACK_S = 5  # a result used this long before a run in progress started counts as used by it


@click.group()
def cache():
    """The artifact store: list, verify, gc, and why a step would run again."""


def _store(notebook, store_url):
    from nbscale.kernels.contract import artifacts_url
    from nbscale.kernels.store import ArtifactStore

    with reporting_errors():  # a store that cannot be opened: exit 2, with the reason
        # any file name in the folder gives the folder's store
        return ArtifactStore(store_url or artifacts_url(Path(notebook) if notebook else Path.cwd() / "_"))


def _when(epoch) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch)) if epoch else "-"


def _size(n) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


store_option = click.option("--store", "store_url", metavar="URL", help="Artifact store (default: .nbscale/artifacts).")
notebook_argument = click.argument("notebook", required=False, type=click.Path(dir_okay=False))


@cache.command("ls")
@notebook_argument
@store_option
def ls(notebook, store_url):
    """Stored results: step, size, created, last used (newest use first)."""
    entries = sorted(_store(notebook, store_url).entries(), key=lambda e: e["used"] or e["created"] or 0, reverse=True)
    if not entries:
        click.echo("the store is empty")
    for e in entries:
        state = "" if e["ok"] else "  (unreadable or an older format)"
        click.echo(literal(f"{e['step'] or '?':<20} {_size(e['bytes']):>10}  created {_when(e['created'])}  "
                           f"used {_when(e['used'])}  {e['key']}{state}"))
    total = sum(e["bytes"] or 0 for e in entries)
    click.echo(f"{len(entries)} stored result(s), {_size(total)}")


@cache.command()
@notebook_argument
@store_option
def verify(notebook, store_url):
    """Re-hash every stored value; exit 1 when one is damaged."""
    from nbscale.kernels.errors import ArtifactNotFound

    store = _store(notebook, store_url)
    damaged = 0
    for e in store.entries():
        try:
            problems = store.verify(e["hash"]) if e["ok"] else ["unreadable manifest or an older format"]
        except ArtifactNotFound:  # removed since it was listed (gc, or a run that found it damaged)
            continue
        for problem in problems:
            click.echo(literal(f"{e['step'] or '?'} ({e['key']}): {problem}"))
        damaged += bool(problems)
    click.echo(f"{damaged} damaged result(s)")
    sys.exit(EXIT_FAILED if damaged else EXIT_OK)


@cache.command()
@notebook_argument
@store_option
@click.option("--keep-last", type=click.IntRange(min=0), help="Keep the N most recently used results of each step.")
@click.option("--older-than", metavar="AGE", help="Remove results not used for AGE (30d, 12h, 2w).")
@click.option("--dry-run", is_flag=True, help="Say what would be removed, remove nothing.")
def gc(notebook, store_url, keep_last, older_than, dry_run):
    """Remove stored results: beyond the last N per step, or unused for a while, and unreadable ones."""
    if keep_last is None and older_than is None:
        fail("error: say --keep-last N or --older-than AGE", EXIT_BAD_INPUT)
    limit = _age(older_than) if older_than is not None else None  # (an empty AGE is refused, not "no age")
    store = _store(notebook, store_url)
    by_step: dict = {}
    for e in sorted(store.entries(), key=lambda e: e["used"] or e["created"] or 0, reverse=True):
        by_step.setdefault(e["step"], []).append(e)
    doomed = [e for entries in by_step.values() for i, e in enumerate(entries)
              if not e["ok"] or (keep_last is not None and i >= keep_last)
              or (limit is not None and time.time() - (e["used"] or e["created"] or 0) > limit)]
    live = _runs_in_progress(notebook)
    spared = [e for e in doomed if e["ok"] and _in_use(e, live)]
    doomed = [e for e in doomed if e not in spared]
    for e in spared:
        click.echo(literal(f"kept {e['step'] or '?'} ({e['key']}, {_size(e['bytes'])}): used since run "
                           f"{_in_use(e, live)[:12]} started, which is still running and may read it"))
    for e in doomed:
        if not dry_run:
            try:
                store.remove(e["key"])
            except OSError as exc:  # a read-only store (or folder): said, as `nbscale run` says it
                fail(f"error: cannot remove {e['key']} from {store.root}: {exc.strerror or exc}", EXIT_BAD_INPUT)
        click.echo(literal(f"{'would remove' if dry_run else 'removed'} {e['step'] or '?'} ({e['key']}, "
                           f"{_size(e['bytes'])})"))
    click.echo(f"{len(doomed)} result(s), {_size(sum(e['bytes'] or 0 for e in doomed))}")
    if spared:
        click.echo(f"{len(spared)} result(s) kept for runs in progress: gc again once they end")


def _runs_in_progress(notebook) -> dict[str, float]:
    """Runs of the run store beside NOTEBOOK (or of this folder) still in progress → when they started
    (epoch). A run reads the stored results it reuses as its steps come to them, not all at once: a
    result gc removed under it failed a later step ("no artifact for ..."). A result a run reuses is
    marked used (`record_use`) as the run starts or as it is read, so gc spares what was used since a
    run in progress started. Runs whose process is gone are ended by the read (`RunStore.reap`). No run
    store, or one that cannot be read (no run can record into it either): no runs in progress."""
    from datetime import datetime

    from nbscale.kernels.contract import FINISHED, run_store_path
    from nbscale.kernels.errors import NbscaleError
    from nbscale.kernels.runstore import RunStore

    path = run_store_path(Path(notebook) if notebook else Path.cwd() / "_")
    if not path.exists():
        return {}
    try:
        with RunStore(path) as store:
            rows = [r for r in store.list_runs(limit=1_000_000) if r["status"] not in FINISHED]
    except (NbscaleError, OSError):
        return {}
    live = {}
    for row in rows:
        try:
            live[row["id"]] = datetime.fromisoformat(row["created"]).timestamp()
        except (TypeError, ValueError):
            live[row["id"]] = 0.0  # a start that cannot be read: every result may be in use
    return live


def _in_use(entry: dict, live: dict[str, float]) -> str | None:
    """The id of a run in progress that used `entry` since it started (local stores know the use)."""
    used = entry["used"]
    if used is None:
        return None
    return next((run for run, started in live.items() if used >= started - IN_USE_SLACK_S), None)


def _age(text: str) -> float:
    match = AGE.match(text.strip())
    if not match:
        fail(f"error: --older-than {text!r}: give a number and a unit, e.g. 30d, 12h, 2w", EXIT_BAD_INPUT)
    return int(match.group(1)) * SECONDS[match.group(2)]


@cache.command()
@click.argument("notebook", type=click.Path(dir_okay=False))
@click.argument("step", required=False)
@click.option("-p", "--parameter", "assignments", multiple=True, metavar="NAME=VALUE")
@store_option
def why(notebook, step, assignments, store_url):
    """Would STEP (or each step) reuse its stored result now, and if not, why."""
    from nbscale.kernels import params
    from nbscale.kernels.runner import RunOptions, cache_report

    with reporting_errors():
        report = cache_report(notebook, params.parse_assignments(assignments), RunOptions(store_url=store_url))
    if step is not None and step not in report:
        fail(literal(f"error: no step {step!r} in {notebook}; steps: {', '.join(report)}"), EXIT_BAD_INPUT)
    for name, entry in report.items():
        if step is None or name == step:
            verdict = "reused" if entry["reused"] else "runs"
            # a reason names files as the cells or the step named them: any text at all
            click.echo(literal(f"{name}: {verdict}") + "".join(f"\n    {literal(reason)}" for reason in entry["why"]))


def register(group):
    group.add_command(cache)
