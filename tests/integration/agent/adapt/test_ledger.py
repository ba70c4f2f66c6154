"""The adaptation ledger in ``state.db``: events go to the one audit path and to a bounded
queue for the server (oldest dropped and counted); rule states are kept per persona."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mien.agent.adapt import ledger as ledger_module
from mien.agent.adapt.ledger import Ledger, events
from mien.agent.state import State


def test_events_are_audited_and_queued_and_the_queue_drops_the_oldest(
    machine: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger_module, "OUTBOX_LIMIT", 5)
    with State(machine) as state:
        book = Ledger(state)
        for i in range(8):
            book.event("action.done", persona="p", rule="r", n=i)
        queued = book.outbox()
        assert [item[3]["n"] for item in queued] == [3, 4, 5, 6, 7]
        assert book.dropped() == 3
        assert [r.detail["n"] for r in events(state)] == list(range(8))
        book.acknowledge(queued[1][0])
        assert [item[3]["n"] for item in book.outbox()] == [5, 6, 7]
    lines = (machine / "var/log/mien/audit.jsonl").read_text().splitlines()
    logged = [json.loads(x) for x in lines]
    assert [x["n"] for x in logged if x["event"] == "adapt.action.done"] == list(range(8))
    assert {x["actor"] for x in logged} == {"agent:adapt"}


def test_rule_states_are_kept_per_persona(machine: Path) -> None:
    with State(machine) as state:
        book = Ledger(state)
        book.save_rule_states("a", {"r": '{"phase":"pending","since":5.0}'})
        book.save_rule_states("b", {"r": '{"phase":"firing","since":7.0}'})
        book.save_rule_states("a", {"r": '{"phase":"firing","since":9.0}'})
    with State(machine) as state:
        assert Ledger(state).rule_states("a") == {"r": '{"phase":"firing","since":9.0}'}
        assert Ledger(state).rule_states("b") == {"r": '{"phase":"firing","since":7.0}'}


def test_mien_events_follow_prints_new_events_as_they_come(machine: Path) -> None:
    import subprocess
    import time

    from tests.support import mien_command

    with State(machine) as state:
        Ledger(state).event("rule.pending", persona="p", rule="old")
    proc = subprocess.Popen(
        [*mien_command(), "events", "--root", str(machine), "--follow", "--output", "json"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["rule"] == "old"
        time.sleep(0.5)
        with State(machine) as state:
            Ledger(state).event("rule.firing", persona="p", rule="new")
        line = json.loads(proc.stdout.readline())
        assert line["event"] == "rule.firing" and line["rule"] == "new"
    finally:
        proc.kill()
        proc.wait()


def test_queued_events_name_the_server_version_of_their_persona(machine: Path) -> None:
    with State(machine) as state:
        book = Ledger(state)
        book.event("rule.firing", persona="web", rule="r")  # nothing from the server yet
        state.set_meta("server_persona", "web")
        state.set_meta("server_version", "3")
        book.event("rule.firing", persona="web", rule="r")
        book.event("rule.firing", persona="local", rule="r")  # not the server's persona
        book.event("persona.failed", persona=None)
        sent = [item[3] for item in book.outbox()]
    assert [d["persona_version"] for d in sent] == [None, 3, None, None]
    assert [d["persona"] for d in sent] == ["web", "web", "local", None]
