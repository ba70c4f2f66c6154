"""ETags and If-Match, change payloads, waiters, diffs (pure logic)."""

from __future__ import annotations

import asyncio

import pytest

from mien.server.api.deps import etag, etag_matches
from mien.server.diff import changes
from mien.server.notify import MAX_PAYLOAD, Change, decode, encode
from mien.server.waiters import Waiters

TAG = etag("v", 3, "sha256:" + "ab" * 32)


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (None, True),
        ("*", True),
        (TAG, True),
        (f'"v2-x", {TAG}', True),
        ('"v2-x"', False),
        (f"W/{TAG}", False),
        ("", False),
    ],
)
def test_if_match(header: str | None, ok: bool) -> None:
    assert etag_matches(header, TAG) is ok


def test_etag_shape() -> None:
    assert TAG == '"v3-abababababab"'
    assert etag("b", 7) == '"b7"'


def test_change_payloads_round_trip_and_stay_under_the_limit() -> None:
    changes_ = [Change("instance", f"i-{n:06d}") for n in range(3000)]
    payloads = encode("r1", [*changes_, changes_[0]])
    assert len(payloads) > 1 and all(len(p.encode()) <= MAX_PAYLOAD + 100 for p in payloads)
    back = [c for p in payloads for c in decode(p)[1]]
    assert back == changes_  # duplicates dropped, order kept
    assert decode(payloads[0])[0] == "r1"


def test_waiters_wake_time_out_and_close() -> None:
    async def scenario() -> None:
        w = Waiters()
        assert await w.wait("a", 0.01) is False
        task = asyncio.ensure_future(w.wait("a", 10, known="s1"))
        other = asyncio.ensure_future(w.wait("b", 10, known="s2"))
        await asyncio.sleep(0)
        assert len(w) == 2 and w.keys() == 2
        assert w.wake_where(lambda _k, known: known == "s1") == 1
        assert await task is True
        assert w.close() == 1 and await other is True
        assert await w.wait("c", 10) is True  # closed: answers at once
        assert len(w) == 0

    asyncio.run(scenario())


def test_diff_changes() -> None:
    before = {
        "name": "x",
        "os_settings": {"theme": "dark", "editor": "vim"},
        "restricted_commands": ["a"],
    }
    after = {
        "name": "x",
        "os_settings": {"theme": "light"},
        "restricted_commands": ["a", "b"],
        "labels": {"t": "1"},
    }
    assert changes(before, after) == [
        ("os_settings.theme", "changed", "dark", "light"),
        ("os_settings.editor", "removed", "vim", None),
        ("restricted_commands", "changed", ["a"], ["a", "b"]),
        ("labels.t", "added", None, "1"),
    ]


def test_every_route_reads_json_bodies_through_the_checked_request() -> None:
    """A router built without ``route_class=CheckedRoute`` would let a lone surrogate or a
    5,000-digit integer through to the encoder and the database again."""
    from fastapi.routing import APIRoute, APIWebSocketRoute

    from mien.server.api import health, routers
    from mien.server.api.body import CheckedRoute

    routes = [r for router in (*routers(), health.router) for r in router.routes]
    # The shell relay's WebSockets read no JSON body: their frames pass through unread.
    sockets = [r.path for r in routes if isinstance(r, APIWebSocketRoute)]
    assert sockets == ["/broker/leases/{lease_id}/shell", "/broker/host/shells/{session_id}"]
    routes = [r for r in routes if not isinstance(r, APIWebSocketRoute)]
    assert len(routes) > 20 and all(isinstance(r, APIRoute) for r in routes)
    assert [r.path for r in routes if not isinstance(r, CheckedRoute)] == []
