"""Set up each worker process of the embedded cluster as it starts (a Dask worker preload).

A terminal's Ctrl-C goes to its whole foreground process group: the `nbscale run` there, and the
workers it forked with every process their steps started. A step's `subprocess.run` then died under
it, the step went on and ended during the cancel, and its result was stored, to be reused next time;
the workers printed tracebacks and ran steps on for seconds. Each worker takes a process group of its
own, so the run alone hears the terminal and stops its steps as a Cancel does (`dask_lifecycle`).
"""

from __future__ import annotations

import os


def dask_setup(worker) -> None:
    try:
        os.setpgid(0, 0)
    except OSError:  # a session leader already (a warm cluster's worker on some systems): no terminal's group
        pass
