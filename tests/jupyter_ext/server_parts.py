"""What the tests of the server extension's parts share: a small notebook, and running a coroutine."""

from __future__ import annotations

import asyncio

TWO_STEPS = [
    ("alpha = 2", ["parameters"]),
    ("a = alpha + 1\nprint('a is', a)", ["step:first"]),
    ("b = a * 10\nb", ["step:second", "metrics"]),
]


def run(coro):
    return asyncio.run(coro)
