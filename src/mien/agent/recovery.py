"""Recovery and attention: what runs before every engine command, and ``mien recover``.

:func:`open_session` locks a root, opens its state and undoes whatever a dead process left
(:func:`mien.agent.transaction.recover`), turning a damaged database into
:class:`~mien.agent.state_check.StateDamaged` (the machine needs attention).
:func:`repair_database` is the first half of ``mien recover`` (restore the backup, or set
the database aside); :func:`backup` keeps the last good state after every change.

Used by :mod:`mien.agent.engine_base` and :mod:`mien.agent.engine`.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from mien.agent import state_check
from mien.agent.handlers.base import Context
from mien.agent.locking import STATE_DIR
from mien.agent.outcomes import EngineError
from mien.agent.state import DB_NAME, State, exclusive
from mien.agent.state_check import StateDamaged
from mien.agent.transaction import CrashPoints, recover


@contextmanager
def open_session(
    root: Path,
    crash: CrashPoints,
    context: Callable[[State, str], Context],
    *,
    read_only: bool = False,
) -> Iterator[tuple[State, list[str]]]:
    """The root's state, locked, and what recovery undid first (lines to show).

    ``read_only``: on a root mien never wrote to, an empty state in memory, creating
    nothing (no lock file, no database)."""
    if read_only and not State.exists(root):
        with State(root, memory=True) as state:
            yield state, []
        return
    with exclusive(root), State(root) as state:
        try:
            recovered = recover(state, lambda name: context(state, name), crash)
            yield state, recovered
        except sqlite3.DatabaseError as exc:
            if not state_check.is_damage(exc):
                raise EngineError(f"the state database {state.path}: {exc}") from None
            state.damaged = True
            raise StateDamaged(state.path, f"is damaged ({exc})") from None


def repair_database(root: Path, *, start_over: bool) -> list[str]:
    """Replace a damaged state database by its backup (``start_over``: set it aside, and
    mien starts afresh); lines saying what was done."""
    path = root / STATE_DIR / DB_NAME
    lines: list[str] = []
    with exclusive(root):
        if start_over:
            lines.append(state_check.start_over(path))
        else:
            try:
                State(root, create=False).close()
            except StateDamaged:
                lines.append(state_check.restore_backup(path))
            except FileNotFoundError:
                pass
    return lines


def record(state: State, start_over: bool, done: list[str]) -> None:
    """Audit a finished ``mien recover`` and keep the now good state as the backup."""
    with state.transaction():
        state.audit("machine.recovered", start_over=start_over, done=done)
    backup(state)


def backup(state: State) -> None:
    # The last good state, for `mien recover`; a backup that cannot be written (a full
    # disk) leaves the previous one, and does not undo what was applied.
    with contextlib.suppress(OSError, sqlite3.Error):
        state.backup()
