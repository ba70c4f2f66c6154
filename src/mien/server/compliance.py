"""Whether instances are within fleet policy, computed from what the server has stored.

An instance is out of policy when:

* ``locked_changed`` — its agent reports a setting its desired persona ``locked`` as
  changed on the machine by a person (outcome ``stored``, reason ``user-choice``: the
  machine drifted from a key the persona does not let users change);
* ``action_refused`` — its agent sent ``adapt.action.refused`` events (a rule asked for an
  action beyond the persona's trust, as capped by the policy) within the policy's
  ``noncompliance_window`` (1 day without a policy);
* ``command_refused`` — a remote command sent to it was refused by its command router
  (``restricted_commands``) within the same window.

:func:`reasons` answers for a page of instances with two grouped queries (bounded by the
page and the window, on indexed columns) and the reports already in the rows. Used by
``GET /instances`` (``noncompliant=true``) and ``GET /instances/{id}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mien.protocol import Noncompliance
from mien.protocol.outcomes import Outcome, Reason
from mien.server.store.instances import InstanceRow
from mien.server.store.tables import commands
from mien.server.store.tables_telemetry import telemetry_events
from mien.spec.policy import DEFAULT_WINDOW

REFUSED_ACTION = "adapt.action.refused"


def window_text(seconds: float) -> str:
    from mien.spec.values import Duration

    return str(Duration(seconds))


def locked_changes(
    settings: Sequence[Mapping[str, Any]] | None, locked: Sequence[str]
) -> list[str]:
    """The settings reported as changed by a person that fall under a ``locked`` key."""
    if not settings or not locked:
        return []
    out = []
    for item in settings:
        name = str(item.get("setting", ""))
        if item.get("status") != Outcome.STORED or item.get("reason") != Reason.USER_CHOICE:
            continue
        if any(name == key or name.startswith(key + ".") for key in locked):
            out.append(name)
    return out


async def _counts(
    s: AsyncSession, ids: list[str], since: datetime
) -> tuple[dict[str, tuple[int, float]], dict[str, tuple[int, datetime]]]:
    te = telemetry_events
    actions: dict[str, tuple[int, float]] = {}
    query: Any = (
        select(te.c.instance_id, func.count(), func.max(te.c.ts))
        .where(
            te.c.instance_id.in_(ids),
            te.c.kind == REFUSED_ACTION,
            te.c.ts >= since.timestamp(),
        )
        .group_by(te.c.instance_id)
    )
    for iid, count, last in await s.execute(query):
        actions[str(iid)] = (int(count), float(last))
    c = commands
    refused: dict[str, tuple[int, datetime]] = {}
    query = (
        select(c.c.instance_id, func.count(), func.max(c.c.finished_at))
        .where(c.c.instance_id.in_(ids), c.c.refused.is_(True), c.c.finished_at >= since)
        .group_by(c.c.instance_id)
    )
    for iid, count, last in await s.execute(query):
        refused[str(iid)] = (int(count), last)
    return actions, refused


async def reasons(
    s: AsyncSession,
    rows: Sequence[InstanceRow],
    locked_of: Mapping[str, Sequence[str]],
    *,
    now: datetime,
    window: float | None = None,
) -> dict[str, list[Noncompliance]]:
    """Why each of ``rows`` is out of policy (only the noncompliant ones are keys).
    ``locked_of``: each instance's desired persona's ``locked`` keys."""
    seconds = window if window is not None else DEFAULT_WINDOW.seconds
    ids = [r.id for r in rows]
    if not ids:
        return {}
    since = now - timedelta(seconds=seconds)
    actions, refused = await _counts(s, ids, since)
    span = window_text(seconds)
    out: dict[str, list[Noncompliance]] = {}
    for row in rows:
        found: list[Noncompliance] = []
        changed = locked_changes(row.applied_settings, locked_of.get(row.id, ()))
        if changed:
            found.append(
                Noncompliance(
                    kind="locked_changed",
                    count=len(changed),
                    last=row.applied_at,
                    detail="locked by the persona and changed on the machine: "
                    + ", ".join(changed),
                )
            )
        if row.id in actions:
            count, ts = actions[row.id]
            found.append(
                Noncompliance(
                    kind="action_refused",
                    count=count,
                    last=datetime.fromtimestamp(ts, UTC),
                    detail=f"{count} action(s) beyond trust refused in the last {span} "
                    f"(mien instance events {row.id} --kind {REFUSED_ACTION})",
                )
            )
        if row.id in refused:
            count, at = refused[row.id]
            found.append(
                Noncompliance(
                    kind="command_refused",
                    count=count,
                    last=at,
                    detail=f"{count} remote command(s) refused by the command router in the "
                    f"last {span} (mien instance commands {row.id})",
                )
            )
        if found:
            out[row.id] = found
    return out
