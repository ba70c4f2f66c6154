"""How much of a persona is in effect: the counts and the one line the CLI and dashboard
show, and the bounds of what an agent may report of its machine."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from mien.protocol import AgentReport
from mien.protocol.status import MAX_ACTIONS, Effect, MachineStatus, effect_of, fully_in_sync


def outcomes(**counts: int) -> list[dict[str, Any]]:
    out = []
    for status, n in counts.items():
        out += [{"setting": f"{status}.{i}", "status": status} for i in range(n)]
    return out


def test_partly_in_effect_counts_each_outcome_and_says_so() -> None:
    effect = effect_of(outcomes(applied=10, stored=3, failed=1))
    assert (effect.state, effect.total, effect.applied) == ("partial", 14, 10)
    assert (effect.pending, effect.stored, effect.failed) == (0, 3, 1)
    assert (
        effect.summary
        == "partly in effect: 10 of 14 settings applied; 3 stored, not applied; 1 failed"
    )


def test_every_setting_applied_is_full_and_none_applied_is_none() -> None:
    full = effect_of(outcomes(applied=4))
    assert (full.state, full.total, full.summary) == (
        "full",
        4,
        "in effect: all 4 settings applied",
    )
    none = effect_of(outcomes(pending=2, stored=1))
    assert none.state == "none"
    assert (
        none.summary == "not in effect: 0 of 3 settings applied; 2 pending; 1 stored, not applied"
    )


def test_no_outcomes_reported_is_unknown_and_no_persona_is_none() -> None:
    assert effect_of(None).state == "unknown"
    assert effect_of([]).state == "full"  # a persona with no settings is all in effect
    assert effect_of(outcomes(applied=2), running=False).state == "none"


def test_an_unknown_status_counts_as_failed_never_as_applied() -> None:
    effect = effect_of([{"setting": "a", "status": "applied"}, {"setting": "b", "status": "??"}])
    assert (effect.applied, effect.failed, effect.state) == (1, 1, "partial")


def test_in_sync_needs_the_content_applied_and_every_setting_in_effect() -> None:
    partial = effect_of(outcomes(applied=1, stored=1))
    assert not fully_in_sync(True, partial)
    assert fully_in_sync(True, effect_of(outcomes(applied=2)))
    assert fully_in_sync(True, Effect(state="unknown"))  # an agent that does not say
    assert not fully_in_sync(False, effect_of(outcomes(applied=2)))


def status(**extra: Any) -> dict[str, Any]:
    return {"at": "2026-12-02T10:00:00Z", **extra}


def test_machine_status_lists_are_bounded_and_strict() -> None:
    MachineStatus.model_validate(status(actions=[]))
    action = {
        "id": 1,
        "rule": "r",
        "action": "notify",
        "status": "done",
        "at": "2026-12-02T10:00:00Z",
    }
    with pytest.raises(ValidationError, match="actions"):
        MachineStatus.model_validate(status(actions=[action] * (MAX_ACTIONS + 1)))
    with pytest.raises(ValidationError, match="phase"):
        MachineStatus.model_validate(status(rules=[{"rule": "r", "phase": "exploding"}]))
    with pytest.raises(ValidationError, match="extra"):
        MachineStatus.model_validate(status(secrets="x"))
    with pytest.raises(ValidationError, match="value"):
        MachineStatus.model_validate(
            status(customizations=[{"key": "k", "value": "x" * 5000, "source": "user"}])
        )


def test_a_report_names_its_instance_and_carries_the_status() -> None:
    report = AgentReport.model_validate(
        {"state": "applied", "instance": "vm-1", "status": status(drift=["/etc/x"])}
    )
    assert report.status is not None and report.status.drift == ["/etc/x"]
    with pytest.raises(ValidationError, match="instance"):
        AgentReport.model_validate({"state": "applied", "instance": "../other"})
