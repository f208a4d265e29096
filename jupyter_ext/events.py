"""The event fan-out behind the websocket: subscribers per notebook, and two loops that feed it.

The hub knows nothing of runs or clusters: parts publish Event models into it as things happen
(a run started by the server sends each of its events at once). While anyone is subscribed it
calls two coroutines it was given:
- `follow` every `follow_interval_s` (the manager's: events other processes wrote to a watched run
  store; cheap when nothing changed, so it runs often: a step's end shows within ~0.1 s);
- `sample` every `sample_interval_s` while that reports activity, else every `idle_interval_s`
  (the manager's: a cluster sample). `wake()` makes the next sample come at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

Subscriber = Callable[[dict], None]


class EventHub:
    def __init__(self, sample: Callable[[], Awaitable[bool]] | None = None, *, log: logging.Logger | None = None,
                 sample_interval_s: float = 0.5, idle_interval_s: float = 2.0,
                 follow: Callable[[], Awaitable[object]] | None = None, follow_interval_s: float = 0.1):
        self.sample, self.follow, self.follow_interval_s = sample, follow, follow_interval_s
        self.log = log or logging.getLogger("nbscale.jupyter_ext")
        self.sample_interval_s, self.idle_interval_s = sample_interval_s, idle_interval_s
        self._subscribers: dict[int, tuple[Path | None, Subscriber]] = {}
        self._next_key = 0
        self._loop_task: asyncio.Task | None = None
        self._follow_task: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self._closed = False

    def subscribe(self, callback: Subscriber, notebook: Path | None = None) -> Callable[[], None]:
        """Call `callback(event)` (on the event loop) for events of `notebook`'s runs (all runs if
        None) and for cluster samples. Returns the function that unsubscribes."""
        key = self._next_key
        self._next_key += 1
        self._subscribers[key] = (notebook, callback)
        self._ensure_loop()

        def unsubscribe():
            self._subscribers.pop(key, None)

        return unsubscribe

    def publish(self, event: dict, notebook: Path | None = None) -> None:
        """Send `event` to the subscribers of `notebook` (None: to every subscriber)."""
        for wanted, callback in list(self._subscribers.values()):
            if notebook is None or wanted is None or wanted == notebook:
                try:
                    callback(event)
                except Exception:  # noqa: BLE001 - one broken subscriber must not stop the others
                    self.log.debug("nbscale: event subscriber failed", exc_info=True)

    def watched(self) -> set[Path]:
        """The notebooks someone subscribed to by name."""
        return {notebook for notebook, _ in self._subscribers.values() if notebook is not None}

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def close(self) -> None:
        self._closed = True
        if self._loop_task is not None:
            self.wake()
            self._loop_task.cancel()
        if self._follow_task is not None:
            self._follow_task.cancel()

    def _ensure_loop(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # subscribed outside the server's loop: no samples, events still flow
            return
        if self.sample is not None and (self._loop_task is None or self._loop_task.done()):
            self._wake = asyncio.Event()
            self._loop_task = loop.create_task(self._sample_loop())
        if self.follow is not None and (self._follow_task is None or self._follow_task.done()):
            self._follow_task = loop.create_task(self._follow_loop())

    async def _follow_loop(self) -> None:
        while self._subscribers and not self._closed:
            try:
                await self.follow()
            except Exception:  # noqa: BLE001 - a failed look must not end the ones to come
                self.log.debug("nbscale: following the run stores failed", exc_info=True)
            await asyncio.sleep(self.follow_interval_s)

    async def _sample_loop(self) -> None:
        while self._subscribers and not self._closed:
            try:
                active = await self.sample()
            except Exception:  # noqa: BLE001 - a failed sample must not end the samples to come
                self.log.debug("nbscale: sampling failed", exc_info=True)
                active = False
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.sample_interval_s if active else self.idle_interval_s)
            except asyncio.TimeoutError:
                pass
