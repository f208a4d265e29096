"""Pipeline IR → Kubeflow Pipelines (KFP v2): a readable DSL module, and YAML compiled from it.

- `options`: KfpOptions and where they come from (defaults, pyproject.toml, notebook metadata,
  flags): `load_options`, `OptionsError`.
- `dsl`: `generate(pipeline, options)` writes the DSL module: one lightweight component per step
  calling `nbscale.kernels.kfp_component.run_kfp_step`, and a pipeline function wiring them.
  `literals` writes values into it as Python literals, `parameters` says how parameter values
  travel (`kfp_argument`). A parameter whose default may be a credential gets none: it is a
  required input, and `withheld_warnings` says so at its cell.
- `verify`: `verify_module(text)` checks the generated module's shape with `ast` (a whitelist of
  what `dsl` writes) before anything imports it: notebook text can only ever be data in it.
- `yaml`: `write_yaml(module, path)` verifies, then compiles the module with the kfp SDK — imported there, when
  YAML is written, never at module import time; `compile_pipeline` = generate + write_yaml.
- `image`: what a step's image would lack (`third_party_imports`, `missing_packages_note`).
- `target`: `KfpTarget`, the `kfp` entry of the target registry (`nbscale compile --target kfp`).
"""

from .dsl import METRICS_OUTPUT, RECORD_OUTPUT, RUNTIME, RUNTIME_ENTRY, KfpModule, generate, kfp_name, withheld_warnings
from .image import RUNTIME_MODULES, missing_packages_note, third_party_imports
from .options import (
    DEFAULT_ACCELERATOR,
    DEFAULT_BASE_IMAGE,
    DEFAULT_EXPERIMENT,
    OPTION_NAMES,
    KfpOptions,
    OptionsError,
    default_packages,
    load_options,
    metadata_host,
)
from .parameters import NATIVE_TYPES, is_native, kfp_argument, wire_type
from .target import KfpTarget
from .yaml import compile_pipeline, write_yaml

__all__ = [
    "DEFAULT_ACCELERATOR", "DEFAULT_BASE_IMAGE", "DEFAULT_EXPERIMENT", "METRICS_OUTPUT", "NATIVE_TYPES",
    "OPTION_NAMES", "RECORD_OUTPUT", "RUNTIME", "RUNTIME_ENTRY", "RUNTIME_MODULES", "KfpModule", "KfpOptions",
    "KfpTarget", "OptionsError", "compile_pipeline", "default_packages", "generate", "is_native", "kfp_argument",
    "kfp_name", "load_options", "metadata_host", "missing_packages_note", "third_party_imports", "wire_type",
    "withheld_warnings", "write_yaml",
]
