"""Dashboard sessions without a server: expiry, the bound on their number, the CSRF check,
where sign-in may send a person, and the role lists matching the API's."""

from __future__ import annotations

import pytest

from mien.server.auth import Principal
from mien.server.errors import ApiError
from mien.server.ui import sessions as ui
from mien.server.ui.login import _safe_next


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


VIEWER = Principal("t1", "v", "viewer")


def test_a_session_expires() -> None:
    clock = Clock()
    store = ui.Sessions(clock)
    s = store.create("digest", VIEWER)
    assert store.get(s.id) is s and s.csrf != s.id
    clock.now += ui.SESSION_SECONDS - 1
    assert store.get(s.id) is s
    clock.now += 1
    assert store.get(s.id) is None and len(store) == 0
    assert store.get(None) is None and store.get("") is None


def test_sessions_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ui, "MAX_SESSIONS", 3)
    clock = Clock()
    store = ui.Sessions(clock)
    made = []
    for _ in range(3):
        made.append(store.create("d", VIEWER))
        clock.now += 1
    newest = store.create("d", VIEWER)  # full: the oldest goes
    assert len(store) == 3 and store.get(made[0].id) is None and store.get(newest.id)
    clock.now += ui.SESSION_SECONDS + 10  # all expired: swept on the next sign-in
    store.create("d", VIEWER)
    assert len(store) == 1


def test_sign_out_drops_the_session() -> None:
    store = ui.Sessions(Clock())
    s = store.create("d", VIEWER)
    store.drop(s.id)
    store.drop(None)
    assert store.get(s.id) is None


@pytest.mark.parametrize(
    ("expected", "given"),
    [
        ("tok", {}),
        ("tok", {"csrf": ""}),
        ("tok", {"csrf": "other"}),
        (None, {"csrf": "x"}),
        ("", {"csrf": ""}),
    ],
)
def test_csrf_refusals(expected: str | None, given: dict[str, str]) -> None:
    with pytest.raises(ApiError) as caught:
        ui.check_csrf(expected, given)
    assert caught.value.status == 403


def test_csrf_accepts_the_token() -> None:
    ui.check_csrf("tok", {"csrf": "tok"})


def test_roles_are_the_apis() -> None:
    store = ui.Sessions(Clock())
    for role, read, write, verify in (
        ("viewer", True, False, False),
        ("operator", True, True, False),
        ("admin", True, True, True),
        ("user", False, False, False),
        ("agent", False, False, False),
    ):
        s = store.create("d", Principal("t", "n", role))  # type: ignore[arg-type]
        assert (s.may(ui.READ), s.may(ui.WRITE), s.may(ui.VERIFY)) == (read, write, verify)
        assert s.may(ui.PERSONAS) == (role != "agent")
    with pytest.raises(ApiError, match="has role 'viewer'; this needs 'operator'"):
        ui.require(store.create("d", VIEWER), ui.WRITE)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/ui/personas?x=1", "/ui/personas?x=1"),
        ("//evil.example/ui", "/ui/"),
        ("https://evil.example/", "/ui/"),
        ("/api/v1/tokens", "/ui/"),
        ("/uiother", "/ui/"),
        ("/ui\\..\\x", "/ui/"),
        ("/ui/\r\nSet-Cookie: a=b", "/ui/"),
        (None, "/ui/"),
    ],
)
def test_only_dashboard_paths_follow_sign_in(target: str | None, expected: str) -> None:
    assert _safe_next(target) == expected
