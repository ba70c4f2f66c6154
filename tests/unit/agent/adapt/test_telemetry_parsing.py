"""Access-log, auth-log and findings parsing, and percentiles (pure)."""

from __future__ import annotations

import pytest

from mien.agent.adapt.parsing import (
    FIREWALL_LINE,
    Request,
    auth_outcome,
    count_findings,
    parse_access_line,
    percentile,
)

COMMON = '10.0.0.1 - alice [02/Dec/2026:03:00:00 +0000] "GET /a HTTP/1.1" 200 512'
COMBINED = COMMON + ' "https://ref/" "curl/8.0 \\"quoted\\""'


def test_common_and_combined_lines() -> None:
    assert parse_access_line(COMMON, "common") == Request(200, None)
    assert parse_access_line(COMBINED, "combined") == Request(200, None)
    dash = COMMON.replace(" 200 512", " 503 -")
    assert parse_access_line(dash, "common") == Request(503, None)


def test_trailing_request_time_seconds_or_microseconds() -> None:
    nginx = parse_access_line(COMBINED + " 0.250", "combined")
    assert nginx is not None and nginx.latency_ms == pytest.approx(250.0)
    apache = parse_access_line(COMMON + " 1500", "common")
    assert apache is not None and apache.latency_ms == pytest.approx(1.5)


@pytest.mark.parametrize(
    "line",
    ["", "garbage", '1.2.3.4 - - [x] "GET /" abc 12', "{not json"],
)
def test_lines_that_are_not_requests(line: str) -> None:
    assert parse_access_line(line, "combined") is None
    assert parse_access_line(line, "jsonl") is None


def test_json_lines() -> None:
    assert parse_access_line('{"status": 404, "duration_ms": 12.5}', "jsonl") == Request(404, 12.5)
    assert parse_access_line('{"status_code": "500", "request_time": 0.1}', "jsonl") == Request(
        500, pytest.approx(100.0)
    )
    assert parse_access_line('{"status": 200}', "jsonl") == Request(200, None)
    assert parse_access_line('{"status": true}', "jsonl") is None
    assert parse_access_line('{"status": 999}', "jsonl") is None
    assert parse_access_line("[1, 2]", "jsonl") is None


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 99) == 99.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0], 0) == 1.0
    with pytest.raises(ValueError):
        percentile([], 50)


@pytest.mark.parametrize(
    ("line", "outcome"),
    [
        (
            "Dec  2 03:00:00 h sshd[12]: Failed password for root from 1.2.3.4 port 22 ssh2",
            "failure",
        ),
        ("Dec  2 03:00:00 h sshd[12]: Invalid user bob from 1.2.3.4 port 5", "failure"),
        ("Dec  2 03:00:00 h sshd[12]: Accepted publickey for alice from 1.2.3.4", "success"),
        ("Dec  2 03:00:00 h sshd[12]: pam_unix(sshd:session): session opened for user a", None),
        (
            "Dec  2 03:00:00 h sudo: alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/ls",
            "success",
        ),
        ("Dec  2 03:00:00 h sudo: alice : 3 incorrect password attempts ; TTY=pts/0", "failure"),
        ("Dec  2 03:00:00 h su[9]: FAILED su for root by alice", "failure"),
        ("Dec  2 03:00:00 h su[9]: Successful su for root by alice", "success"),
        ("Dec  2 03:00:00 h login[3]: FAILED LOGIN (1) on '/dev/tty1' FOR 'x'", "failure"),
        ("Dec  2 03:00:00 h CRON[5]: pam_unix(cron:session): session opened for user root", None),
        ("Dec  2 03:00:00 h app[5]: Failed password for nobody (not an auth program)", None),
    ],
)
def test_auth_lines(line: str, outcome: str | None) -> None:
    assert auth_outcome(line) == outcome


def test_firewall_lines() -> None:
    assert FIREWALL_LINE.search("kernel: [1.0] mien-block: IN=eth0 SRC=1.2.3.4")
    assert FIREWALL_LINE.search("kernel: [UFW BLOCK] IN=eth0")
    assert not FIREWALL_LINE.search("kernel: eth0 link up")


def test_findings_counts() -> None:
    assert count_findings(b'[{"id": 1}, {"id": 2}]') == 2
    assert count_findings(b'{"findings": [1, 2, 3]}') == 3
    assert count_findings(b"# scan of today\nCVE-1\n\nCVE-2\n") == 2
    assert count_findings(b"") == 0
