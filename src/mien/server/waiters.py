"""In-process wake-ups: long-polls (and operators awaiting a command result) park here.

A waiter is a bare future with a timer, not a task, so ten thousand idle long-polls cost
memory and no CPU. Waking sets the futures; each woken request then re-reads the
replica's cache and answers with bytes encoded once for every waiter that wants them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable


class Waiters:
    """Futures parked under a key (an instance id, a command id)."""

    def __init__(self) -> None:
        self._by_key: dict[str, list[tuple[asyncio.Future[bool], str | None]]] = {}
        self.closed = False

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_key.values())

    def keys(self) -> int:
        """How many distinct keys have someone waiting (e.g. connected agents)."""
        return len(self._by_key)

    async def wait(self, key: str, timeout: float, known: str | None = None) -> bool:
        """Park until woken (``True``) or ``timeout`` seconds pass (``False``)."""
        return await self.park(key, timeout, known)

    def park(self, key: str, timeout: float, known: str | None = None) -> asyncio.Future[bool]:
        """The future :meth:`wait` awaits, for a caller that awaits it itself: a parked
        long-poll then holds no coroutine frame of this class (ten thousand of them add
        up). Cancelling the future (the request went away) unparks it like a wake-up."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        if self.closed or timeout <= 0:
            future.set_result(self.closed)
            return future
        entry = (future, known)
        self._by_key.setdefault(key, []).append(entry)
        timer = loop.call_later(timeout, _settle, future, False)
        future.add_done_callback(functools.partial(self._forget, key, entry, timer))
        return future

    def _forget(
        self,
        key: str,
        entry: tuple[asyncio.Future[bool], str | None],
        timer: asyncio.TimerHandle,
        _future: asyncio.Future[bool],
    ) -> None:
        timer.cancel()
        entries = self._by_key.get(key)
        if entries is not None:
            with contextlib.suppress(ValueError):
                entries.remove(entry)
            if not entries:
                del self._by_key[key]

    def wake(self, key: str) -> int:
        woken = 0
        for future, _known in self._by_key.get(key, ()):
            woken += _settle(future, True)
        return woken

    def wake_where(self, stale: Callable[[str, str | None], bool]) -> int:
        """Wake every waiter for which ``stale(key, known)`` is true."""
        woken = 0
        for key, entries in list(self._by_key.items()):
            for future, known in list(entries):
                if not future.done() and stale(key, known):
                    woken += _settle(future, True)
        return woken

    def wake_all(self) -> int:
        return self.wake_where(lambda _k, _v: True)

    def close(self) -> int:
        """Wake everyone and refuse new waits (shutdown)."""
        self.closed = True
        return self.wake_all()


def _settle(future: asyncio.Future[bool], value: bool) -> int:
    if future.done():
        return 0
    future.set_result(value)
    return 1
