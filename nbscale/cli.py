"""The `nbscale` command line."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from nbscale.kfp_commands import kfp_options, refuse_kfp_flags, target_options
from nbscale.reporting import (
    EXIT_BAD_INPUT,
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_OK,
    error_counts,
    fail,
    literal,
    print_diagnostics,
    reporting_errors,
)


class _Commands(click.Group):
    """The `nbscale` group. The commands of the other modules (run, kfp, cache, ...) are added when
    a command not defined here is asked for, or the list of all (`--help`): `nbscale check` does
    not import them."""

    _registered = False

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        if command is None and not self._registered:
            self._register()
            command = super().get_command(ctx, name)
        return command

    def list_commands(self, ctx):
        self._register()
        return super().list_commands(ctx)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # Ctrl-C before a command took it over (while loading): 130, as shells say
            click.echo(err=True)  # ends the terminal's ^C line
            raise click.exceptions.Exit(EXIT_CANCELLED) from None

    def _register(self):
        if not self._registered:
            self._registered = True
            for register in (_register_run_commands, _register_diff_command, _register_drift_commands,
                             _register_lineage_command, _register_cost_commands, _register_sweep_command):
                register()


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nbscale")
def main():
    """nbscale: tagged notebook cells as pipeline steps."""


def console_main():
    """The `nbscale` console script: the command, then an exit without the interpreter's teardown
    (`process_exit`)."""
    try:
        main()  # standalone: it ends with SystemExit, also on errors it reports
    except SystemExit as done:
        from nbscale.process_exit import exit_now

        exit_now(done.code)


def _compile(notebook, cached=False):
    """The notebook's IR (diagnostics included), or exit 2 when the file is not a usable notebook.
    `cached`: reuse the compile of an unchanged notebook kept in its state folder (`check`)."""
    from nbscale.compiler import compile_notebook

    with reporting_errors():
        if cached:  # in the user's cache folder: a check writes nothing beside the notebook
            from nbscale.compiler.compile_cache import compile_cached, default_folder

            return compile_cached(notebook, default_folder())
        return compile_notebook(notebook)


@main.command()
@click.argument("notebook", type=click.Path(dir_okay=False))
def check(notebook):
    """Report the notebook's diagnostics; exit 1 when there are errors."""
    pipeline = _compile(notebook, cached=True)
    print_diagnostics(pipeline, notebook, err=False)
    errors, warnings = error_counts(pipeline)
    steps = len(pipeline.steps)
    click.echo(literal(f"{notebook}: {steps} step{'s' * (steps != 1)}, {errors} error(s), {warnings} warning(s)"))
    sys.exit(EXIT_FAILED if errors else EXIT_OK)


class _TargetChoice(click.Choice):
    """--target's choices, read from the target registry when first needed: not at import, so
    `nbscale --help` does not load the compiler and the plug-ins' entry points."""

    def __init__(self):
        super().__init__(())

    @property
    def choices(self):
        from nbscale.compiler.targets import targets

        return tuple(targets.names())

    @choices.setter
    def choices(self, value):
        pass  # click.Choice.__init__ sets it; the registry is the list


@main.command(name="compile")
@click.argument("notebook", type=click.Path(dir_okay=False))
@click.option("--target", type=_TargetChoice(), default="ir", show_default=True,
              help="What to compile to: ir, the pipeline IR (JSON); kfp, Kubeflow Pipelines YAML; "
                   "or a plug-in's target.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here instead of stdout ('-': stdout).")
@click.option("--emit-python", type=click.Path(dir_okay=False), help="kfp: also write the DSL module here.")
@kfp_options
def compile_(notebook, target, output, emit_python, **kfp_flags):
    """Compile NOTEBOOK to the pipeline IR (JSON), to KFP v2 YAML (--target kfp), or to a plug-in's target."""
    import tempfile

    if output == "-":  # (as `-o -` means everywhere: stdout, not a file named "-")
        output = None

    from nbscale.compiler.targets import get_target

    with reporting_errors():  # a target that fails to load
        chosen = get_target(target)
    options = target_options(emit_python, **kfp_flags)
    refuse_kfp_flags(chosen, options)
    _refuse_writing_over(notebook, output, emit_python)
    pipeline = _compile(notebook)
    if pipeline.has_errors:
        print_diagnostics(pipeline, notebook)
        fail(literal(f"error: {notebook} has errors; nothing written"), EXIT_FAILED)
    with tempfile.TemporaryDirectory(prefix="nbscale-compile-") as tmp:
        path = Path(output) if output else Path(tmp) / f"pipeline.{target}"
        try:
            with reporting_errors():  # a bad project setting, a missing SDK
                notes = chosen.write(pipeline, path, notebook=notebook, **options)
        except OSError as exc:
            fail(f"error: cannot write {exc.filename or output}: {exc.strerror or exc}", EXIT_BAD_INPUT)
        if output:
            click.echo(literal(f"wrote {output}" + (f" and {emit_python}" if emit_python else "")), err=True)
        else:
            click.echo(path.read_text(encoding="utf-8"), nl=False)
    for note in notes:
        click.echo(literal(f"note: {note}"), err=True)


def _refuse_writing_over(notebook, output, emit_python) -> None:
    """A typo must not cost the notebook: no output may be the notebook, nor both outputs one file;
    and an empty name is no file (`--emit-python ""` wrote nothing, and said nothing)."""
    for flag, path in (("-o", output), ("--emit-python", emit_python)):
        if path is not None and not path.strip():
            fail(f"error: {flag} needs a file name, got {path!r}; nothing written", EXIT_BAD_INPUT)
        if path and same_file(path, notebook):
            fail(literal(f"error: {flag} {path} is the notebook itself; nothing written"), EXIT_BAD_INPUT)
    if output and emit_python and same_file(output, emit_python):
        fail(literal(f"error: -o and --emit-python are both {output}; nothing written"), EXIT_BAD_INPUT)


def same_file(a, b) -> bool:
    """One file, by path (links resolved) or by inode (a hard link). realpath, not Path.resolve():
    a symlink loop is no file to write over, and must not raise RuntimeError."""
    try:
        return os.path.realpath(a) == os.path.realpath(b) or os.path.samefile(a, b)
    except OSError:  # (one of them does not exist yet, or is a symlink loop)
        return False


@main.command()
@click.argument("notebook", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "mermaid", "dot"]), default="text",
              show_default=True)
@click.option("--why", nargs=2, metavar="UP DOWN", help="Say why step DOWN comes after step UP, name by name.")
def graph(notebook, fmt, why):
    """Print the step DAG of NOTEBOOK."""
    from nbscale.compiler.graph import render

    if why:
        from nbscale.compiler.why import why as reasons

        if why[0] == why[1]:  # a step does not come after itself: there is nothing to explain
            fail(literal(f"error: --why needs two different steps, not {why[0]} twice"), EXIT_BAD_INPUT)

        with reporting_errors():
            click.echo("\n".join(literal(line) for line in reasons(notebook, *why)))  # (file names: any text)
        return

    pipeline = _compile(notebook)
    if pipeline.has_errors:
        print_diagnostics(pipeline, notebook)
    click.echo(render(pipeline, fmt), nl=False)
    sys.exit(EXIT_FAILED if pipeline.has_errors else EXIT_OK)


def _register_run_commands():
    from nbscale.cache_commands import register as register_cache
    from nbscale.cluster_commands import register as register_cluster
    from nbscale.kfp_commands import register as register_kfp
    from nbscale.run_commands import register
    from nbscale.suggest_commands import register as register_suggest

    register(main)
    register_suggest(main)
    register_kfp(main)
    register_cache(main)
    register_cluster(main)


def _register_diff_command():
    from nbscale.diff_commands import register as register_diff

    register_diff(main)


def _register_drift_commands():
    from nbscale.drift_commands import register as register_drift

    register_drift(main)


def _register_lineage_command():
    from nbscale.lineage_commands import register as register_lineage

    register_lineage(main)


def _register_cost_commands():
    from nbscale.cost_commands import register as register_cost

    register_cost(main)


def _register_sweep_command():
    from nbscale.sweep_commands import register as register_sweep

    register_sweep(main)


if __name__ == "__main__":
    main()
