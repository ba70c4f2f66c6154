"""The data sources as the loop uses them: polled when due (each poll an event), their
copies saved in ``state.db``, and given to the rules as ``data.NAME`` entries (the value,
its age, and when it last changed); plus the status file ``mien top`` reads.

Used by :mod:`mien.agent.adapt.loop`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from mien.agent.adapt.ledger import Ledger
from mien.agent.locking import STATE_DIR

STATUS_FILE = f"{STATE_DIR}/adapt-status.json"


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


class Feeds:
    """One persona's data sources, with when each payload last changed."""

    def __init__(self, sources: Any, ledger: Ledger, persona: str) -> None:
        self.sources = sources
        self.ledger = ledger
        self.key = f"sources:{persona}"
        self.persona = persona
        saved = ledger.get(self.key + ":changed")
        self.changed: dict[str, list[Any]] = dict(saved) if isinstance(saved, dict) else {}

    def poll_due(self, now: float) -> None:
        polled = False
        for name in self.sources.due(now):
            polled = True
            copy = self.sources.poll(name, now)
            error = getattr(copy, "last_error", None)
            value = getattr(copy, "value", None)
            digest = _digest(value)
            seen = self.changed.get(name)
            changed = error is None and (seen is None or seen[0] != digest)
            if changed:
                self.changed[name] = [digest, now]
            self.ledger.event(
                "source.failed" if error else "source.fetched",
                persona=self.persona,
                source=name,
                error=error,
                changed=changed,
                age=_age(copy, now),
            )
        if polled:
            self.ledger.put(
                **{self.key: self.sources.to_json(), self.key + ":changed": self.changed}
            )

    def entries(self, now: float) -> dict[str, Any]:
        """``data.NAME`` for the rules and the executors: sources with a good copy."""
        from mien.rules import source_data

        out: dict[str, Any] = {}
        for name, copy in self.sources.current().items():
            if getattr(copy, "fetched_at", None) is None:
                continue
            changed_at = (self.changed.get(name) or [None, copy.fetched_at])[1]
            out[name] = source_data(
                copy.value, age=_age(copy, now) or 0.0, changed_at=float(changed_at)
            )
        return out

    def status(self) -> dict[str, Any]:
        """The sources for ``mien top``, without their payloads."""
        with contextlib.suppress(Exception):
            data = self.sources.to_json()
            rows = data.get("sources", {}) if isinstance(data, dict) else {}
            return {n: {k: v for k, v in r.items() if k != "value"} for n, r in rows.items()}
        return {}

    def close(self) -> None:
        close = getattr(self.sources, "close", None)
        if close is not None:
            close()


class NoSources:
    """The sources of a persona that has none."""

    def due(self, now: float) -> list[str]:
        return []

    def current(self) -> dict[str, Any]:
        return {}

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "sources": {}}


def _age(copy: Any, now: float) -> float | None:
    age = getattr(copy, "age", None)
    return age(now) if callable(age) else None


def write_status(root: Path, document: dict[str, Any]) -> None:
    """What ``mien top`` shows between ticks (no fsync: it is rewritten every tick)."""
    path = root / STATUS_FILE
    tmp = path.with_name(".adapt-status.json.tmp")
    with contextlib.suppress(OSError):
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o640)
        with os.fdopen(fd, "w") as fh:
            json.dump(document, fh, default=str)
        os.replace(tmp, path)
