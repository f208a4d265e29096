"""nbscale compiler: notebook in, pipeline IR out. Pure: no Dask, kfp, papermill or Jupyter server."""

from .compile import compile_notebook, compile_source
from .compile_cache import compiler_digest
from .errors import NbscaleCompileError, NotebookReadError, PipelineHasErrors
from .ir import SCHEMA, Pipeline, Step

compiler_digest()  # of the source this process runs, before anyone edits it

__all__ = [
    "SCHEMA", "NbscaleCompileError", "NotebookReadError", "Pipeline", "PipelineHasErrors", "Step",
    "compile_notebook", "compile_source",
]
