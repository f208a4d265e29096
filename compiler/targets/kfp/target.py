"""The `kfp` target of `nbscale compile`: project options, the YAML (and the DSL module when
asked for) written atomically, and a note when the default image would lack what steps import.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from ...output_files import written_to
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
                    + file_handoff_warnings(pipeline)]
        return warnings + ([note] if note else [])


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
