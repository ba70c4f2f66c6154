"""The JSON-lines audit log, ``ROOT/var/log/mien/audit.jsonl``, beside the state database.

Every audit record of the agent is written twice: in the state database (queried by the
CLI) and, once the database has committed it, as one line here, for log shippers and for
people with ``tail -f``. Used by :meth:`mien.agent.state.State.audit`; :func:`local_actor` is
the one way the agent (engine and command router alike) names the local person acting.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

AUDIT_LOG = "var/log/mien/audit.jsonl"

# The person the agent acts for while it serves a request on its local socket (whose name
# came from the kernel's peer credentials, see mien.agent.local_api).
_acting_for: ContextVar[str | None] = ContextVar("mien_acting_for", default=None)


@contextmanager
def acting_for(user: str) -> Iterator[None]:
    """Name ``user`` as the actor of every audit record written in this block (this thread
    or task only)."""
    token = _acting_for.set(user)
    try:
        yield
    finally:
        _acting_for.reset(token)


def local_actor() -> str:
    """Who runs this, from the real uid: ``$USER`` is the caller's to set, so only root's
    ``sudo`` (which sets ``SUDO_USER`` itself) may name someone else. The agent serving its
    socket names the person it acts for (:func:`acting_for`)."""
    acting = _acting_for.get()
    if acting is not None:
        return f"local:{acting}"
    uid = os.getuid()
    if uid == 0:
        return f"local:{os.environ.get('SUDO_USER') or 'root'}"
    import pwd

    try:
        return f"local:{pwd.getpwuid(uid).pw_name}"
    except KeyError:
        return f"local:{uid}"


def append_audit_line(
    root: Path, ts: float, event: str, actor: str, persona: str | None, detail: Mapping[str, Any]
) -> None:
    """Append one JSON line to the audit log (created 0640 on first use)."""
    path = root / AUDIT_LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(
        {"ts": round(ts, 6), "event": event, "actor": actor, "persona": persona, **detail},
        default=str,
        sort_keys=False,
    )
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)
