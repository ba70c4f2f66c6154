"""The Python fast path decides exactly as CEL does (differential test over random input)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from mien.rules.conditions import Condition
from mien.rules.fastpath import compile_fast
from mien.spec.conditions import ConditionError

KEYS = ("a", "b", "c")


def expression(rng: random.Random, depth: int = 0) -> str:
    """A random boolean condition in (mostly) the fast subset."""
    roll = rng.random()
    if depth < 3 and roll < 0.35:
        op = rng.choice(["&&", "||"])
        return f"({expression(rng, depth + 1)} {op} {expression(rng, depth + 1)})"
    if depth < 3 and roll < 0.42:
        return f"!({expression(rng, depth + 1)})"
    if roll < 0.5:
        return f"has(events.{rng.choice(KEYS)})"
    op = rng.choice([">", ">=", "<", "<=", "==", "!="])
    return f"{number(rng, depth)} {op} {number(rng, depth)}"


def number(rng: random.Random, depth: int) -> str:
    roll = rng.random()
    if depth < 4 and roll < 0.25:
        op = rng.choice(["+", "-", "*", "/"])
        return f"({number(rng, depth + 1)} {op} {number(rng, depth + 1)})"
    if roll < 0.35:
        return rng.choice(["1", "0", "2.5", "0.0", "-3.0", "1e2", "now"])
    var = rng.choice(["metrics", "baseline", "events", "priority"])
    key = rng.choice(KEYS)
    return f'{var}["{key}"]' if rng.random() < 0.3 else f"{var}.{key}"


def value(rng: random.Random) -> Any:
    return rng.choice(
        [0.0, 1.0, -2.5, 3, 0, 7, 1e300, float("inf"), float("nan"), True, "x", 2**70, 100.0]
    )


def inputs(rng: random.Random) -> dict[str, Any]:
    scope: dict[str, Any] = {
        var: {k: value(rng) for k in KEYS if rng.random() < 0.7}
        for var in ("metrics", "baseline", "events", "priority")
    }
    scope["now"] = rng.choice([0.0, 1.5, 1e9])
    return scope


@pytest.mark.parametrize("seed", range(8))
def test_fast_path_agrees_with_cel(seed: int) -> None:
    rng = random.Random(seed)
    checked = 0
    for _ in range(150):
        source = expression(rng)
        if compile_fast(source) is None:
            continue
        try:
            fast = Condition(source)
        except ConditionError:  # CEL's type check: e.g. `now <= 1` (double against int)
            continue
        for _ in range(12):
            scope = inputs(rng)
            got = fast._decide(scope).truth
            want = fast._cel(scope).truth
            assert got == want, f"{source} over {scope}: fast {got}, CEL {want}"
            checked += 1
    assert checked > 1000


@pytest.mark.parametrize(
    "source",
    [
        "size(events) > 0",
        'events.kind == "x"',
        "data.feed.age > 10.0",
        "metrics.a > 1.0 ? true : false",
        "metrics.a in [1.0]",
        "persona.name == 'x'",
        "0x10 > 1",
    ],
)
def test_outside_the_subset_runs_on_cel(source: str) -> None:
    assert compile_fast(source) is None
    assert not Condition(source).is_fast


def test_unchanged_inputs_are_not_evaluated_again() -> None:
    cond = Condition("metrics.a > 1.0")
    inner = cond._fast
    assert inner is not None
    calls: list[Any] = []

    def counting(scope: Any) -> Any:
        calls.append(scope)
        return inner(scope)

    cond._fast = counting
    scope: dict[str, Any] = {"metrics": {"a": 2.0, "other": 1.0}}
    assert cond.decide(scope).truth == "true"
    scope["metrics"]["other"] = 5.0  # a value the condition does not read changed
    assert cond.decide(scope).truth == "true"
    assert len(calls) == 1
    scope["metrics"]["a"] = 0.0
    assert cond.decide(scope).truth == "false"
    assert len(calls) == 2
