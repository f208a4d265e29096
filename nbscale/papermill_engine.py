"""Old home of `papermill --engine nbscale` (now `nbscale.papermill_plugin`).

Kept so that an environment whose entry points still name `nbscale.papermill_engine:NbscaleEngine`
(installed before the rename) keeps working.
"""

from .papermill_plugin import NbscaleEngine

__all__ = ["NbscaleEngine"]
