"""The agent's unacknowledged reports in ``state.db``: kept across a restart, sent in order,
removed only once acknowledged, the newest about an activation replacing an older one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mien.agent.outbox import Outbox
from mien.agent.state import State
from mien.client import BadRequest, ConnectError


def report(state: str, activation: str | None, hash: str = "sha256:a") -> dict[str, Any]:
    return {"state": state, "activation_id": activation, "hash": hash}


def test_reports_wait_in_state_db_until_acknowledged(tmp_path: Path) -> None:
    logged: list[str] = []
    with State(tmp_path) as state:
        box = Outbox(state)
        box.add(report("applying", "a1"))
        box.add(report("applied", None, "sha256:old"))
        box.add(report("applied", "a1"))  # replaces the waiting "applying" of a1

        def unreachable(_r: dict[str, Any]) -> None:
            raise ConnectError("connection refused")

        with pytest.raises(ConnectError):
            box.flush(unreachable, logged.append)
        assert box.latest() == "applied sha256:a"
    with State(tmp_path) as state:  # a restart keeps them, in order
        box = Outbox(state)
        assert [(r["state"], r["activation_id"]) for r in box.pending()] == [
            ("applied", None),
            ("applied", "a1"),
        ]
        sent: list[dict[str, Any]] = []

        def refuse_first(r: dict[str, Any]) -> None:
            if r["activation_id"] is None:
                raise BadRequest("no", status=400)
            sent.append(r)

        box.flush(refuse_first, logged.append)
        assert box.pending() == [] and sent == [report("applied", "a1")]
        assert logged == ["report applied not accepted: no"]
        assert box.last_acknowledged() == box.latest() == "applied sha256:a"
