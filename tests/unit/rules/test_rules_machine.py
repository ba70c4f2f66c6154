"""The rule state machine: pending, firing, hysteresis, keep_firing_for, restarts, unknown."""

from __future__ import annotations

from typing import Any

from mien.rules import Inputs, RuleSet, RuleState, Step
from mien.spec.models import Persona

SET = {"action": "set_setting", "key": "os_settings.power_profile", "value": "performance"}


def ruleset(*rules: dict[str, Any], **persona: Any) -> RuleSet:
    body: dict[str, Any] = {"name": "p", "trust_levels": {"file_system_modification": "low"}}
    body.update(persona)
    body["adaptation_rules"] = [{"then": [SET], **r} for r in rules]
    return RuleSet.compile(Persona.model_validate(body))


class Driver:
    """Steps a rule set over (time, metrics) samples, keeping states as the agent does."""

    def __init__(self, rs: RuleSet, states: dict[str, RuleState] | None = None) -> None:
        self.rs = rs
        self.states: dict[str, RuleState] = states or {}
        self.log: list[tuple[float, str, str, str]] = []

    def at(self, now: float, **metrics: float) -> Step:
        step = self.rs.step(Inputs(metrics=metrics, now=now), self.states)
        self.states = step.states
        self.log += [(t.at, t.rule, t.from_, t.to) for t in step.transitions]
        return step

    def phase(self, rule: str = "r") -> str:
        return self.states[rule].phase


def test_pending_then_firing_after_for() -> None:
    d = Driver(ruleset({"name": "r", "when": "metrics.cpu_percent > 40.0", "for": "5s"}))
    assert d.at(0, cpu_percent=50).fire == []
    assert d.phase() == "pending" and d.states["r"].since == 0
    assert d.at(4.9, cpu_percent=50).fire == []
    step = d.at(5, cpu_percent=50)
    assert d.phase() == "firing"
    assert [(i.rule, i.name, i.runs) for i in step.fire] == [("r", "set_setting", True)]
    assert step.fire[0].params == {"key": "os_settings.power_profile", "value": "performance"}
    assert d.log == [(0, "r", "inactive", "pending"), (5, "r", "pending", "firing")]
    # Firing goes on without firing again.
    assert d.at(6, cpu_percent=50).fire == []


def test_no_for_fires_at_once_and_a_dip_resets_pending() -> None:
    d = Driver(ruleset({"name": "r", "when": "metrics.cpu_percent > 40.0"}))
    assert len(d.at(0, cpu_percent=50).fire) == 1
    assert d.log == [(0, "r", "inactive", "firing")]
    d2 = Driver(ruleset({"name": "r", "when": "metrics.cpu_percent > 40.0", "for": "5s"}))
    d2.at(0, cpu_percent=50)
    d2.at(3, cpu_percent=10)
    assert d2.phase() == "inactive"
    d2.at(4, cpu_percent=50)
    assert d2.at(8, cpu_percent=50).fire == []  # pending again since 4, not since 0
    assert len(d2.at(9, cpu_percent=50).fire) == 1


def test_restart_mid_for_keeps_the_pending_time() -> None:
    rs = ruleset({"name": "r", "when": "metrics.cpu_percent > 40.0", "for": "5s"})
    first = Driver(rs)
    first.at(100, cpu_percent=50)
    first.at(102, cpu_percent=50)
    stored = {k: v.to_json() for k, v in first.states.items()}
    # A new process: a freshly compiled rule set and states read back from JSON.
    again = Driver(
        ruleset({"name": "r", "when": "metrics.cpu_percent > 40.0", "for": "5s"}),
        {k: RuleState.from_json(v) for k, v in stored.items()},
    )
    assert again.at(104.9, cpu_percent=50).fire == []
    assert again.states["r"].since == 100
    assert len(again.at(105, cpu_percent=50).fire) == 1


def test_hysteresis_clear_when_and_clear_for() -> None:
    d = Driver(
        ruleset(
            {
                "name": "r",
                "when": "metrics.cpu_percent > 80.0",
                "clear_when": "metrics.cpu_percent < 60.0",
                "clear_for": "10s",
            }
        )
    )
    d.at(0, cpu_percent=90)
    d.at(1, cpu_percent=70)  # between the thresholds: still firing
    assert d.phase() == "firing"
    d.at(2, cpu_percent=50)
    assert d.phase() == "resolving"
    d.at(5, cpu_percent=70)  # clear stops holding: back to firing, no new intents
    assert d.phase() == "firing"
    d.at(6, cpu_percent=50)
    step = d.at(15, cpu_percent=50)
    assert step.resolved == [] and d.phase() == "resolving"
    step = d.at(16, cpu_percent=50)
    assert step.resolved == ["r"] and d.phase() == "inactive"
    assert [(f, t) for _, _, f, t in d.log] == [
        ("inactive", "firing"),
        ("firing", "resolving"),
        ("resolving", "firing"),
        ("firing", "resolving"),
        ("resolving", "inactive"),
    ]


def test_without_clear_for_it_resolves_at_once() -> None:
    d = Driver(ruleset({"name": "r", "when": "metrics.cpu_percent > 80.0"}))
    d.at(0, cpu_percent=90)
    step = d.at(1, cpu_percent=10)
    assert step.resolved == ["r"] and d.phase() == "inactive"


def test_keep_firing_for() -> None:
    d = Driver(
        ruleset({"name": "r", "when": "metrics.cpu_percent > 80.0", "keep_firing_for": "30s"})
    )
    d.at(0, cpu_percent=90)
    d.at(10, cpu_percent=10)
    assert d.phase() == "firing" and d.states["r"].keep_until == 40
    d.at(20, cpu_percent=90)  # holds again: the grace is reset
    assert d.states["r"].keep_until is None
    d.at(30, cpu_percent=10)
    assert d.at(59, cpu_percent=10).resolved == []
    assert d.at(60, cpu_percent=10).resolved == ["r"]


def test_unknown_keeps_the_phase_and_is_shown() -> None:
    d = Driver(ruleset({"name": "r", "when": "metrics.cpu_percent > 40.0", "for": "5s"}))
    d.at(0, cpu_percent=50)
    step = d.at(3)  # the metric is missing
    assert d.phase() == "pending" and d.states["r"].truth == "unknown"
    assert step.unknown == {"r": ("metrics.cpu_percent missing",)}
    assert "unknown" in step.notes["r"]
    d.at(5, cpu_percent=50)
    assert d.phase() == "firing"
    d.at(6)  # unknown while firing: still firing, nothing resolved
    assert d.phase() == "firing"


def test_unknown_in_cel_conditions_and_cel_logic() -> None:
    rs = ruleset(
        {"name": "a", "when": "has(events.x) || metrics.cpu_percent > 40.0"},
        {"name": "b", "when": "!(metrics.memory_percent < 10.0)"},
        {"name": "c", "when": "metrics.cpu_percent > 40.0 || metrics.memory_percent > 40.0"},
        {"name": "d", "when": "size(events) > 0 || metrics.cpu_percent > 40.0"},  # CEL only
        {"name": "e", "when": "metrics.cpu_percent > 1.0 && metrics.swap_percent > 1.0"},
    )
    assert rs.by_name["a"].when is not None and rs.by_name["a"].when.is_fast
    assert rs.by_name["d"].when is not None and not rs.by_name["d"].when.is_fast
    step = rs.step(Inputs(metrics={"memory_percent": 50.0}, now=0), {})
    assert step.states["a"].truth == "unknown"
    assert step.unknown["a"] == ("metrics.cpu_percent missing",)
    assert step.states["b"].truth == "true"
    assert step.states["c"].truth == "true"  # true || unknown is true
    assert step.unknown["d"] == ("cpu_percent missing",)
    assert step.unknown["e"] == ("metrics.cpu_percent missing", "metrics.swap_percent missing")
    step = rs.step(Inputs(metrics={"cpu_percent": "hot"}, now=0), {})  # type: ignore[dict-item]
    for name in "acd":
        assert step.states[name].truth == "unknown"
        assert "wrong type" in step.unknown[name][0]
    step = rs.step(Inputs(metrics={"cpu_percent": 0.5, "swap_percent": 9.0}, now=0), {})
    assert step.states["e"].truth == "false"


def test_state_json_round_trip_and_bad_json() -> None:
    s = RuleState("pending", 12.5, "true", None, None, {"set_setting:x": 99.0}, None)
    assert RuleState.from_json(s.to_json()) == s
    for bad in ("[]", "{", '{"phase": "burning"}', '{"since": "yesterday"}', '{"cooldown": 3}'):
        try:
            RuleState.from_json(bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad!r}")


def test_rules_without_names_are_numbered() -> None:
    rs = ruleset({"when": "metrics.cpu_percent > 1.0"}, {"name": "x", "when": "true"})
    assert rs.names() == ["rule-1", "x"]
