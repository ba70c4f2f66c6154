"""The agent's reports not yet acknowledged by the server, kept in ``state.db``.

Reports are delivered at least once: each is written here before it is sent and removed
only when the server acknowledged it, so a server killed while a report is in flight, or
an agent restarted before it could send one, loses nothing — the agent re-sends, in order,
before its next long-poll. The server takes a report again without harm (the same state
of the same activation changes nothing and is audited once). Only the newest report about
an activation (or about no activation) matters, so a newer one replaces an older one that
is still waiting, and the queue stays short. Used by :class:`mien.agent.sync.Agent`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from mien.agent.state import State

OUTBOX_KEY = "report_outbox"
REPORTED_KEY = "reported"
LIMIT = 20


class Outbox:
    """Unacknowledged reports (each the keyword arguments of ``AgentClient.report``)."""

    def __init__(self, state: State) -> None:
        self.state = state

    def pending(self) -> list[dict[str, Any]]:
        raw = self.state.get_meta(OUTBOX_KEY)
        if not raw:
            return []
        try:
            items = json.loads(raw)
        except ValueError:
            return []  # a damaged queue is dropped rather than blocking every report
        return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []

    def _save(self, items: list[dict[str, Any]]) -> None:
        with self.state.transaction():
            self.state.set_meta(OUTBOX_KEY, json.dumps(items) if items else None)

    def add(self, report: dict[str, Any]) -> None:
        """Queue ``report`` durably, replacing any waiting one about the same activation."""
        same = report.get("activation_id")
        items = [i for i in self.pending() if i.get("activation_id") != same]
        items.append(report)
        self._save(items[-LIMIT:])

    def last_acknowledged(self) -> str | None:
        """``"STATE HASH"`` of the last report the server acknowledged."""
        return self.state.get_meta(REPORTED_KEY)

    def latest(self) -> str | None:
        """``"STATE HASH"`` of the newest report the server has or will have: the last one
        waiting, else the last one acknowledged."""
        items = self.pending()
        if items:
            return f"{items[-1].get('state')} {items[-1].get('hash')}"
        return self.last_acknowledged()

    def flush(self, send: Callable[[dict[str, Any]], None], log: Callable[[str], None]) -> None:
        """Send what waits, oldest first; each is removed once acknowledged. A report the
        server refuses outright is dropped (and logged). Raises
        :class:`~mien.client.RetryableError` when the server cannot be reached; what is
        left stays queued."""
        from mien.client import ClientError, RetryableError

        while True:
            items = self.pending()
            if not items:
                return
            report = items[0]
            try:
                send(report)
            except RetryableError:
                raise
            except ClientError as exc:
                log(f"report {report.get('state')} not accepted: {exc}")
            else:
                with self.state.transaction():
                    self.state.set_meta(REPORTED_KEY, f"{report.get('state')} {report.get('hash')}")
            rest = self.pending()
            if rest and rest[0] == report:
                self._save(rest[1:])
