"""What the tests of the server extension's parts share: a small notebook, running a coroutine,
waiting for a run to end."""

from __future__ import annotations

import asyncio
import time

from nbscale.kernels.contract import FINISHED

TWO_STEPS = [
    ("alpha = 2", ["parameters"]),
    ("a = alpha + 1\nprint('a is', a)", ["step:first"]),
    ("b = a * 10\nb", ["step:second", "metrics"]),
]


def run(coro):
    return asyncio.run(coro)


async def wait_finished(runs, nb, run_id, timeout=30.0) -> dict:
    """The run once it is final and its supervisor is done with it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        detail = await runs.detail(nb, run_id)
        if detail["status"] in FINISHED and run_id not in runs.active():
            return detail
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish: {detail['status']}")
