"""A rollout followed live: the instances a binding selects (or that should run a
persona), how many have applied, failed, are applying or waiting, as a progress bar and a
table that the page updates from server-sent events (``…/events``).

The classification is :func:`mien.protocol.rollout.classify`, the one ``mien bind add
--wait`` prints; the instances are the API's own :func:`~mien.server.api.instances.list_instances`
answers. The event stream re-reads them twice a second and sends a new frame only when
something changed; it ends when every instance applied or failed, when the client goes
away, when the server shuts down, or after :data:`STREAM_SECONDS` (the browser then
reconnects by itself).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import StreamingResponse

from mien.protocol import Instance
from mien.protocol.rollout import Rollout, classify
from mien.server.api import bindings as bindings_api
from mien.server.api import instances as instances_api
from mien.server.api.deps import NAME_RE, get_state
from mien.server.auth import Principal
from mien.server.state import ServerState
from mien.server.ui import sessions as ui
from mien.server.ui.render import ENV, SECURITY_HEADERS, UiRoute, page
from mien.server.ui.svg import progress_bar

router = APIRouter(route_class=UiRoute, include_in_schema=False)

Kind = Literal["binding", "persona"]
INTERVAL = 0.5
STREAM_SECONDS = 300.0
SETTLE = 2.0


async def members(state: ServerState, who: Principal, kind: Kind, name: str) -> list[Instance]:
    """The instances of the rollout: those whose desired state uses the binding (to choose
    or override their persona, or to add one on top), or whose desired persona is the
    persona."""
    out: list[Instance] = []
    after: str | None = None
    while True:
        listing = await instances_api.list_instances(
            state,
            who,
            limit=1000,
            after=after,
            tag=[],
            persona=name if kind == "persona" else None,
            hostname=None,
            include_deleted=False,
        )
        for inst in listing.items:
            if kind == "persona" or name in (*inst.desired.bindings, *inst.desired.added):
                out.append(inst)
        if listing.next is None:
            return out
        after = listing.next


def frame(progress: Rollout, instances: list[Instance], title: str) -> dict[str, Any]:
    """What the page shows: the summary line, the bar and the table (rendered here, escaped
    by the template)."""
    status = dict.fromkeys(progress.applied, "applied")
    status.update(dict.fromkeys(progress.failed, "failed"))
    status.update(dict.fromkeys(progress.applying, "applying"))
    status.update(dict.fromkeys(progress.waiting, "waiting"))
    bar = progress_bar(
        [
            ("applied", len(progress.applied)),
            ("failed", len(progress.failed)),
            ("applying", len(progress.applying)),
            ("waiting", len(progress.waiting)),
        ],
        progress.total,
        title=title,
    )
    rows = ENV.get_template("rollout_rows.html").render(
        instances=instances, status=status, failed=progress.failed
    )
    done = progress.done
    line = progress.line()
    if done and progress.total:
        line += " — done" if not progress.failed else " — finished with failures"
    return {
        "line": line,
        "done": done,
        "total": progress.total,
        "chart": str(bar),
        "rows": rows,
    }


async def snapshot(
    state: ServerState, who: Principal, kind: Kind, name: str, before: dict[str, datetime | None]
) -> dict[str, Any]:
    instances = await members(state, who, kind, name)
    progress = classify(instances, before)
    return frame(progress, instances, f"rollout of {kind} {name}")


@router.get("/rollouts/{kind}/{name}")
async def rollout(
    request: Request, kind: Kind, name: Annotated[str, Path(pattern=NAME_RE)]
) -> Response:
    session = await ui.current(request)
    ui.require(session, ui.READ)
    state = get_state(request)
    binding = None
    if kind == "binding":
        binding = await bindings_api.get_binding(name, Response(), state, session.principal)
    first = await snapshot(state, session.principal, kind, name, {})
    return page(session, "rollout.html", kind=kind, name=name, binding=binding, first=first)


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


@router.get("/rollouts/{kind}/{name}/events")
async def events(
    request: Request, kind: Kind, name: Annotated[str, Path(pattern=NAME_RE)]
) -> Response:
    session = await ui.current(request)
    ui.require(session, ui.READ)
    state = get_state(request)
    who = session.principal
    # A failure reported before the stream began may be about an older desired state.
    start = await members(state, who, kind, name)
    before = {i.id: i.applied.at for i in start if i.applied.state == "failed"}

    async def stream() -> AsyncIterator[bytes]:
        began = time.monotonic()
        deadline = began + STREAM_SECONDS
        last: dict[str, Any] | None = None
        yield b"retry: 2000\n\n"
        while not state.shutting_down and time.monotonic() < deadline:
            if await request.is_disconnected():
                return
            current = await snapshot(state, who, kind, name, before)
            if current != last:
                yield _event("progress", current)
                last = current
            # An empty rollout is read again for a moment: another replica may not have
            # seen the change yet (the same settling as the CLI's).
            if current["done"] and (current["total"] or time.monotonic() - began >= SETTLE):
                yield _event("done", current)
                return
            await asyncio.sleep(INTERVAL)

    headers = {**SECURITY_HEADERS, "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
