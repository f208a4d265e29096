"""The `kfp` target of `nbscale compile`: project options, the YAML (and the DSL module when
asked for) written atomically, and a note when the default image would lack what steps import.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from ...diagnostics import Diagnostic
from ...notebook import read_notebook
from ...output_files import written_to
from ...tags import kale_gpu_kind
from .. import Target, TargetError
from .dsl import KfpModule, code_credential_warnings, generate, refuse_nothing_to_run, withheld_warnings
from .files import file_handoff_warnings
from .image import missing_packages_note
from .options import OPTION_NAMES, load_options
from .yaml import write_yaml


class KfpTarget(Target):
    name = "kfp"
    description = "Kubeflow Pipelines (v2) YAML"
    options = ("emit_python", *OPTION_NAMES)

    def write(self, pipeline, path, *, notebook, emit_python=None, **overrides) -> list[str]:
        """The YAML at `path` and, with `emit_python`, the DSL module there. `overrides`: KFP
        options given on the command line; the rest come from the project (`load_options`)."""
        refuse_nothing_to_run(pipeline, notebook)  # before options and the SDK: there is nothing to write
        options = load_options(notebook, overrides)
        require_sdk()
        try:
            module = generate(pipeline, options)
            _write_files(module, Path(path), Path(emit_python) if emit_python else None)
        except ValueError as exc:  # the kfp SDK refused something in the generated module
            raise TargetError(f"kfp could not compile {notebook}: {exc}") from None
        note = missing_packages_note(pipeline, options)
        warnings = [w.format(Path(notebook).name, hint=False)
                    for w in withheld_warnings(pipeline, module) + code_credential_warnings(pipeline)
                    + file_handoff_warnings(pipeline) + accelerator_warnings(pipeline, notebook, options)]
        return warnings + ([note] if note else [])


def accelerator_warnings(pipeline, notebook, options) -> list[Diagnostic]:
    """A `kfp-accelerator` warning at each cell of a step with GPUs whose Kale tag asks for another
    kind of GPU than the `accelerator` option's (`limit:amd.com/gpu:1`): every step gets the same kind."""
    cells = {cell: step for step in pipeline.steps if (step.resources or {}).get("gpu") for cell in step.cells}
    if not cells:
        return []
    where = options.origin.get("accelerator")
    where = f"set in {where}" if where else "its default"
    found = []
    for cell in read_notebook(notebook).cells:
        step = cells.get(cell.index)
        for tag in cell.tags if step is not None else ():
            kind = kale_gpu_kind(tag)
            if kind is not None and kind != options.accelerator:
                found.append(Diagnostic(
                    "kfp-accelerator",
                    f"'{tag}' asks for {kind}, but step '{step.name}' gets {int(step.resources['gpu'])} "
                    f"{options.accelerator}: the kfp accelerator option ({where}), the one kind of GPU of every step",
                    cell=cell.index,
                    hint=f"if the cluster's GPUs are {kind}, set accelerator = \"{kind}\" in [tool.nbscale.kfp] of "
                         "pyproject.toml or in the notebook's metadata nbscale.kfp"))
    return found


def require_sdk() -> None:
    try:
        import kfp  # noqa: F401
    except ImportError:
        raise TargetError("the kfp target needs the kfp SDK: pip install 'nbscale[kfp]'") from None


def _write_files(module: KfpModule, yaml_path: Path, python_path: Path | None) -> None:
    """YAML (and DSL module) written to temporary files first, then put in their places
    (`output_files.written_to`); the module keeps its .py suffix: the kfp SDK imports it from the file."""
    with written_to(yaml_path) as yaml_tmp, \
            (written_to(python_path, ".py") if python_path else contextlib.nullcontext()) as py_tmp:
        write_yaml(module, yaml_tmp, python_path=py_tmp)
