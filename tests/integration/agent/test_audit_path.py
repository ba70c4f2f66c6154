"""The agent's one audit path: a record reaches ``audit.jsonl`` only once the state
database has committed it, and every record names the local person the same way."""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path

import pytest

from mien.agent import audit_log, router_exec
from mien.agent.state import AUDIT_LOG, State
from tests.support import make_machine


def _log_events(root: Path) -> list[str]:
    log = root / AUDIT_LOG
    if not log.exists():
        return []
    return [json.loads(line)["event"] for line in log.read_text().splitlines()]


def test_audit_line_is_written_after_the_commit_and_never_for_a_rollback(tmp_path: Path) -> None:
    root = make_machine(tmp_path / "root")
    with State(root) as state:
        with pytest.raises(RuntimeError), state.transaction():
            state.audit("test.rolled_back")
            raise RuntimeError("abandon the transaction")
        assert _log_events(root) == []
        with state.transaction():
            state.audit("test.committed")
            # Not yet: the database may still roll this back.
            assert _log_events(root) == []
        assert _log_events(root) == ["test.committed"]
        assert [r.event for r in state.audit_records()] == ["test.committed"]
        state.audit("test.autocommit")  # outside a transaction: committed at once
        assert _log_events(root) == ["test.committed", "test.autocommit"]


def test_one_local_actor_from_the_real_uid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER", "mallory")  # the environment is the caller's to forge
    monkeypatch.delenv("SUDO_USER", raising=False)
    expected = f"local:{pwd.getpwuid(os.getuid()).pw_name}"
    assert router_exec.local_actor is audit_log.local_actor
    root = make_machine(tmp_path / "root")
    with State(root) as state:
        state.audit("test.who")
        assert state.audit_records()[0].actor == expected
    line = json.loads((root / AUDIT_LOG).read_text().splitlines()[0])
    assert line["actor"] == expected
