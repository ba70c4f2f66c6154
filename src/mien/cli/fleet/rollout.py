"""Following a change until the machines have applied it: one activation
(``mien instance activate``) or a rollout over many instances (``mien bind add --wait``,
``mien persona push --wait``).

Progress goes to stderr: a live line on a terminal, one line per change otherwise (so a CI
log shows each step once). Only what the agents reported counts: an instance is applied
when its agent reported the desired content hash, failed when its agent reported a failure
(or the server cannot compose its persona), and waiting otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

from mien.cli.common import console, esc, info
from mien.cli.fleet.common import is_tty
from mien.protocol.rollout import Rollout, classify

if TYPE_CHECKING:
    from mien.client import Client
    from mien.protocol import Activation, Instance

__all__ = ["FINAL", "Rollout", "Ticker", "classify", "report_rollout", "watch_rollout"]

FINAL = ("applied", "failed", "superseded", "cancelled")


class Ticker:
    """Poll intervals: fast at first (most changes land in well under a second), then once
    a second; and the deadline."""

    def __init__(self, timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.start = clock()
        self.deadline = self.start + timeout
        self.delay = 0.05

    def elapsed(self) -> float:
        return self.clock() - self.start

    def expired(self) -> bool:
        return self.clock() >= self.deadline

    def wait(self) -> None:
        time.sleep(max(0.0, min(self.delay, self.deadline - self.clock())))
        self.delay = min(self.delay * 2, 1.0)


@contextmanager
def _live(enabled: bool) -> Iterator[Callable[[str], None]]:
    """A status line updated in place on a terminal; plain lines (on change) otherwise."""
    if not enabled:
        last: list[str] = []

        def line(text: str) -> None:
            if not last or last[-1] != text:
                last.append(text)
                info(text)

        yield line
        return
    status = console(stderr=True).status("", spinner="dots")
    status.start()
    try:
        yield lambda text: status.update(esc(text))
    finally:
        status.stop()


@contextmanager
def _bar(enabled: bool) -> Iterator[Callable[[str, int, int], None]]:
    """A progress bar on a terminal; plain lines (on change) otherwise."""
    if not enabled:
        with _live(False) as line:
            yield lambda text, _done, _total: line(text)
        return
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console(stderr=True),
        transient=True,
    )
    task = progress.add_task("", total=None)
    with progress:
        yield lambda text, done, total: progress.update(
            task, description=esc(text), completed=done, total=total or None
        )


def wait_activation(api: Client, activation: Activation, timeout: float) -> Activation | None:
    """Follow the record until applied, failed, superseded or cancelled; ``None`` if still
    under way at ``timeout``. Shows pending → applying → … as it goes."""
    ticker = Ticker(timeout)
    what = f"{activation.instance_id}: {activation.persona} v{activation.version}"
    tty = is_tty()
    with _live(tty) as show:
        current = activation
        while True:
            suffix = f" ({ticker.elapsed():.0f}s)" if tty else ""
            show(f"{what}: {current.status}{suffix}")
            if current.status in FINAL:
                return current
            if ticker.expired():
                return None
            ticker.wait()
            current = api.get_activation(activation.id)


SETTLE = 2.0
"""Seconds an empty rollout is polled again before concluding that nothing follows the
change (behind a load balancer, another replica may learn of it a moment later)."""


def watch_rollout(
    api: Client,
    title: str,
    fetch: Callable[[], list[Instance]],
    timeout: float,
    current: Callable[[Instance], bool] | None = None,
    since: datetime | None = None,
) -> Rollout:
    """Poll ``fetch`` until every instance it returns has applied or failed, or until
    ``timeout``; print progress and return the last state. ``since`` is the server's time
    of the change: a failure reported before it is about an older state and counts only
    once the agent reports again; one reported at or after it counts at once, even if it
    arrived before the first poll (a fast agent on a slow machine)."""
    ticker = Ticker(timeout)
    first = fetch()
    reported = {
        i.id: i.applied.at
        for i in first
        if i.applied.state == "failed"
        and not (since is not None and i.applied.at is not None and i.applied.at >= since)
    }
    tty = is_tty()
    with _bar(tty) as show:
        instances = first
        while True:
            state = classify(instances, reported, current)
            show(f"{title}: {state.line()}", len(state.applied) + len(state.failed), state.total)
            settled = state.total > 0 or ticker.elapsed() >= min(SETTLE, timeout)
            if (state.done and settled) or ticker.expired():
                break
            ticker.wait()
            instances = fetch()
    if tty:
        info(f"{title}: {state.line()}")
    return state


def report_rollout(state: Rollout, title: str, timeout: float) -> bool:
    """Say how a rollout ended; True when every instance applied."""
    for iid, error in sorted(state.failed.items()):
        info(f"  {iid}: failed: {_first_line(error)}")
    if state.done:
        return not state.failed
    stragglers = sorted(set(state.applying) | set(state.waiting))
    shown = ", ".join(stragglers[:10]) + (" …" if len(stragglers) > 10 else "")
    offline = f" ({len(state.offline)} offline)" if state.offline else ""
    info(f"{title}: not converged after {timeout:g}s; still waiting for {shown}{offline}")
    return False


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] + (" …" if len(lines) > 1 else "") if lines else ""
