"""Targets the pipeline IR compiles to, besides the IR itself.

`kfp`: a Kubeflow Pipelines (v2) DSL module and its compiled YAML. Targets are pure text
generators: the kfp SDK is imported only when YAML is written, never at module import time.
"""
