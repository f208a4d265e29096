"""Kubeflow Pipelines from the command line: `nbscale compile --target kfp` and `nbscale submit`.

Project defaults (base image, packages to install, pipeline name, experiment, host) come from
pyproject.toml `[tool.nbscale.kfp]` and the notebook's metadata `nbscale.kfp`; a flag overrides
them only when it is given. Credentials (a bearer token, session cookies) come from flags or the
environment and go only into the HTTP requests to the KFP endpoint — never into the YAML.

The kfp SDK is imported inside the commands: `nbscale check` and `nbscale --help` stay fast.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click

EXIT_ERRORS = 1  # the notebook has errors, or the endpoint refused
EXIT_BAD_INPUT = 2  # bad arguments, settings or files; kfp missing


def kfp_options(command):
    """The options `compile --target kfp` and `submit` share (each overrides a project default)."""
    for decorator in reversed([
        click.option("--base-image", metavar="IMAGE", help="Image of every step (default: project "
                     "setting, else python:3.11-slim); an image: tag on a step still wins."),
        click.option("--package", "packages", multiple=True, metavar="REQ",
                     help="pip requirement installed in each step (repeatable); replaces the project "
                          "setting, whose default is nbscale[run] pinned to this version."),
        click.option("--pipeline-name", metavar="NAME", help="Pipeline name (default: project setting, "
                     "notebook metadata nbscale.name, else the notebook's stem)."),
    ]):
        command = decorator(command)
    return command


def refuse_kfp_flags(emit_python=None, **flags) -> None:
    """`compile --target ir` with a kfp-only option: say so rather than ignore it."""
    names = {"base_image": "--base-image", "packages": "--package", "pipeline_name": "--pipeline-name"}
    given = ["--emit-python"] * bool(emit_python) + [names[k] for k, v in flags.items() if v]
    if given:
        _fail(f"error: {', '.join(given)} only applies to --target kfp", EXIT_BAD_INPUT)


def _overrides(base_image=None, packages=(), pipeline_name=None, **more) -> dict:
    return {"base_image": base_image, "packages_to_install": list(packages) or None,
            "pipeline_name": pipeline_name, **more}


def compile_kfp(notebook: str, output: str | None, emit_python: str | None, **flags) -> None:
    """`nbscale compile NB --target kfp [-o pipeline.yaml] [--emit-python dsl.py]`."""
    pipeline, options = _prepare(notebook, _overrides(**flags))
    from nbscale.compiler.targets.kfp import generate, write_yaml

    with tempfile.TemporaryDirectory(prefix="nbscale-kfp-") as tmp:
        target = Path(output) if output else Path(tmp) / "pipeline.yaml"
        try:
            module = generate(pipeline, options)
            _write_files(module, target, Path(emit_python) if emit_python else None, write_yaml)
        except OSError as exc:
            _fail(f"error: cannot write {exc.filename or output}: {exc.strerror or exc}", EXIT_BAD_INPUT)
        except ValueError as exc:  # the kfp SDK refused something in the generated module
            _fail(f"error: kfp could not compile {notebook}: {exc}", EXIT_BAD_INPUT)
        if output:
            click.echo(f"wrote {output}" + (f" and {emit_python}" if emit_python else ""), err=True)
        else:
            click.echo(target.read_text(encoding="utf-8"), nl=False)
        _note_missing_packages(pipeline, options)


def _note_missing_packages(pipeline, options) -> None:
    """A hint when the defaults would give steps an image without the libraries they import."""
    from nbscale.compiler.targets.kfp import DEFAULT_BASE_IMAGE, default_packages, third_party_imports

    if options.base_image != DEFAULT_BASE_IMAGE or options.packages_to_install != default_packages():
        return  # the project chose its image or its packages
    modules = third_party_imports(pipeline)
    if modules:
        click.echo(f"note: the steps import {', '.join(modules)}, which {DEFAULT_BASE_IMAGE} with only "
                   f"{default_packages()[0]} lacks: set base_image or packages_to_install "
                   "(docs/kfp.md, 'nbscale inside the container')", err=True)


def _write_files(module, yaml_path: Path, python_path: Path | None, write_yaml) -> None:
    """YAML (and DSL module) written next to their targets first, then renamed into place."""
    yaml_tmp = yaml_path.with_name(f".{yaml_path.name}.tmp")
    py_tmp = python_path.with_name(f".{python_path.stem}-tmp.py") if python_path else None
    try:
        write_yaml(module, yaml_tmp, python_path=py_tmp)
        yaml_tmp.replace(yaml_path)
        if py_tmp is not None:
            py_tmp.replace(python_path)
    finally:
        yaml_tmp.unlink(missing_ok=True)
        if py_tmp is not None:
            py_tmp.unlink(missing_ok=True)


def _prepare(notebook: str, overrides: dict):
    """The error-free IR and the KFP options, or exit with the reason."""
    from nbscale.compiler import NotebookReadError, compile_notebook
    from nbscale.compiler.targets.kfp import OptionsError, load_options

    try:
        pipeline = compile_notebook(notebook)
    except NotebookReadError as exc:
        _fail(f"error: {exc}", EXIT_BAD_INPUT)
    if pipeline.has_errors:
        for diag in pipeline.diagnostics:
            click.echo(f"{diag.location(notebook)}: {diag.severity}[{diag.code}]: {diag.message}", err=True)
        _fail(f"error: {notebook} has errors; nothing written", EXIT_ERRORS)
    try:
        options = load_options(notebook, overrides)
    except OptionsError as exc:
        _fail(f"error: {exc}", EXIT_BAD_INPUT)
    try:
        import kfp  # noqa: F401
    except ImportError:
        _fail("error: the kfp target needs the kfp SDK: pip install 'nbscale[kfp]'", EXIT_BAD_INPUT)
    return pipeline, options


# ---------------------------------------------------------------------------------------------
# submit


@click.command()
@click.argument("notebook", type=click.Path(dir_okay=False))
@click.option("--host", envvar="NBSCALE_KFP_HOST", metavar="URL",
              help="KFP API endpoint, e.g. http://localhost:8080 (env NBSCALE_KFP_HOST; default: project setting).")
@click.option("--experiment", metavar="NAME", help="Experiment (default: project setting, else Default).")
@click.option("--run-name", metavar="NAME", help="Run name (default: PIPELINE YYYY-MM-DD HH:MM:SS).")
@click.option("-p", "--parameter", "assignments", multiple=True, metavar="NAME=VALUE",
              help="Set a pipeline parameter (typed like the parameters cell's value).")
@click.option("-f", "--parameters-file", type=click.Path(exists=True, dir_okay=False),
              help="YAML file of NAME: VALUE parameters.")
@click.option("--namespace", envvar="NBSCALE_KFP_NAMESPACE", help="Kubernetes namespace (multi-user KFP).")
@click.option("--token", envvar="NBSCALE_KFP_TOKEN", metavar="TOKEN",
              help="Bearer token for the endpoint (env NBSCALE_KFP_TOKEN). Sent only in request headers.")
@click.option("--cookies", envvar="NBSCALE_KFP_COOKIES", metavar="COOKIES",
              help="Cookie header for the endpoint, e.g. a session cookie (env NBSCALE_KFP_COOKIES).")
@kfp_options
def submit(notebook, host, experiment, run_name, assignments, parameters_file, namespace, token, cookies,
           **flags):
    """Compile NOTEBOOK for Kubeflow Pipelines, upload it (or a new version) and start a run."""
    from nbscale.kernels import params
    from nbscale.kernels.errors import ParameterError
    from nbscale.kernels.kfp_submit import EndpointError, submit_pipeline

    pipeline, options = _prepare(notebook, _overrides(**flags, experiment=experiment, host=host))
    if not options.host:
        _fail("error: no KFP endpoint: give --host URL (or NBSCALE_KFP_HOST, or host in "
              "[tool.nbscale.kfp])", EXIT_BAD_INPUT)
    try:
        given = params.load_file(parameters_file) if parameters_file else {}
        given.update(params.parse_assignments(assignments))
        result = submit_pipeline(pipeline, options, given, run_name=run_name, token=token, cookies=cookies,
                                 namespace=namespace)
    except ParameterError as exc:
        _fail(f"error: {exc}", EXIT_BAD_INPUT)
    except EndpointError as exc:
        _fail(f"error: {options.host}: {exc}", EXIT_ERRORS)
    click.echo(f"pipeline {result['pipeline']!r} version {result['version_name']!r} "
               f"({'uploaded' if result['uploaded'] else 'unchanged'}); experiment {options.experiment!r}")
    click.echo(f"run {result['run_id']}: {result['url']}")
    _note_missing_packages(pipeline, options)


def register(group):
    group.add_command(submit)


def _fail(message, code):
    click.echo(message, err=True)
    sys.exit(code)
