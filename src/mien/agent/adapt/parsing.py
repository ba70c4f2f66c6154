"""Pure parsing for the telemetry collectors: access-log lines, auth-log lines, percentiles.

No I/O here: :mod:`mien.agent.adapt.collectors` reads the bytes (capped, without following
links) and hands the lines to these functions; the unit tests drive them directly.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

# host ident user [date] "request" status bytes ["referer" "agent"] [request time]
_ACCESS = re.compile(
    r'^\S+ \S+ \S+ \[[^\]]*\] "(?:[^"\\]|\\.)*" (?P<status>\d{3}) (?:\d+|-)'
    r'(?: "(?:[^"\\]|\\.)*" "(?:[^"\\]|\\.)*")?'
    r"(?P<rest>.*)$"
)
_TRAILING_NUMBER = re.compile(r"\s(\d+(?:\.\d+)?)\s*$")

_JSON_STATUS = ("status", "status_code", "code")
# Field name → factor to milliseconds.
_JSON_DURATION = (
    ("duration_ms", 1.0),
    ("latency_ms", 1.0),
    ("response_time_ms", 1.0),
    ("request_time", 1000.0),
    ("duration", 1000.0),
    ("latency", 1000.0),
)


@dataclass(frozen=True, slots=True)
class Request:
    """One request from an access log: its status and, when the log has it, its time."""

    status: int
    latency_ms: float | None


def parse_access_line(line: str, fmt: str) -> Request | None:
    """A request from one access-log line (``common``, ``combined`` or ``jsonl``); None when
    the line is not one.

    In common/combined lines a trailing number after the standard fields is the request
    time: with a decimal point it is seconds (nginx ``$request_time``), without one
    microseconds (Apache ``%D``). In JSON lines the status is ``status`` (or
    ``status_code``, ``code``) and the time ``duration_ms``, ``latency_ms``,
    ``response_time_ms`` (milliseconds) or ``request_time``, ``duration``, ``latency``
    (seconds)."""
    if fmt == "jsonl":
        return _parse_json_line(line)
    match = _ACCESS.match(line.rstrip("\r\n"))
    if match is None:
        return None
    latency = None
    number = _TRAILING_NUMBER.search(match.group("rest"))
    if number is not None:
        text = number.group(1)
        latency = float(text) * 1000.0 if "." in text else int(text) / 1000.0
    return Request(int(match.group("status")), latency)


def _parse_json_line(line: str) -> Request | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    status = next((value[k] for k in _JSON_STATUS if k in value), None)
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        return None
    latency = None
    for key, factor in _JSON_DURATION:
        raw = value.get(key)
        if isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw):
            latency = float(raw) * factor
            break
    return Request(status, latency)


def percentile(ordered: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) of sorted values, nearest-rank: the smallest value
    with at least ``p`` % of the values at or below it. ``ordered`` must not be empty."""
    if not ordered:
        raise ValueError("percentile of no values")
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


# --- the auth log ----------------------------------------------------------------------

_PROGRAM = re.compile(r"\b(sshd|sudo|login|su)(?:\[\d+\])?:\s")
_FAILURE = {
    "sshd": re.compile(
        r"Failed \S+ for|Invalid user|authentication failure|maximum authentication"
    ),
    "sudo": re.compile(r"incorrect password attempt|authentication failure|NOT in sudoers"),
    "su": re.compile(r"FAILED su|authentication failure"),
    "login": re.compile(r"FAILED LOGIN|authentication failure"),
}
_SUCCESS = {
    "sshd": re.compile(r"Accepted \S+ for"),
    "sudo": re.compile(r"COMMAND="),
    "su": re.compile(r"Successful su|\(to \S+\) \S+ on"),
    "login": re.compile(r"LOGIN ON|ROOT LOGIN"),
}


def auth_outcome(line: str) -> str | None:
    """``"failure"``, ``"success"`` or None for one auth-log line.

    Only sshd, sudo, login and su lines count; a login is counted once (sshd's
    ``Accepted``, not the PAM session that follows it)."""
    match = _PROGRAM.search(line)
    if match is None:
        return None
    program = match.group(1)
    rest = line[match.end() :]
    if _FAILURE[program].search(rest):
        return "failure"
    if _SUCCESS[program].search(rest):
        return "success"
    return None


FIREWALL_LINE = re.compile(r"mien-block|\[UFW BLOCK\]")
"""A kernel log line of a dropped packet: mien's firewall rules log with the prefix
``mien-block``; ufw's own blocks are counted too."""


def count_findings(data: bytes) -> int:
    """The number of findings in a security scan's output: a JSON list (its length), a JSON
    object with a ``findings`` list, or else the non-empty, non-comment lines."""
    text = data.decode("utf-8", "replace")
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, list):
        return len(value)
    if isinstance(value, dict) and isinstance(value.get("findings"), list):
        return len(value["findings"])
    return sum(
        1 for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    )
