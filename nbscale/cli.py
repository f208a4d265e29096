"""The `nbscale` command line."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from nbscale.kfp_commands import compile_kfp, kfp_options, refuse_kfp_flags

EXIT_ERRORS = 1  # the notebook has errors (diagnostics)
EXIT_BAD_INPUT = 2  # not a usable notebook, or bad arguments


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nbscale")
def main():
    """nbscale: tagged notebook cells as pipeline steps."""


def _compile(notebook):
    from nbscale.compiler import NotebookReadError, compile_notebook

    try:
        return compile_notebook(notebook)
    except NotebookReadError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)


def _print_diagnostics(pipeline, path, stream_err=True):
    for diag in pipeline.diagnostics:
        where = diag.location(path)
        click.echo(f"{where}: {diag.severity}[{diag.code}]: {diag.message}", err=stream_err)
        if diag.hint:
            click.echo(f"    hint: {diag.hint}", err=stream_err)


def _counts(pipeline):
    errors = sum(d.severity == "error" for d in pipeline.diagnostics)
    return errors, len(pipeline.diagnostics) - errors


@main.command()
@click.argument("notebook", type=click.Path(dir_okay=False))
def check(notebook):
    """Report the notebook's diagnostics; exit 1 when there are errors."""
    pipeline = _compile(notebook)
    _print_diagnostics(pipeline, notebook, stream_err=False)
    errors, warnings = _counts(pipeline)
    steps = len(pipeline.steps)
    click.echo(f"{notebook}: {steps} step{'s' * (steps != 1)}, {errors} error(s), {warnings} warning(s)")
    sys.exit(EXIT_ERRORS if errors else 0)


@main.command(name="compile")
@click.argument("notebook", type=click.Path(dir_okay=False))
@click.option("--target", type=click.Choice(["ir", "kfp"]), default="ir", show_default=True,
              help="What to compile to: the pipeline IR (JSON) or Kubeflow Pipelines YAML.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
@click.option("--emit-python", type=click.Path(dir_okay=False), help="kfp: also write the DSL module here.")
@kfp_options
def compile_(notebook, target, output, emit_python, **kfp_flags):
    """Compile NOTEBOOK to the pipeline IR (JSON) or to KFP v2 YAML (--target kfp)."""
    if target == "kfp":
        return compile_kfp(notebook, output, emit_python, **kfp_flags)
    refuse_kfp_flags(emit_python, **kfp_flags)
    pipeline = _compile(notebook)
    if pipeline.has_errors:
        _print_diagnostics(pipeline, notebook)
        click.echo(f"error: {notebook} has errors; nothing written", err=True)
        sys.exit(EXIT_ERRORS)
    text = pipeline.dumps()
    if output:
        try:
            _write_atomically(Path(output), text)
        except OSError as exc:
            click.echo(f"error: cannot write {output}: {exc.strerror or exc}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


@main.command()
@click.argument("notebook", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "mermaid", "dot"]), default="text",
              show_default=True)
def graph(notebook, fmt):
    """Print the step DAG of NOTEBOOK."""
    from nbscale.compiler.graph import render

    pipeline = _compile(notebook)
    if pipeline.has_errors:
        _print_diagnostics(pipeline, notebook)
    click.echo(render(pipeline, fmt), nl=False)
    sys.exit(EXIT_ERRORS if pipeline.has_errors else 0)


def _write_atomically(path: Path, text: str):
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _register_run_commands():
    from nbscale.kfp_commands import register as register_kfp
    from nbscale.run_commands import register

    register(main)
    register_kfp(main)


_register_run_commands()

if __name__ == "__main__":
    main()
