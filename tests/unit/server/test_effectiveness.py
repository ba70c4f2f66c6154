"""The arithmetic of persona effectiveness (:mod:`mien.server.effectiveness`): fires and
their durations, action outcomes, windows, medians and the insufficient-data rule."""

from __future__ import annotations

from typing import Any

import pytest

from mien.server import effectiveness as calc
from mien.server.effectiveness import Event, Measure, RuleInfo, Sides

T0 = 1_000_000.0


def rule_event(at: float, frm: str, to: str, rule: str = "hot", instance: str = "vm-1") -> Event:
    detail = {"persona": "web", "persona_version": 2, "rule": rule, "from_": frm, "to": to}
    return Event(instance, at, f"adapt.rule.{to}", {**detail, "at": at})


def action(
    at: float, status: str, change: int | None, rule: str = "hot", instance: str = "vm-1"
) -> Event:
    detail: dict[str, Any] = {"persona": "web", "persona_version": 2, "rule": rule}
    if change is not None:
        detail["change"] = change
    return Event(instance, at, f"adapt.action.{status}", detail)


def fires(n: int, every: float = 1000.0, lasting: float = 100.0) -> list[Event]:
    out = []
    for i in range(n):
        start = T0 + i * every
        out += [
            rule_event(start - 30, "inactive", "pending"),
            rule_event(start, "pending", "firing"),
            action(start, "applied", i + 1),
            rule_event(start + lasting, "firing", "inactive"),
        ]
    return out


@pytest.mark.parametrize(
    ("for_seconds", "expected"),
    [(0.0, 60.0), (10.0, 60.0), (20.0, 60.0), (30.0, 90.0), (300.0, 900.0)],
)
def test_the_window_is_three_times_for_and_at_least_a_minute(
    for_seconds: float, expected: float
) -> None:
    assert calc.window(for_seconds) == expected
    assert RuleInfo("r", for_seconds, "cpu_percent").window == expected


@pytest.mark.parametrize(
    ("serves", "when", "expected"),
    [
        ("cpu_percent", "metrics.memory_percent > 90", "cpu_percent"),
        ("performance", "metrics.memory_percent > 90", "memory_percent"),
        (None, "anomaly['load_1m'] > 3 && metrics.cpu_percent > 1", "load_1m"),
        ("performance", "priority.performance > 0.5", None),
        (None, "events.oom_kill > 0", None),
    ],
)
def test_the_served_metric(serves: str | None, when: str, expected: str | None) -> None:
    assert calc.served_metric(serves, when) == expected


def test_fires_durations_and_outcomes() -> None:
    events = fires(3, lasting=100.0)
    # A fourth fire that goes resolving → firing → resolving → inactive: one fire, 250 s.
    start = T0 + 5000
    events += [
        rule_event(start, "inactive", "firing"),
        rule_event(start + 100, "firing", "resolving"),
        rule_event(start + 150, "resolving", "firing"),
        rule_event(start + 200, "firing", "resolving"),
        rule_event(start + 250, "resolving", "inactive"),
    ]
    # A fifth, on another instance, still firing at the end.
    events.append(rule_event(T0 + 9000, "pending", "firing", instance="vm-2"))
    # Outcomes: a change failed then applied counts once as applied; one given up counts
    # failed; refusals, suppressions and cooldowns count each.
    events += [
        action(T0 + 6000, "failed", 50),
        action(T0 + 6010, "applied", 50),
        action(T0 + 6100, "failed", 51),
        action(T0 + 6200, "refused", None),
        action(T0 + 6300, "suppressed", None),
        action(T0 + 6400, "cooldown", None),
        action(T0 + 6500, "reverted", 50),
    ]
    until = T0 + 9400
    (effect,) = calc.report([RuleInfo("hot", 0.0, "cpu_percent")], events, {}, until)
    assert effect.fires == 5 and effect.still_firing == 1
    assert effect.firing_total == 300 + 250 + 400
    assert effect.firing_median == 100.0
    assert effect.actions == {"applied": 4, "refused": 1, "suppressed": 2, "failed": 1}
    assert effect.insufficient is None


def test_under_five_fires_there_is_no_number() -> None:
    rules = [RuleInfo("hot", 0.0, "cpu_percent")]
    events = fires(4)
    until = T0 + 10_000
    wanted = calc.measures(rules, events, until)
    samples = {m: Sides([10.0], [5.0]) for m in wanted}
    (effect,) = calc.report(rules, events, samples, until)
    assert effect.fires == 4
    assert effect.insufficient == "insufficient data: 4 fire(s), 5 needed"
    m = effect.metric
    assert m.insufficient is not None and "insufficient data" in m.insufficient
    assert (m.before, m.after, m.change) == (None, None, None)
    assert m.measured == 4  # the points are shown, the summary is not made of them


def test_the_median_change_over_actions() -> None:
    rules = [RuleInfo("hot", 40.0, "cpu_percent")]
    events = fires(5)
    until = T0 + 10_000
    wanted = calc.measures(rules, events, until)
    assert len(wanted) == 5
    for m in wanted:
        assert m.metric == "cpu_percent" and m.window == 120.0
        assert m.before == (m.at - 120.0, m.at) and m.after == (m.at, m.at + 120.0)
    # Per action: before medians 90, 80, 95, 70, 100; after 40, 50, 90, 30, 100.
    pairs = [([80, 90, 99], [40]), ([80], [50, 50]), ([95], [90]), ([70], [30]), ([100], [100])]
    samples = {
        m: Sides([float(v) for v in b], [float(v) for v in a])
        for m, (b, a) in zip(sorted(wanted, key=lambda m: m.at), pairs, strict=True)
    }
    (effect,) = calc.report(rules, events, samples, until)
    m = effect.metric
    assert m.insufficient is None and m.measured == 5
    assert m.before == 90.0 and m.after == 50.0
    # The median of the changes (-50, -30, -5, -40, 0), not after − before of the medians.
    assert m.change == -30.0
    assert [p[1:] for p in m.points] == [(90, 40), (80, 50), (95, 90), (70, 30), (100, 100)]


def test_actions_without_samples_on_both_sides_do_not_count() -> None:
    rules = [RuleInfo("hot", 0.0, "cpu_percent")]
    events = fires(6)
    until = T0 + 10_000
    wanted = sorted(calc.measures(rules, events, until), key=lambda m: m.at)
    samples = {m: Sides([50.0], [40.0]) for m in wanted[:4]}
    samples[wanted[4]] = Sides([50.0], [])
    (effect,) = calc.report(rules, events, samples, until)
    assert effect.fires == 6 and effect.insufficient is None
    assert effect.metric.measured == 4
    assert effect.metric.change is None
    assert effect.metric.insufficient == (
        "insufficient data: 4 applied action(s) with samples on both sides, 5 needed"
    )


def test_an_action_whose_after_window_has_not_passed_is_not_measured() -> None:
    rules = [RuleInfo("hot", 100.0, "cpu_percent")]  # window 300 s
    events = [action(T0, "applied", 1), action(T0 + 1000, "applied", 2)]
    assert [m.at for m in calc.measures(rules, events, T0 + 1200)] == [T0]
    assert [m.at for m in calc.measures(rules, events, T0 + 1300)] == [T0, T0 + 1000]


def test_refused_actions_and_a_rule_without_metric_are_not_measured() -> None:
    rules = [RuleInfo("hot", 0.0, None), RuleInfo("cold", 0.0, "cpu_percent")]
    events = [action(T0, "applied", 1), action(T0, "refused", None, rule="cold")]
    assert calc.measures(rules, events, T0 + 1e6) == []
    hot, cold = calc.report(rules, events, {}, T0 + 1e6)
    assert hot.metric.insufficient == "the rule serves no metric"
    assert cold.actions["refused"] == 1 and cold.metric.measured == 0


def test_rules_named_only_in_events_are_listed_after_the_personas() -> None:
    rules = [RuleInfo("hot", 0.0, "cpu_percent")]
    events = [rule_event(T0, "inactive", "firing", rule="feed")]
    names = [r.rule for r in calc.report(rules, events, {}, T0 + 10)]
    assert names == ["hot", "feed"]


def test_measures_are_bounded_per_rule() -> None:
    rules = [RuleInfo("hot", 0.0, "cpu_percent")]
    events = [action(T0 + i, "applied", i + 1) for i in range(calc.MAX_MEASURED + 50)]
    found = calc.measures(rules, events, T0 + 1e6)
    assert len(found) == calc.MAX_MEASURED
    assert min(m.at for m in found) == T0 + 50  # the newest are kept


def test_a_measure_is_a_value() -> None:
    a = Measure("vm-1", "hot", "cpu_percent", T0, 60.0)
    assert a == Measure("vm-1", "hot", "cpu_percent", T0, 60.0) and len({a, a}) == 1


def test_rules_of_a_persona_are_named_as_the_engine_names_them() -> None:
    from mien.spec.models import Persona

    persona = Persona.model_validate(
        {
            "name": "web",
            "learning_domains": ["metrics"],
            "priority_metrics": {"performance": 1.0},
            "adaptation_rules": [
                {
                    "when": "metrics.memory_percent > 90",
                    "for": "2m",
                    "then": [{"action": "notify", "message": "x"}],
                },
                {
                    "name": "hot",
                    "serves": "performance",
                    "when": "metrics.cpu_percent > 80",
                    "then": [{"action": "notify", "message": "x"}],
                },
            ],
        }
    )
    assert calc.rules_of(persona) == [
        RuleInfo("rule-1", 120.0, "memory_percent"),
        RuleInfo("hot", 0.0, "cpu_percent"),
    ]
