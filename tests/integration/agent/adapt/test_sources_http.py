"""External data sources against a real HTTP server on loopback: changes, 304, errors, slow,
oversized, not UTF-8, not JSON, backoff, and the last good copy surviving a restart."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mien.agent.adapt.sources import BACKOFF_CAP, DataSources, FetchError, parse_payload
from mien.spec.models import Persona
from tests.feed_origin import Feed, serve_feed
from tests.integration.agent.adapt.conftest import Loop
from tests.support import run_mien


@pytest.fixture
def feed() -> Iterator[tuple[Feed, int]]:
    with serve_feed() as state:
        yield state, state.port


def persona(port: int) -> Persona:
    return Persona.model_validate(
        {
            "external_data_sources": [
                {
                    "name": "feed",
                    "url": f"http://127.0.0.1:{port}/feed",
                    "every": "1m",
                    "timeout": "1s",
                },
                {
                    "url": f"http://127.0.0.1:{port}/doc",
                    "every": "10s",
                    "parse": "json",
                    "timeout": "1s",
                },
            ]
        }
    )


def test_polls_with_conditional_requests_and_keeps_copies(
    feed: tuple[Feed, int], tmp_path: Path
) -> None:
    state, port = feed
    ds = DataSources(persona(port), tmp_path, rng=random.Random(7))
    assert ds.due(0.0) == ["feed", "source2"]
    copy = ds.poll("feed", 1000.0)
    assert copy.value == ["10.0.0.1", "10.0.0.2"]
    assert copy.etag == '"v1"' and copy.last_error is None and copy.fetched_at == 1000.0
    assert 1054.0 <= copy.next_at <= 1066.0  # every 1m, ±10 %
    assert ds.due(1001.0) == ["source2"]
    assert ds.poll("source2", 1000.0).value == {"v": '"v1"'}

    copy = ds.poll("feed", 1060.0)
    assert state.requests[-1]["if-none-match"] == '"v1"'
    assert state.requests[-1]["if-modified-since"] == "Wed, 02 Dec 2026 03:00:00 GMT"
    assert copy.value == ["10.0.0.1", "10.0.0.2"] and copy.age(1070.0) == 10.0  # 304: fresh

    state.body, state.etag = b"10.0.0.3\n", '"v2"'
    assert ds.poll("feed", 1120.0).value == ["10.0.0.3"]
    assert ds.current()["feed"].etag == '"v2"'


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("500", "HTTP 500"),
        ("slow", "timed out after 1s"),
        ("drip", "timed out after 1s"),
        ("big", "the payload is 1200000 bytes; the limit is 1048576"),
        ("bigstream", "more than 1048576 bytes"),
        ("notutf8", "not UTF-8"),
    ],
)
def test_a_bad_fetch_keeps_the_last_good_copy_and_backs_off(
    feed: tuple[Feed, int], tmp_path: Path, mode: str, error: str
) -> None:
    state, port = feed
    ds = DataSources(persona(port), tmp_path, rng=random.Random(1))
    ds.poll("feed", 0.0)
    state.mode = mode
    start = time.monotonic()
    copy = ds.poll("feed", 100.0)
    assert time.monotonic() - start < 2.0  # the timeout holds, also for a dripping body
    assert error in (copy.last_error or "")
    assert copy.value == ["10.0.0.1", "10.0.0.2"] and copy.fetched_at == 0.0
    assert copy.failures == 1 and 108.0 <= copy.next_at - 100.0 <= 132.0  # 2 × 1m ± 10 %
    copy = ds.poll("feed", 300.0)
    assert copy.failures == 2 and 216.0 <= copy.next_at - 300.0 <= 264.0
    state.mode = "ok"
    copy = ds.poll("feed", 600.0)
    assert copy.failures == 0 and copy.last_error is None and copy.fetched_at == 600.0


def test_not_json_is_an_error_for_a_json_source(feed: tuple[Feed, int], tmp_path: Path) -> None:
    state, port = feed
    ds = DataSources(persona(port), tmp_path)
    assert ds.poll("source2", 0.0).value == {"v": '"v1"'}
    state.mode = "notjson"
    state.etag = '"v9"'
    copy = ds.poll("source2", 20.0)
    assert "not JSON" in (copy.last_error or "") and copy.value == {"v": '"v1"'}


def test_backoff_is_capped(feed: tuple[Feed, int], tmp_path: Path) -> None:
    state, port = feed
    state.mode = "500"
    ds = DataSources(persona(port), tmp_path)
    now = 0.0
    for _ in range(12):
        copy = ds.poll("feed", now)
        assert copy.next_at - now <= BACKOFF_CAP * 1.1
        now = copy.next_at
    assert copy.failures == 12 and copy.value is None and copy.age(now) is None


def test_the_last_good_copy_survives_a_restart_with_its_true_age(
    feed: tuple[Feed, int], tmp_path: Path
) -> None:
    state, port = feed
    ds = DataSources(persona(port), tmp_path)
    ds.poll("feed", 1000.0)
    saved = json.loads(json.dumps(ds.to_json()))
    again = DataSources.from_json(persona(port), tmp_path, saved)
    copy = again.current()["feed"]
    assert copy.value == ["10.0.0.1", "10.0.0.2"] and copy.age(4600.0) == 3600.0
    assert again.due(1001.0) == ["source2"]  # the next poll time is kept too
    again.poll("feed", 5000.0)
    assert state.requests[-1]["if-none-match"] == '"v1"'
    # A source whose URL changed starts afresh.
    moved = persona(port).model_copy(deep=True)
    moved.external_data_sources[0].url = f"http://127.0.0.1:{port}/elsewhere"
    assert DataSources.from_json(moved, tmp_path, saved).current()["feed"].value is None
    assert DataSources.from_json(persona(port), tmp_path, {"sources": {"feed": {"failures": "x"}}})


def test_parse_payload() -> None:
    assert parse_payload(b"a\n # c\n#d\n\n b \n", "lines") == ["a", "b"]
    assert parse_payload(b"[1]", "json") == [1]
    assert parse_payload("caf\u00e9".encode(), "text") == "caf\u00e9"
    with pytest.raises(FetchError, match="not UTF-8"):
        parse_payload(b"\xff", "text")


def test_a_server_that_is_down_is_an_error(tmp_path: Path) -> None:
    import socket

    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    ds = DataSources(persona(port), tmp_path)
    copy = ds.poll("feed", 0.0)
    assert copy.last_error is not None and "ConnectError" in copy.last_error
    assert copy.value is None and copy.failures == 1
    ds.close()


FLEET_PERSONA = """\
name: guarded
external_data_sources:
  - name: blocklist
    url: http://127.0.0.1:{port}/feed
    every: 10s
    fleet: true
"""


def test_without_a_server_a_fleet_wide_source_is_fetched_directly_and_said_so(
    feed: tuple[Feed, int], loop: Callable[..., Loop]
) -> None:
    state, port = feed
    run = loop(FLEET_PERSONA.format(port=port), real_sources=True)
    run.tick()
    assert len(state.requests) == 1 and state.requests[0]["path"] == "/feed"
    feeds = run.adaptation.feeds
    assert feeds is not None
    assert feeds.entries(run.now)["blocklist"]["value"] == ["10.0.0.1", "10.0.0.2"]
    assert feeds.status()["blocklist"]["via"] == "origin"
    said = run.events("source.direct")
    assert [(e["persona"], e["sources"], e["reason"]) for e in said] == [
        ("guarded", ["blocklist"], "no server")
    ]
    assert any("blocklist fetched directly" in line for line in run.lines), run.lines
    shown = run_mien("events", "--root", run.root)
    assert shown.returncode == 0 and "source.direct" in shown.stdout, shown.stdout
