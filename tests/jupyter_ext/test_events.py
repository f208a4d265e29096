"""EventHub: events go to the subscribers of their notebook; the sample loop runs while anyone listens."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from nbscale.jupyter_ext.events import EventHub

A, B = Path("/r/a.ipynb"), Path("/r/b.ipynb")


def test_events_reach_the_subscribers_of_their_notebook_and_those_of_all():
    hub = EventHub()
    of_a, of_b, of_all = [], [], []
    hub.subscribe(of_a.append, A)
    unsubscribe_b = hub.subscribe(of_b.append, B)
    hub.subscribe(of_all.append)
    assert hub.watched() == {A, B}
    hub.publish({"n": 1}, A)
    hub.publish({"n": 2})  # e.g. a cluster sample: for everyone
    unsubscribe_b()
    hub.publish({"n": 3}, B)
    assert of_a == [{"n": 1}, {"n": 2}] and of_b == [{"n": 2}] and of_all == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert hub.watched() == {A}


def test_a_broken_subscriber_does_not_stop_the_others():
    hub = EventHub()
    seen = []
    hub.subscribe(lambda event: 1 / 0)
    hub.subscribe(seen.append)
    hub.publish({"n": 1})
    assert seen == [{"n": 1}]


def test_samples_come_fast_while_active_slowly_when_idle_and_at_once_when_woken():
    times = []
    state = {"active": True, "fail": False}

    async def sample():
        times.append(time.monotonic())
        if state["fail"]:
            raise RuntimeError("a failed sample")  # logged, counted as idle; the samples go on
        return state["active"]

    async def main():
        hub = EventHub(sample, sample_interval_s=0.05, idle_interval_s=5.0)
        unsubscribe = hub.subscribe(lambda event: None)
        await asyncio.sleep(0.5)
        fast = len(times)
        state["active"] = False
        await asyncio.sleep(0.3)
        idle = len(times)
        assert idle <= fast + 1
        state["fail"] = True
        for n in (1, 2):
            woken_at = time.monotonic()
            hub.wake()
            await asyncio.sleep(0.1)
            assert len(times) == idle + n and times[-1] - woken_at < 0.1
        unsubscribe()
        hub.wake()
        await asyncio.sleep(0.1)
        assert len(times) == idle + 2  # nobody listens: no more samples
        hub.close()
        return fast

    assert asyncio.run(main()) >= 5


def test_the_follow_loop_runs_often_while_anyone_listens_and_survives_failures():
    calls = []

    async def follow():
        calls.append(time.monotonic())
        if len(calls) == 2:
            raise RuntimeError("a locked store")  # logged; the loop goes on

    async def sample():
        return False

    async def main():
        hub = EventHub(sample, idle_interval_s=5.0, follow=follow, follow_interval_s=0.02)
        unsubscribe = hub.subscribe(lambda event: None)
        await asyncio.sleep(0.5)
        unsubscribe()
        await asyncio.sleep(0.1)  # the loop sees nobody listens and ends
        ended = len(calls)
        await asyncio.sleep(0.2)
        hub.close()
        return ended

    ended = asyncio.run(main())
    assert ended >= 5  # many looks in half a second, not one per (idle) sample
    assert len(calls) == ended
