"""When a failed provider call is tried again: exponential backoff with jitter. Pure; used
by the provider queue (:mod:`mien.server.providers.queue`) and the unit tests."""

from __future__ import annotations

import random
from collections.abc import Callable


def retry_delay(
    attempt: int, base: float, cap: float, rand: Callable[[], float] = random.random
) -> float:
    """Seconds before attempt ``attempt + 1``, after ``attempt`` failed ones (1, 2, …):
    ``base * 2**(attempt-1)`` capped at ``cap``, of which a random half is taken away
    ("equal jitter"), so replicas and calls that failed together do not retry together."""
    ceiling = float(min(cap, base * 2.0 ** max(attempt - 1, 0)))
    return ceiling / 2 + rand() * ceiling / 2
