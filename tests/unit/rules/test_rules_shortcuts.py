"""The engine's shortcuts (fast path, reuse of unchanged inputs, quiet rules skipped)
change nothing: a rule set stepped with them and one stepped on CEL alone, re-deciding
every condition on every sample, agree on every state, transition and intent."""

from __future__ import annotations

import random
from typing import Any

import pytest

from mien.rules import Inputs, RuleSet, RuleState
from mien.spec.models import Persona

CONDITIONS = [
    ("metrics.cpu_percent > 60.0", {"for": "3s"}),
    ("metrics.cpu_percent < 20.0 && metrics.memory_percent < 50.0", {}),
    ("metrics.memory_percent > 70.0", {"clear_when": "metrics.memory_percent < 40.0"}),
    ('metrics["disk_percent:/"] > 50.0', {"clear_for": "2s"}),
    ("metrics.cpu_percent > 1.5 * baseline.cpu_percent", {"keep_firing_for": "4s"}),
    ("anomaly.cpu_percent > 1.0 || anomaly.memory_percent > 1.0", {"cooldown": "5s"}),
    ("has(events.oom) && events.oom > 0.0", {}),
    ("size(events) > 1 && metrics.cpu_percent > 50.0", {}),
    ("metrics.memory_percent - baseline.memory_percent > 10.0 ? true : false", {}),
    ("now > 30.0 && metrics.cpu_percent > 40.0", {"for": "2s"}),
    # A clear condition that can hold while `when` does (an odd rule, but a valid one).
    ("metrics.memory_percent > 30.0", {"clear_when": "metrics.cpu_percent < 40.0"}),
]


def persona() -> Persona:
    rules = [
        {
            "name": f"r{i}",
            "when": when,
            "then": [{"action": "set_setting", "key": "os_settings.level", "value": i % 3}],
            **extra,
        }
        for i, (when, extra) in enumerate(CONDITIONS)
    ]
    return Persona.model_validate(
        {
            "name": "p",
            "priority_metrics": {"cpu_percent": 0.5, "memory_percent": 0.7},
            "trust_levels": {"file_system_modification": "low"},
            "adaptation_rules": rules,
        }
    )


def stream(seed: int, count: int = 400) -> list[Inputs]:
    rng = random.Random(seed)
    values: dict[str, float] = {"cpu_percent": 50.0, "memory_percent": 50.0, "disk_percent:/": 50.0}
    base = dict.fromkeys(values, 40.0)
    out = []
    for i in range(count):
        if rng.random() < 0.6:
            key = rng.choice(list(values))
            values[key] = min(100.0, max(0.0, values[key] + rng.gauss(0, 15)))
        metrics: dict[str, Any] = {k: v for k, v in values.items() if rng.random() > 0.05}
        if rng.random() < 0.02:
            metrics["cpu_percent"] = float("nan")
        if rng.random() < 0.3:
            base = {k: min(90.0, max(10.0, v + rng.gauss(0, 10))) for k, v in base.items()}
        anomaly = {k: (v - base[k]) / 20.0 for k, v in values.items()}
        events = {"oom": float(rng.random() < 0.1), "x": 1.0} if rng.random() < 0.5 else {}
        out.append(
            Inputs(metrics=metrics, baseline=base, anomaly=anomaly, events=events, now=float(i))
        )
    return out


def live(states: dict[str, RuleState], now: float) -> dict[str, RuleState]:
    """States with expired cooldowns dropped (a skipped rule keeps them; they are inert)."""
    out = {}
    for name, state in states.items():
        copy = state.copy()
        copy.cooldown = {t: u for t, u in copy.cooldown.items() if u > now}
        out[name] = copy
    return out


@pytest.mark.parametrize("seed", range(4))
def test_shortcuts_change_nothing(seed: int) -> None:
    quick = RuleSet.compile(persona())
    plain = RuleSet.compile(persona())
    plain.without_shortcuts()
    a: dict[str, Any] = {}
    b: dict[str, Any] = {}
    transitions = 0
    for sample in stream(seed):
        x = quick.step(sample, a)
        y = plain.step(sample, b)
        assert live(x.states, sample.now) == live(y.states, sample.now), sample
        assert [(t.rule, t.from_, t.to) for t in x.transitions] == [
            (t.rule, t.from_, t.to) for t in y.transitions
        ]
        assert [(i.rule, i.verdict, i.params) for i in x.fire] == [
            (i.rule, i.verdict, i.params) for i in y.fire
        ]
        assert x.resolved == y.resolved
        assert {k: v.split(" (")[0] for k, v in x.notes.items()} == {
            k: v.split(" (")[0] for k, v in y.notes.items()
        }
        transitions += len(x.transitions)
        a, b = x.states, y.states
    assert transitions > 50  # the stream does exercise the machines
