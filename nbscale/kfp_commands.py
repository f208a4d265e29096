"""Kubeflow Pipelines from the command line: the kfp flags of `nbscale compile`, and `nbscale submit`.

Project defaults (base image, packages to install, pipeline name, experiment, host) come from
pyproject.toml `[tool.nbscale.kfp]` and the notebook's metadata `nbscale.kfp`; a flag overrides
them only when it is given. `compile --target kfp` hands the flags to the kfp target
(`nbscale.compiler.targets.kfp.KfpTarget`) as options. Credentials (a bearer token, session
cookies) come from flags or the environment and go only into the HTTP requests to the KFP
endpoint — never into the YAML.

The kfp SDK is imported inside the commands: `nbscale check` and `nbscale --help` stay fast.
"""

from __future__ import annotations

import click

from .reporting import EXIT_BAD_INPUT, EXIT_FAILED, fail, literal, print_diagnostics, reporting_errors

FLAGS = {"emit_python": "--emit-python", "base_image": "--base-image", "packages_to_install": "--package",
         "pipeline_name": "--pipeline-name"}  # target option → the flag of `compile` that sets it


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


def target_options(emit_python=None, **flags) -> dict:
    """The target options `compile`'s kfp flags give: only the flags that were given."""
    given = {"emit_python": emit_python, **_overrides(**flags)}
    return {name: value for name, value in given.items() if value is not None}  # ("": refused, not ignored)


def refuse_kfp_flags(target, options: dict) -> None:
    """A kfp flag with a target that does not take it (`--target ir`): say so rather than ignore it."""
    refused = [FLAGS[name] for name in options if name not in target.options]
    if refused:
        fail(f"error: {', '.join(refused)} only applies to --target kfp", EXIT_BAD_INPUT)


def _overrides(base_image=None, packages=(), pipeline_name=None, **more) -> dict:
    return {"base_image": base_image, "packages_to_install": list(packages) or None,
            "pipeline_name": pipeline_name, **more}


def _prepare(notebook: str, overrides: dict):
    """The error-free IR and the KFP options, or exit with the reason."""
    from nbscale.compiler import NbscaleCompileError, compile_notebook
    from nbscale.compiler.targets.kfp import load_options
    from nbscale.compiler.targets.kfp.target import require_sdk

    try:
        pipeline = compile_notebook(notebook)
        if pipeline.has_errors:
            print_diagnostics(pipeline, notebook)
            fail(literal(f"error: {notebook} has errors; nothing written"), EXIT_FAILED)
        options = load_options(notebook, overrides)
        require_sdk()
    except NbscaleCompileError as exc:  # not a notebook, a bad project setting, no kfp SDK
        fail(f"error: {exc}", EXIT_BAD_INPUT)
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
    from nbscale.kernels.steplineage import public_url

    pipeline, options = _prepare(notebook, _overrides(**flags, experiment=experiment, host=host))
    if not options.host:
        fail("error: no KFP endpoint: give --host URL (or NBSCALE_KFP_HOST, or host in "
             "[tool.nbscale.kfp])", EXIT_BAD_INPUT)
    _refuse_notebook_host(notebook, host, options.host, token or cookies)
    with reporting_errors():  # what the generator refuses (a notebook with nothing to run)
        try:
            given = params.load_file(parameters_file) if parameters_file else {}
            given.update(params.parse_assignments(assignments))
            result = submit_pipeline(pipeline, options, given, run_name=run_name, token=token, cookies=cookies,
                                     namespace=namespace)
        except ParameterError as exc:
            fail(f"error: {exc}", EXIT_BAD_INPUT)
        except EndpointError as exc:
            fail(f"error: {public_url(options.host)}: {exc}", EXIT_FAILED)
    # (what the server answered: any text)
    click.echo(literal(f"pipeline {result['pipeline']!r} version {result['version_name']!r} "
                       f"({'uploaded' if result['uploaded'] else 'unchanged'}); experiment {options.experiment!r}"))
    click.echo(literal(f"run {result['run_id']}: {result['url']}"))
    _note_missing_packages(pipeline, options)


def _refuse_notebook_host(notebook, given_host, host, credentials) -> None:
    """Credentials never follow notebook text: a host that only the notebook's metadata names (a
    downloaded notebook may name anyone's server) must be confirmed with --host."""
    from nbscale.compiler.targets.kfp import metadata_host

    if credentials and not given_host and host == metadata_host(notebook):
        fail(f"error: the notebook's metadata names the KFP endpoint {host}; credentials go only to an "
             f"endpoint you name: give --host {host} (or NBSCALE_KFP_HOST, or host in [tool.nbscale.kfp])",
             EXIT_BAD_INPUT)


def _note_missing_packages(pipeline, options) -> None:
    from nbscale.compiler.targets.kfp import missing_packages_note

    note = missing_packages_note(pipeline, options)
    if note:
        click.echo(literal(f"note: {note}"), err=True)


def register(group):
    group.add_command(submit)
