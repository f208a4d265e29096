"""`%load_ext nbscale` and the `%nbscale` line magic: run the current notebook as a pipeline from a
cell and watch it there, and check, draw, scale, list, load and suggest — one function per
subcommand (`%nbscale --help`).

`%nbscale run` returns at once: the run happens in a process of its own (`live_run.LiveRun`) and its
view updates itself. `%nbscale wait` blocks until the latest run ends (a batch runner such as
papermill needs it, or `run --wait`, so that the output notebook holds the final state).
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.display import display

from .errors import NbscaleError
from .notebook_path import find_notebook, unsaved_warning
from .run_static import e

RUNS: list = []  # the LiveRuns started from this kernel, oldest first
DEFAULTS: dict = {"workers": None}  # `%nbscale scale N`: the size of the cluster the next runs start


def latest():
    """The latest run started from this kernel (its `view.cancel_button`, `model`, `wait()`, `cancel()`)."""
    if not RUNS:
        raise UsageError("%nbscale: no run started from this kernel yet (%nbscale run)")
    return RUNS[-1]


class Parser(argparse.ArgumentParser):
    """argparse whose mistakes are IPython UsageErrors (a short red message), never SystemExit."""

    def error(self, message):
        raise UsageError(f"%nbscale: {message}\n{self.format_usage()}")

    def exit(self, status=0, message=None):
        raise HelpShown(message or "")


class HelpShown(NbscaleError):
    """argparse asked to exit after printing help (or `--help`): the magic just returns."""


def split(line: str) -> list[str]:
    """The magic's line as shell words; an unclosed quote is a UsageError, as argparse's mistakes are."""
    try:
        return shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"%nbscale: {str(exc).lower()} in: {line}") from None


def whole_number(text: str) -> int:
    """`--workers`: at least 1. 0 is refused here as -2 is: it would otherwise read as "not given"."""
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"a whole number of at least 1, not {text!r}")
    return number


def parser() -> Parser:
    top = Parser(prog="%nbscale", description="Run this notebook as a pipeline, and look at its runs.")
    sub = top.add_subparsers(dest="command", required=True, parser_class=Parser)
    run = sub.add_parser("run", help="run the notebook (the saved file) without blocking the kernel")
    run.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE")
    run.add_argument("--engine", default="dask")
    run.add_argument("--scheduler", metavar="ADDRESS")
    run.add_argument("--scheduler-file")
    run.add_argument("--workers", type=whole_number)
    run.add_argument("--no-cache", action="store_true")
    run.add_argument("--store", metavar="URL", help="artifact store (fsspec URL)")
    run.add_argument("--wait", action="store_true", help="block until the run ends (for papermill, nbconvert)")
    sub.add_parser("wait", help="block until the latest run ends; its view then shows the final state")
    sub.add_parser("cancel", help="cancel the latest run")
    sub.add_parser("check", help="diagnostics of the notebook")
    sub.add_parser("graph", help="the pipeline's DAG (with the latest run's statuses)")
    scale = sub.add_parser("scale", help="workers of the cluster the runs use")
    scale.add_argument("n", type=int)
    runs = sub.add_parser("runs", help="the notebook's run history")
    runs.add_argument("--limit", type=int, default=20)
    load = sub.add_parser("load", help="bring the values a step received and produced into this namespace")
    load.add_argument("step")
    load.add_argument("--run", metavar="RUN", help="a run id (prefix); default: the latest run")
    load.add_argument("--store", metavar="URL", help="artifact store (fsspec URL)")
    sub.add_parser("suggest", help="step tags proposed for an untagged notebook")
    for command in sub.choices.values():
        command.add_argument("--notebook", metavar="PATH", help="the notebook (default: this kernel's)")
    return top


@magics_class
class NbscaleMagics(Magics):
    def __init__(self, shell):
        super().__init__(shell)
        self.cell_started = time.time()
        self.cell_source = ""
        shell.events.register("pre_run_cell", self._pre_run_cell)

    def _pre_run_cell(self, info):
        self.cell_started, self.cell_source = time.time(), getattr(info, "raw_cell", "") or ""

    @line_magic
    def nbscale(self, line):
        """Run this notebook as a pipeline and watch it here: `%nbscale --help`."""
        try:
            args = parser().parse_args(split(line))
        except HelpShown as shown:  # argparse printed the help already
            if shown.args[0]:
                print(shown.args[0])
            return
        try:
            getattr(self, f"do_{args.command}")(args)
        except NbscaleError as exc:
            raise UsageError(f"%nbscale {args.command}: {exc}") from None

    def notebook(self, args) -> Path:
        return find_notebook(self.shell.user_ns, args.notebook)

    # -- run, wait, cancel ------------------------------------------------------------------------

    def do_run(self, args):
        from .kernels import params
        from .live_run import LiveRun

        notebook = self.notebook(args)
        parameters = params.parse_assignments(args.parameter)
        pipeline = self._runnable(notebook)
        if pipeline is None:
            return
        params.resolve(pipeline, parameters)  # an unknown name or a badly typed value: nothing starts
        warning = unsaved_warning(notebook, self.cell_started, self.cell_source, own=args.notebook is None)
        if warning:
            print(warning)
        options = {"engine": args.engine, "use_cache": not args.no_cache, "store_url": args.store,
                   "scheduler": args.scheduler, "scheduler_file": args.scheduler_file,
                   "workers": args.workers or DEFAULTS["workers"]}
        widgets = widgets_available()
        if not widgets:
            print("ipywidgets is not installed: a static view, updated once a second "
                  "(pip install 'nbscale[widgets]' for the live one)")
        live = LiveRun(notebook, parameters, options, widgets=widgets).start()
        RUNS.append(live)
        if args.wait:
            live.wait()

    def _runnable(self, notebook):
        """The compiled pipeline, or None after showing why it cannot run."""
        from .compiler import compile_notebook
        from .compiler.notebook import cell_label, read_notebook

        pipeline = compile_notebook(notebook)
        if pipeline.has_errors:
            self._show_diagnostics(notebook, pipeline)
            return None
        cells = {c.index: c.source for c in read_notebook(notebook).cells}
        in_pipeline = [i for s in pipeline.steps for i in s.cells] + list(pipeline.prelude.cells)
        selfish = [i for i in in_pipeline if "%nbscale" in cells.get(i, "") or "load_ext nbscale" in cells.get(i, "")]
        if selfish:
            raise UsageError(f"%nbscale run: {cell_label(selfish[0])} uses %nbscale but is part of the pipeline, "
                             "which would run itself: tag that cell `skip`")
        return pipeline

    def do_wait(self, args):
        live = latest()
        status = live.wait()
        print(f"run {(live.model.run_id or '')[:12]}: {status}")

    def do_cancel(self, args):
        live = latest()
        live.cancel()
        print("cancelling" if not live.model.finished else f"the run already ended {live.model.status}")

    # -- check, graph, scale --------------------------------------------------------------------

    def do_check(self, args):
        from .compiler import compile_notebook

        notebook = self.notebook(args)
        pipeline = compile_notebook(notebook)
        if not pipeline.diagnostics:
            print(f"{notebook.name}: no problems ({len(pipeline.steps)} steps)")
            return
        self._show_diagnostics(notebook, pipeline)

    @staticmethod
    def _show_diagnostics(notebook, pipeline):
        lines = [d.format(notebook.name) for d in pipeline.diagnostics]
        items = "".join(f"<li><code>{e(d.severity)}[{e(d.code)}]</code> {e(d.location())}: {e(d.message)}"
                        + (f"<br><i>hint: {e(d.hint)}</i>" if d.hint else "") + "</li>" for d in pipeline.diagnostics)
        display({"text/plain": "\n".join(lines), "text/html": f"<b>{e(notebook.name)}</b><ul>{items}</ul>"}, raw=True)

    def do_graph(self, args):
        from .compiler import compile_notebook
        from .compiler.graph import render
        from .graph_svg import pipeline_svg

        notebook = self.notebook(args)
        pipeline = compile_notebook(notebook)
        statuses = {}
        if RUNS and Path(RUNS[-1].notebook) == notebook.resolve():
            statuses = {n: s.status for n, s in RUNS[-1].model.steps.items()}
        display({"text/plain": render(pipeline, "text"), "image/svg+xml": pipeline_svg(pipeline, statuses)}, raw=True)

    def do_scale(self, args):
        if args.n < 1:
            raise UsageError("%nbscale scale: N must be at least 1")
        said = scale_warm_cluster(self.notebook(args), args.n)
        if said:
            print(said)
            return
        DEFAULTS["workers"] = args.n
        print(f"the next runs from this kernel start their cluster with {args.n} workers (each run starts its "
              "own LocalCluster; a running run keeps its size; --scheduler runs use that cluster's workers)")

    # -- runs, load, suggest ----------------------------------------------------------------------

    def do_runs(self, args):
        from .run_history import runs_bundle

        display(runs_bundle(self.notebook(args), args.limit), raw=True)

    def do_load(self, args):
        from .run_history import load_step_values

        values, notes = load_step_values(self.notebook(args), args.step, args.run, args.store)
        self.shell.user_ns.update(values)
        print(f"loaded {', '.join(sorted(values)) or 'nothing'} from step {args.step!r}")
        for note in notes:
            print(f"note: {note}")

    def do_suggest(self, args):
        from .compiler.graph import render
        from .compiler.suggest import suggest
        from .graph_svg import pipeline_svg
        from .kernels.cell_durations import last_run_durations
        from .suggest_commands import describe

        notebook = self.notebook(args)
        proposal = suggest(notebook, last_run_durations(notebook))
        text = describe(proposal, render(proposal.pipeline, "text"))
        text += f"\n(nbscale suggest {notebook.name} --write writes these tags)"
        display({"text/plain": text, "text/html": f"<pre>{e(text)}</pre>{pipeline_svg(proposal.pipeline)}"}, raw=True)


def widgets_available() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def scale_warm_cluster(notebook: Path, n: int) -> str | None:
    """Scale the live warm cluster the notebook's runs use (`nbscale cluster start`: its folder's, or
    a folder's above it); None when there is none."""
    from .kernels import warm_cluster

    found = warm_cluster.for_notebook(notebook)
    if not found.live:
        return None
    facts = warm_cluster.scale(notebook.parent, n)
    return f"scaled the warm cluster of {found.folder}, which the runs share, to {facts.get('workers')} workers"


def load_ipython_extension(ip) -> None:
    ip.register_magics(NbscaleMagics(ip))
