"""Parked long-polls: a waiter is a future and a timer, woken, timed out or cancelled, and
in every case gone from the table afterwards (a parked long-poll awaits the future itself,
so the bookkeeping runs in the future's done callback)."""

from __future__ import annotations

import asyncio

from mien.server.waiters import Waiters


async def _settled(waiters: Waiters) -> None:
    await asyncio.sleep(0)  # done callbacks run on the loop's next turn


def test_a_woken_waiter_answers_true_and_leaves_the_table() -> None:
    async def scenario() -> None:
        waiters = Waiters()
        future = waiters.park("i-1", 10, "sha256:a")
        assert len(waiters) == 1 and waiters.keys() == 1
        assert waiters.wake("i-1") == 1
        assert await future is True
        await _settled(waiters)
        assert len(waiters) == 0 and waiters.keys() == 0

    asyncio.run(scenario())


def test_a_timed_out_waiter_answers_false_and_leaves_the_table() -> None:
    async def scenario() -> None:
        waiters = Waiters()
        assert await waiters.park("i-1", 0.01) is False
        await _settled(waiters)
        assert len(waiters) == 0

    asyncio.run(scenario())


def test_a_cancelled_request_unparks_and_wakes_nobody_else() -> None:
    async def scenario() -> None:
        waiters = Waiters()
        mine = asyncio.ensure_future(waiters.wait("i-1", 10))
        other = waiters.park("i-1", 10)
        await asyncio.sleep(0)
        mine.cancel()  # the client went away
        await asyncio.gather(mine, return_exceptions=True)
        await _settled(waiters)
        assert len(waiters) == 1 and not other.done()
        assert waiters.wake_where(lambda key, known: key == "i-1") == 1
        assert await other is True

    asyncio.run(scenario())


def test_after_close_nothing_parks() -> None:
    async def scenario() -> None:
        waiters = Waiters()
        parked = waiters.park("i-1", 10)
        assert waiters.close() == 1 and await parked is True
        assert await waiters.park("i-2", 10) is True  # answered at once: restarting
        await _settled(waiters)
        assert len(waiters) == 0

    asyncio.run(scenario())
