"""Fleet rules in mien.rules: aggregates, the fleet variables in CEL, the shared state
machine and cooldown, and compile errors with their line."""

from __future__ import annotations

import pytest

from mien.rules.fleet import FleetRule, FleetRuleSource, percentile, scope_of
from mien.spec.conditions import ConditionError

VALUES = {"cpu_percent": {"a": 80.0, "b": 90.0, "c": 40.0, "other": 1.0}}


def test_aggregates_over_the_members_only() -> None:
    scope = scope_of(["a", "b", "c", "d"], VALUES, {"high_memory": ["a", "b", "other"]})
    assert scope["avg"]["cpu_percent"] == pytest.approx(70.0)
    assert scope["min"]["cpu_percent"] == 40.0
    assert scope["max"]["cpu_percent"] == 90.0
    assert scope["sum"]["cpu_percent"] == 210.0
    assert scope["reporting"]["cpu_percent"] == 3  # d sent nothing fresh
    assert scope["p50"]["cpu_percent"] == 80.0
    assert scope["p90"]["cpu_percent"] == pytest.approx(88.0)
    assert scope["count"] == 4
    assert scope["firing"]["high_memory"] == 2
    assert scope["firing_fraction"]["high_memory"] == 0.5


def test_nothing_matching_leaves_metrics_absent() -> None:
    scope = scope_of([], VALUES, {"high_memory": ["a"]})
    assert scope["avg"] == {} and scope["count"] == 0
    assert "high_memory" not in scope["firing_fraction"]


def test_percentile_interpolates() -> None:
    assert percentile([1.0], 95) == 1.0
    assert percentile([0.0, 10.0], 95) == pytest.approx(9.5)
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0


@pytest.mark.parametrize(
    ("when", "truth"),
    [
        ("avg.cpu_percent > 65.0 && count >= 3", "true"),
        ("count >= 5", "false"),
        ('p95["cpu_percent"] < 50', "false"),
        ("firing_fraction.high_memory >= 0.5", "true"),
        ("firing.high_memory > 1 && max.cpu_percent - min.cpu_percent > 40.0", "true"),
        ("avg.latency_ms > 10.0", "unknown"),
        ("avg.cpu_percent > 65.0 && size(p99) == 1", "true"),  # CEL-only
    ],
)
def test_fleet_variables_in_cel(when: str, truth: str) -> None:
    scope = scope_of(["a", "b", "c", "d"], VALUES, {"high_memory": ["a", "b"]})
    for shortcuts in (True, False):
        rule = FleetRule(FleetRuleSource("r", when))
        if not shortcuts:
            rule.compiled.when.without_shortcuts()  # type: ignore[union-attr]
        assert rule.step(scope, None, 0.0).state.truth == truth


def test_reads_name_metrics_and_machine_rules() -> None:
    rule = FleetRule(
        FleetRuleSource(
            "r", "avg.cpu_percent > 1.0 && firing_fraction.hot > 0.5", "p95.latency_ms < 3.0"
        )
    )
    assert rule.metrics() == {"cpu_percent", "latency_ms"}
    assert rule.machine_rules() == {"hot"}


def test_compile_error_names_line_and_variables() -> None:
    with pytest.raises(ConditionError) as err:
        FleetRule(FleetRuleSource("r", "avg.cpu_percent > 1.0 &&\n  metrics.cpu_percent > 2.0"))
    assert err.value.line == 2
    assert "undeclared reference" in err.value.message and "firing_fraction" in err.value.message


def test_persona_variables_are_not_fleet_variables() -> None:
    from mien.rules.conditions import Condition

    with pytest.raises(ConditionError):
        Condition("avg.cpu_percent > 1.0")  # persona kind


def test_for_clear_for_and_cooldown() -> None:
    rule = FleetRule(
        FleetRuleSource(
            "hot",
            "avg.cpu_percent > 70.0",
            "avg.cpu_percent < 50.0",
            for_s=10,
            clear_for_s=5,
            cooldown_s=100,
        )
    )
    hot = scope_of(["a"], {"cpu_percent": {"a": 90.0}}, {})
    mid = scope_of(["a"], {"cpu_percent": {"a": 60.0}}, {})
    cold = scope_of(["a"], {"cpu_percent": {"a": 10.0}}, {})
    s = rule.step(hot, None, 0)
    assert s.state.phase == "pending" and not s.fired
    s = rule.step(hot, s.state, 10)
    assert s.fired and not s.cooling and s.state.cooldown == {"actions": 110}
    s = rule.step(mid, s.state, 12)
    assert s.state.phase == "firing"  # between the thresholds: still firing
    s = rule.step(cold, s.state, 13)
    assert s.state.phase == "resolving" and not s.resolved
    s = rule.step(cold, s.state, 18)
    assert s.resolved and s.state.phase == "inactive"
    s = rule.step(hot, s.state, 20)
    s = rule.step(hot, s.state, 30)
    assert s.fired and s.cooling  # within the cooldown of the first firing's actions
    s = rule.step(cold, s.state, 31)
    s = rule.step(cold, s.state, 40)
    s = rule.step(hot, s.state, 200)
    s = rule.step(hot, s.state, 210)
    assert s.fired and not s.cooling


def test_state_is_not_modified() -> None:
    rule = FleetRule(FleetRuleSource("hot", "avg.cpu_percent > 70.0"))
    first = rule.step(scope_of(["a"], {"cpu_percent": {"a": 90.0}}, {}), None, 0)
    before = first.state.to_json()
    rule.step(scope_of(["a"], {"cpu_percent": {"a": 1.0}}, {}), first.state, 1)
    assert first.state.to_json() == before
