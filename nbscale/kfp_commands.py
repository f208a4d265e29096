"""Kubeflow Pipelines from the command line: `nbscale compile --target kfp` and `nbscale submit`.

Project defaults (base image, packages to install, pipeline name, experiment, host) come from
pyproject.toml `[tool.nbscale.kfp]` and the notebook's metadata `nbscale.kfp`; a flag overrides
them only when it is given. Credentials (a bearer token, session cookies) come from flags or the
environment and go only into the HTTP requests to the KFP endpoint — never into the YAML.

The kfp SDK is imported inside the commands: `nbscale check` and `nbscale --help` stay fast.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
import tempfile
import time
import warnings
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
    pipeline, options = _prepare(notebook, _overrides(**flags, experiment=experiment, host=host))
    if not options.host:
        _fail("error: no KFP endpoint: give --host URL (or NBSCALE_KFP_HOST, or host in "
              "[tool.nbscale.kfp])", EXIT_BAD_INPUT)
    from nbscale.compiler.targets.kfp import generate, write_yaml

    module = generate(pipeline, options)
    arguments = _arguments(pipeline, module.parameter_types, assignments, parameters_file)
    with tempfile.TemporaryDirectory(prefix="nbscale-kfp-") as tmp:
        yaml_path = write_yaml(module, Path(tmp) / "pipeline.yaml")
        endpoint = _Endpoint(options.host, token=token, cookies=cookies, namespace=namespace)
        try:
            endpoint.check()
            result = endpoint.submit(yaml_path, options.pipeline_name or pipeline.name, options.experiment,
                                     run_name or f"{options.pipeline_name or pipeline.name} "
                                                 f"{time.strftime('%Y-%m-%d %H:%M:%S')}",
                                     arguments, description=f"{pipeline.notebook}, compiled by nbscale")
        except EndpointError as exc:
            _fail(f"error: {options.host}: {exc}", EXIT_ERRORS)
    click.echo(f"pipeline {result['pipeline']!r} version {result['version_name']!r} "
               f"({'uploaded' if result['uploaded'] else 'unchanged'}); experiment {options.experiment!r}")
    click.echo(f"run {result['run_id']}: {result['url']}")
    _note_missing_packages(pipeline, options)


def _arguments(pipeline, wire_types: dict, assignments, parameters_file) -> dict:
    """The given parameters, typed by the notebook and put in the form the YAML takes."""
    from nbscale.compiler.targets.kfp import kfp_argument
    from nbscale.kernels import params
    from nbscale.kernels.errors import ParameterError

    try:
        given = params.load_file(parameters_file) if parameters_file else {}
        given.update(params.parse_assignments(assignments))
        values = params.resolve(pipeline, given)
    except ParameterError as exc:
        _fail(f"error: {exc}", EXIT_BAD_INPUT)
    return {name: kfp_argument(wire_types[name], values[name]) for name in given}


class EndpointError(Exception):
    """The KFP endpoint could not be reached or refused a call: one line, for the user."""


class _Endpoint:
    """kfp.Client, plus a quick health check that fails in one line instead of kfp's retries."""

    HEALTHZ = "/apis/v2beta1/healthz"

    def __init__(self, host: str, *, token=None, cookies=None, namespace=None):
        self.host = host.rstrip("/")
        self.token, self.cookies, self.namespace = token, cookies, namespace

    def _headers(self) -> dict:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.cookies:
            headers["Cookie"] = self.cookies
        return headers

    def check(self) -> None:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(self.host + self.HEALTHZ, headers=self._headers())
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            raise EndpointError(f"health check answered {exc.code} {exc.reason}{_body_message(exc.read())}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise EndpointError(f"cannot reach the KFP API ({reason})") from None

    def submit(self, yaml_path: Path, name: str, experiment: str, run_name: str, arguments: dict, *,
               description: str) -> dict:
        try:
            with _quiet():
                return self._submit(yaml_path, name, experiment, run_name, arguments, description)
        except EndpointError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever kfp raises becomes one line
            raise EndpointError(_describe(exc)) from None

    def _submit(self, yaml_path, name, experiment, run_name, arguments, description) -> dict:
        import kfp

        client = kfp.Client(host=self.host, existing_token=self.token, cookies=self.cookies,
                            namespace=self.namespace or "kubeflow")
        digest = hashlib.sha256(yaml_path.read_bytes()).hexdigest()
        version_name = f"{name} {digest[:12]}"  # same YAML, same version: submitting again re-uses it
        pipeline_id = client.get_pipeline_id(name)
        uploaded = True
        if pipeline_id is None:
            pipeline = client.upload_pipeline(str(yaml_path), pipeline_name=name, description=description,
                                              namespace=self.namespace)
            pipeline_id = pipeline.pipeline_id
            version_id, version_name = _latest_version(client, pipeline_id)
        else:
            version_id = _version_named(client, pipeline_id, version_name)
            if version_id is None:
                version = client.upload_pipeline_version(str(yaml_path), version_name, pipeline_id=pipeline_id,
                                                         description=description)
                version_id = version.pipeline_version_id
            else:
                uploaded = False
        exp = client.create_experiment(experiment, namespace=self.namespace)
        run = client.run_pipeline(exp.experiment_id, run_name, params=arguments, pipeline_id=pipeline_id,
                                  version_id=version_id)
        ui = os.environ.get("KF_PIPELINES_UI_ENDPOINT") or self.host
        return {"pipeline": name, "pipeline_id": pipeline_id, "version_id": version_id,
                "version_name": version_name, "uploaded": uploaded, "experiment_id": exp.experiment_id,
                "run_id": run.run_id, "url": f"{ui.rstrip('/')}/#/runs/details/{run.run_id}"}


def _filter(name: str) -> str:
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]})


def _version_named(client, pipeline_id: str, name: str) -> str | None:
    response = client.list_pipeline_versions(pipeline_id, page_size=1, filter=_filter(name))
    versions = response.pipeline_versions or []
    return versions[0].pipeline_version_id if versions else None


def _latest_version(client, pipeline_id: str) -> tuple[str | None, str]:
    response = client.list_pipeline_versions(pipeline_id, page_size=1, sort_by="created_at desc")
    versions = response.pipeline_versions or []
    if not versions:
        raise EndpointError(f"pipeline {pipeline_id} was uploaded but has no version")
    return versions[0].pipeline_version_id, versions[0].display_name


@contextlib.contextmanager
def _quiet():
    """kfp.Client prints links and warns about versions; nbscale prints its own summary."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _describe(exc: Exception) -> str:
    status = getattr(exc, "status", None)
    if status is not None and hasattr(exc, "reason"):  # kfp_server_api.ApiException
        return f"{status} {exc.reason}{_body_message(getattr(exc, 'body', None))}"
    reason = getattr(exc, "reason", None)
    text = str(reason or exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _body_message(body) -> str:
    if not body:
        return ""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        data = json.loads(body)
        message = data.get("message") or data.get("error") if isinstance(data, dict) else None
    except ValueError:
        message = body
    message = " ".join(str(message or "").split())
    return f": {message[:300]}" if message else ""


def register(group):
    group.add_command(submit)


def _fail(message, code):
    click.echo(message, err=True)
    sys.exit(code)
