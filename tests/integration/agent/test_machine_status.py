"""What the agent reports of its machine, read from a real ``state.db``: customizations
(values cut), rule phases from the adaptation ledger, the newest actions first and bounded,
drift left out (not the status) when it cannot be read, and a digest that ignores the time."""

from __future__ import annotations

from pathlib import Path

from mien.agent import machine_status
from mien.agent.adapt.ledger import Ledger
from mien.agent.state import State
from mien.protocol.status import MAX_ACTIONS, MAX_VALUE, MachineStatus


def test_status_reads_customizations_rules_and_actions(machine: Path) -> None:
    with State(machine) as state:
        with state.transaction():
            state.set_meta("active", "web")
            state.set_customization("os_settings.theme", "dark", "user")
            state.set_customization("application_settings.big", "x" * 5000, "captured", "/etc/big")
        book = Ledger(state)
        book.save_rule_states(
            "web",
            {"hot": '{"phase":"firing","since":1764669600.0}', "bad": "not json"},
        )
        book.save_rule_states("other", {"elsewhere": '{"phase":"pending","since":5.0}'})
        for i in range(MAX_ACTIONS + 5):
            book.add_change("web", "hot", "notify", {"n": i}, 1764669600.0 + i)

        def unreadable() -> list[str]:
            raise OSError("the root is busy")

        status = machine_status.collect(state, unreadable)
        again = machine_status.collect(state, lambda: [])
    parsed = MachineStatus.model_validate(status)  # what the server will take
    assert parsed.persona == "web"
    assert [(c.key, c.source) for c in parsed.customizations] == [
        ("application_settings.big", "captured"),
        ("os_settings.theme", "user"),
    ]
    big = parsed.customizations[0]
    assert big.origin == "/etc/big" and len(big.value) <= MAX_VALUE + 2 and big.value.endswith("…")
    assert parsed.customizations[1].value == '"dark"'
    # A damaged stored state is left out (the loop starts that rule over); other personas'
    # rules are not this one's.
    assert [(r.rule, r.phase) for r in parsed.rules] == [("hot", "firing")]
    assert len(parsed.actions) == MAX_ACTIONS
    assert parsed.actions[0].id > parsed.actions[-1].id  # newest first
    assert parsed.drift == [] and parsed.drift_total == 0
    assert machine_status.digest(status) == machine_status.digest({**again, "at": "later"})


def test_drift_is_bounded_with_its_total(machine: Path) -> None:
    paths = [f"/etc/f{i:04d}" for i in range(250)]
    with State(machine) as state:
        status = machine_status.collect(state, lambda: paths)
    parsed = MachineStatus.model_validate(status)
    assert len(parsed.drift) == 200 and parsed.drift_total == 250
    assert parsed.persona is None and parsed.rules == [] and parsed.actions == []
