"""Room for the compiler's recursion on deeply nested code.

The passes walk syntax trees recursively, several Python frames per level of nesting: a sum of
160 terms, 200 chained method calls or 300 `elif` branches pass Python's default limit of 1,000
frames, while Python itself compiles such code up to about 3,000 levels deep. A compile that runs
out of frames runs once more on a thread with a big stack and a higher limit, so that code Python
runs compiles here too. The usual compile pays nothing for it.

The recursion limit is the process's, not the thread's: two deep compiles at once would lower it
under each other, and a compile on another thread would recurse past its own stack while the
limit is high, then find itself past the limit when it comes down (Python then aborts the process:
"Cannot recover from stack overflow"). So compiles take turns (`compiling`), deep or not: under
the GIL, threads gain nothing by compiling side by side.
"""

from __future__ import annotations

import contextvars
import sys
import threading
from contextlib import contextmanager

from .errors import NbscaleCompileError

STACK_BYTES = 512 * 2**20  # reserved, not used: only the pages the recursion reaches are touched
FRAMES = 100_000  # Python's compiler gives up near 3,000 levels; a level here takes a few frames
_ONE_AT_A_TIME = threading.RLock()  # (a compile that held it retries deep, holding it still)


@contextmanager
def compiling():
    """Held while the compiler walks syntax trees or Python compiles cells: one compile at a time."""
    with _ONE_AT_A_TIME:
        yield


def with_room_to_recurse(function, *args):
    """`function(*args)`, on a thread with a big stack and a high recursion limit."""
    with _ONE_AT_A_TIME:
        return _on_a_deep_thread(function, *args)


def _on_a_deep_thread(function, *args):
    outcome: dict = {}
    context = contextvars.copy_context()  # (the compile's: the notebook's folder, `local_modules`)

    def target():
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, FRAMES))
        try:
            outcome["value"] = context.run(function, *args)
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            outcome["error"] = exc
        finally:
            sys.setrecursionlimit(limit)

    previous = threading.stack_size(STACK_BYTES)
    try:
        thread = threading.Thread(target=target, name="nbscale-compile-deep", daemon=True)
        thread.start()
    finally:
        threading.stack_size(previous)
    thread.join()
    if isinstance(outcome.get("error"), RecursionError):
        raise NbscaleCompileError("the notebook's code nests deeper than nbscale can analyse (an expression "
                                  "of thousands of terms or calls, or blocks nested as deep); split it "
                                  "into statements") from None
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
