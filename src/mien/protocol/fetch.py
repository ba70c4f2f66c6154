"""One polite poll of an external data source, shared by the agent and the server.

A poll is a conditional GET (``If-None-Match`` / ``If-Modified-Since`` from the last good
answer): a 304 keeps the copy and makes it fresh again. A poll that fails — the origin
down, an error status, slower than ``timeout`` in total, larger than ``max_bytes``
(streamed and stopped there), not UTF-8, not JSON for ``parse: json`` — raises
:class:`FetchError`; the caller keeps the last good copy and :func:`settle` schedules the
next try with exponential backoff: after ``k`` failures in a row it comes ``every × 2^k``
later, at most ``max(every, 1h)``, always with ±10 % jitter so a fleet does not poll in step.

Used by the agent (:mod:`mien.agent.adapt.sources`, a persona's own sources) and by the
server (:mod:`mien.server.sources`, the fleet-wide ones it fetches once for every agent).
Times are wall-clock seconds.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx

MAX_BYTES = 1024 * 1024
"""The largest payload a source may send (1 MiB); a larger one is an error."""
BACKOFF_CAP = 3600.0
JITTER = 0.10


@dataclass
class DataCopy:
    """The last good copy of a source and the state of its polling. ``via`` says who was
    asked: ``origin`` (the source's own URL) or ``server`` (the mien server's copy of a
    fleet-wide source); ``etag`` and ``last_modified`` are that party's validators."""

    value: Any = None
    fetched_at: float | None = None
    last_error: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    failures: int = 0
    next_at: float = 0.0
    checked_at: float | None = None
    via: str = "origin"

    def age(self, now: float) -> float | None:
        """Seconds since the copy was last confirmed good (None: no copy yet)."""
        return None if self.fetched_at is None else max(0.0, now - self.fetched_at)


class FetchError(Exception):
    """Why one poll did not give a new copy; ``retry_after``: the answering server's hint
    of when to ask again (sooner than the backoff would)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def parse_payload(raw: bytes, parse: str) -> Any:
    """The value of a payload: ``lines`` (non-empty lines not starting with ``#``, stripped),
    ``json`` or ``text``; :class:`FetchError` if it is not UTF-8 or not JSON."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FetchError(f"the payload is not UTF-8 (byte {exc.start})") from None
    if parse == "json":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise FetchError(f"the payload is not JSON: {exc}") from None
    if parse == "lines":
        stripped = (line.strip() for line in text.splitlines())
        return [line for line in stripped if line and not line.startswith("#")]
    return text


def settle(copy: DataCopy, every: float, now: float, error: str | None, rng: random.Random) -> None:
    """Record a poll's outcome at ``now`` and when the next one is due."""
    copy.checked_at = now
    if error is not None:
        copy.failures += 1
        copy.last_error = error
        delay = min(every * 2.0**copy.failures, max(every, BACKOFF_CAP))
    else:
        copy.failures = 0
        copy.last_error = None
        delay = every
    copy.next_at = now + delay * rng.uniform(1.0 - JITTER, 1.0 + JITTER)


def fetch(
    client: httpx.Client,
    url: str,
    parse: str,
    timeout: float,
    copy: DataCopy,
    now: float,
    *,
    max_bytes: int = MAX_BYTES,
) -> bool:
    """One conditional GET of ``url`` into ``copy``: True if the payload is new, False if
    the origin answered 304 (the copy is confirmed good at ``now``). Raises
    :class:`FetchError` and leaves ``copy`` as it was when the poll fails."""
    headers = {"Accept-Encoding": "identity"}
    if copy.fetched_at is not None:
        if copy.etag:
            headers["If-None-Match"] = copy.etag
        if copy.last_modified:
            headers["If-Modified-Since"] = copy.last_modified
    start = time.monotonic()
    try:
        with client.stream("GET", url, headers=headers, timeout=timeout) as resp:
            if resp.status_code == 304 and copy.fetched_at is not None:
                copy.fetched_at = now
                return False
            if resp.status_code != 200:
                where = resp.headers.get("location")
                extra = f" (to {where})" if where else ""
                raise FetchError(f"HTTP {resp.status_code}{extra}")
            declared = resp.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(too_big(int(declared), max_bytes))
            chunks: list[bytes] = []
            size = 0
            for chunk in resp.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(too_big(size, max_bytes, more=True))
                if time.monotonic() - start > timeout:
                    raise FetchError(f"timed out after {timeout:g}s")
                chunks.append(chunk)
            etag = resp.headers.get("etag")
            modified = resp.headers.get("last-modified")
    except httpx.TimeoutException:
        raise FetchError(f"timed out after {timeout:g}s") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"{type(exc).__name__}: {exc}") from None
    copy.value = parse_payload(b"".join(chunks), parse)
    copy.fetched_at = now
    copy.etag = etag
    copy.last_modified = modified
    return True


def too_big(size: int, limit: int, more: bool = False) -> str:
    shown = f"more than {limit}" if more else str(size)
    return f"the payload is {shown} bytes; the limit is {limit}"
