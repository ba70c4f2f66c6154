"""The write transaction routes and writers see, apart from the state that opens it.

:class:`Tx` is what a block inside :meth:`mien.server.state.ServerState.transaction` gets:
its session, its time, and the changes and audit records it collects. :class:`Transactor`
is the one thing the group-commit writers (:mod:`mien.server.batching`, used by
:mod:`mien.server.reports` and :mod:`mien.server.enrollment`) need of the state, so that
they do not import the module that creates them.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from mien.server.audit import Entry
from mien.server.notify import Change

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Tx:
    """An open write transaction: its session, its time, what it changed and audits."""

    session: AsyncSession
    now: datetime
    changes: list[Change] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)

    def changed(self, kind: str, key: str = "") -> None:
        self.changes.append(Change(kind, key))

    def audit(
        self,
        actor: str,
        action: str,
        *,
        instance_id: str | None = None,
        persona: str | None = None,
        **detail: Any,
    ) -> None:
        self.entries.append(Entry(actor, action, instance_id, persona, detail))


class Transactor(Protocol):
    """Opens a :class:`Tx` that writes, audits and notifies atomically."""

    def transaction(self) -> AbstractAsyncContextManager[Tx]: ...
