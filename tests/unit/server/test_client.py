"""The client's error translation, retry classification and protocol details, against an
in-memory transport (httpx.MockTransport)."""

from __future__ import annotations

import random

import httpx
import pytest

from mien.client import (
    AgentClient,
    BadRequest,
    Client,
    Conflict,
    ConnectError,
    InvalidDocument,
    NotFound,
    PreconditionFailed,
    ProtocolError,
    Unauthorized,
    Unavailable,
    backoff,
)
from mien.client._http import base_url


def client_answering(
    status: int, body: object = None, headers: dict[str, str] | None = None
) -> Client:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, (dict, list)):
            return httpx.Response(status, json=body, headers=headers)
        return httpx.Response(status, content=body or b"", headers=headers)

    return Client("http://mien.test", "tok", transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (400, BadRequest, False),
        (401, Unauthorized, False),
        (404, NotFound, False),
        (409, Conflict, False),
        (412, PreconditionFailed, False),
        (413, BadRequest, False),
        (422, InvalidDocument, False),
        (429, Unavailable, True),
        (500, Unavailable, True),
        (503, Unavailable, True),
    ],
)
def test_status_to_error(status: int, cls: type, retryable: bool) -> None:
    body = {
        "detail": "the server's own words",
        "code": "x",
        "problems": [
            {
                "path": "os_settings.theme",
                "message": "bad",
                "text": "body.yaml:2:3: os_settings.theme: bad",
            }
        ],
    }
    with client_answering(status, body, {"Retry-After": "3"}) as api, pytest.raises(cls) as err:
        api.whoami()
    assert err.value.retryable is retryable and err.value.status == status
    assert "the server's own words" in str(err.value) and "os_settings.theme: bad" in str(err.value)
    assert err.value.retry_after == 3.0


def test_non_json_errors_and_bad_answers() -> None:
    with (
        client_answering(502, b"<html>bad gateway</html>") as api,
        pytest.raises(Unavailable, match="HTTP 502"),
    ):
        api.whoami()
    with (
        client_answering(200, {"unexpected": True}) as api,
        pytest.raises(ProtocolError, match="WhoAmI"),
    ):
        api.whoami()


def test_network_failures_are_retryable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with (
        Client("http://mien.test", transport=httpx.MockTransport(refuse)) as api,
        pytest.raises(ConnectError) as err,
    ):
        api.health()
    assert err.value.retryable and "cannot reach" in str(err.value)


def test_bad_arguments_fail_before_sending() -> None:
    sent = []
    with Client(
        "http://mien.test",
        transport=httpx.MockTransport(lambda r: sent.append(r) or httpx.Response(200)),
    ) as api:
        with pytest.raises(BadRequest, match="name"):
            api.create_binding("bad name!", {}, "web")
        with pytest.raises(BadRequest, match="timeout"):
            api.run_command("i-1", "ls", timeout=-1)
    assert sent == []


def test_long_poll_request_and_204() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    with AgentClient(
        "mien.test:8470/api/v1/", "agent-token", transport=httpx.MockTransport(handler)
    ) as api:
        assert api.desired("abc", wait=25) is None
    request = seen[0]
    assert request.url.path == "/api/v1/agent/desired"
    assert dict(request.url.params) == {"known": "abc", "wait": "25"}
    assert request.headers["authorization"] == "Bearer agent-token"
    assert request.extensions["timeout"]["read"] >= 25


def test_backoff_is_jittered_and_capped() -> None:
    delays = [backoff(n, base=1, cap=8) for n in range(1, 10) for _ in range(50)]
    assert all(0 <= d <= 8 for d in delays) and len(set(delays)) > 100
    assert backoff(1, retry_after=5) >= 5


def test_reconnect_schedule_is_fast_capped_and_spread() -> None:
    """After a restart a whole fleet is back within seconds, not in one burst: each delay is
    uniform under a ceiling that doubles from a quarter second to a cap of a few seconds."""
    random.seed(7)
    for attempt in range(1, 200):
        ceiling = min(4.0, 0.25 * 2 ** (attempt - 1))
        draws = [backoff(attempt) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in draws), attempt
        assert max(draws) > ceiling * 0.9  # the whole window is used
    assert backoff(1) <= 0.25 and backoff(3) <= 1.0

    # 10,000 agents that lost the server long ago: when it is back, the next try of each is
    # within the cap, and no half second gets much more than its share of them.
    fleet = sorted(backoff(50) for _ in range(10_000))
    assert fleet[-1] <= 4.0
    buckets = [0] * 8
    for delay in fleet:
        buckets[min(int(delay / 0.5), 7)] += 1
    assert max(buckets) < 1.2 * 10_000 / 8, buckets

    # A server that asks for patience gets it (Retry-After, plus up to half again).
    assert all(5.0 <= backoff(1, retry_after=5) <= 7.5 for _ in range(100))


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("host:8470", "http://host:8470"),
        ("https://h/api/v1/", "https://h"),
        (" http://h:1 ", "http://h:1"),
    ],
)
def test_base_url(given: str, url: str) -> None:
    assert base_url(given) == url
