"""Set up each worker process of the embedded cluster as it starts (a Dask worker preload).

A terminal's Ctrl-C goes to its whole foreground process group: the `nbscale run` there, and the
workers it forked with every process their steps started. A step's `subprocess.run` then died under
it, the step went on and ended during the cancel, and its result was stored, to be reused next time;
the workers printed tracebacks and ran steps on for seconds. Each worker takes a process group of its
own, so the run alone hears the terminal and stops its steps as a Cancel does (`dask_lifecycle`).

A SIGINT that reaches a worker all the same (a step's `os.kill(os.getpid(), signal.SIGINT)` or
`_thread.interrupt_main()`, a `kill -INT` of its pid) raised KeyboardInterrupt in the worker's event
loop, in its main thread: the loop died, the worker could neither report the step nor be replaced,
and the run stayed `running` for good. The worker ignores it, saying so in its log.
"""

from __future__ import annotations

import logging
import os
import signal


def dask_setup(worker) -> None:
    try:
        os.setpgid(0, 0)
    except OSError:  # a session leader already (a warm cluster's worker on some systems): no terminal's group
        pass
    try:
        signal.signal(signal.SIGINT, _interrupt_ignored)
    except ValueError:  # (not this process's main thread: nothing can be set)
        pass


def _interrupt_ignored(signum, frame) -> None:
    logging.getLogger("nbscale.worker").warning(
        "a SIGINT reached this worker (pid %d): ignored; a run's steps are cancelled by the run", os.getpid())
