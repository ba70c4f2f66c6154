"""Fleet rules, evaluated: the orchestrator's conditions over aggregates of many instances.

The server's orchestrator (:mod:`mien.server.orchestrator`) compiles each fleet rule here
and steps it once per evaluation with a scope of aggregates over the instances its tag
selector matches (:func:`scope_of`). A fleet rule moves through the same state machine as
a persona's rule (:func:`mien.rules.machine.advance`: ``for``, ``clear_when``,
``clear_for``, ``keep_firing_for``) and keeps the same :class:`RuleState`; its cooldown is
one target, ``actions``: a rule that fires again within ``cooldown`` of its last actions
fires without running them. What the actions are is the server's business, not this one's.

Variables a fleet condition sees (compiled with ``kind="fleet"``, see
:mod:`mien.spec.conditions`): ``avg``, ``min``, ``max``, ``sum``, ``p50``, ``p90``, ``p95``,
``p99`` (metric name → number over the instances with a fresh value), ``reporting``
(metric → how many instances have one), ``firing`` and ``firing_fraction`` (machine rule
name → how many / which fraction of the matching instances have it firing), ``count`` (the
matching instances) and ``now``. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mien.rules.conditions import Condition
from mien.rules.machine import Compiled, Transition, advance
from mien.rules.state import RuleState

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0}
COOLDOWN_TARGET = "actions"


@dataclass(frozen=True)
class FleetRuleSource:
    """What the engine needs of one fleet rule (durations in seconds)."""

    name: str
    when: str
    clear_when: str | None = None
    for_s: float = 0.0
    clear_for_s: float = 0.0
    keep_s: float = 0.0
    cooldown_s: float = 0.0


@dataclass
class FleetStep:
    """One rule's outcome at one evaluation.

    ``fired``: the rule entered ``firing`` from inactive/pending and its actions should run
    (``cooling`` says they do not: it fired within ``cooldown`` of the last time they ran).
    ``resolved``: it went back to inactive from firing/resolving; what it did is undone.
    """

    state: RuleState
    transitions: list[Transition] = field(default_factory=list)
    fired: bool = False
    cooling: bool = False
    resolved: bool = False
    note: str = ""
    unknown: tuple[str, ...] = ()


class FleetRule:
    """One fleet rule, compiled (raises ConditionError for a condition that does not)."""

    def __init__(self, source: FleetRuleSource) -> None:
        self.source = source
        self.compiled = Compiled(
            name=source.name,
            when=Condition(source.when, "fleet"),
            clear=Condition(source.clear_when, "fleet") if source.clear_when else None,
            for_s=source.for_s,
            clear_for_s=source.clear_for_s,
            keep_s=source.keep_s,
            cooldown_s=source.cooldown_s,
            planned=[],
            weight=0.0,
        )

    def step(self, scope: Mapping[str, Any], state: RuleState | None, now: float) -> FleetStep:
        """Advance the rule to ``now`` over ``scope`` (see :func:`scope_of`); ``state``
        is not modified."""
        rule = self.compiled
        assert rule.when is not None
        local = {**scope, "now": float(now)}
        when = rule.when.decide(local)
        new = state.copy() if state is not None else RuleState(since=now)
        new.cooldown = {t: u for t, u in new.cooldown.items() if u > now}
        before = new.phase
        out = FleetStep(new)
        out.note = advance(rule, new, when, local, now, out.transitions)
        new.truth = when.truth
        out.unknown = when.unknown
        if new.phase == "firing" and before in ("inactive", "pending"):
            out.fired = True
            if COOLDOWN_TARGET in new.cooldown:
                out.cooling = True
            elif rule.cooldown_s > 0:
                new.cooldown[COOLDOWN_TARGET] = now + rule.cooldown_s
        if new.phase == "inactive" and before in ("firing", "resolving"):
            out.resolved = True
        return out

    def metrics(self) -> set[str]:
        """The metric names the rule's conditions read at constant keys."""
        return {key for var, key in self._reads() if var not in ("firing", "firing_fraction")}

    def machine_rules(self) -> set[str]:
        """The machine-rule names it reads in ``firing``/``firing_fraction``."""
        return {key for var, key in self._reads() if var in ("firing", "firing_fraction")}

    def _reads(self) -> Iterable[tuple[str, str]]:
        for cond in (self.compiled.when, self.compiled.clear):
            if cond is not None:
                yield from cond.reads()


def percentile(ordered: list[float], p: float) -> float:
    """The ``p``-th percentile of sorted values, linearly interpolated (as numpy's
    default); ``ordered`` must not be empty."""
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def scope_of(
    members: Iterable[str],
    values: Mapping[str, Mapping[str, float]],
    firing: Mapping[str, Iterable[str]],
) -> dict[str, Any]:
    """The variables of a fleet condition over ``members`` (instance ids).

    ``values``: metric name → instance id → its newest fresh value. ``firing``: machine
    rule name → the instances where it is firing. A metric no matching instance has is
    absent from the maps (so a condition reading it is unknown, and the rule stays as it
    is), and so is every metric when nothing matches.
    """
    ids = members if isinstance(members, set | frozenset) else set(members)
    out: dict[str, Any] = {name: {} for name in ("avg", "min", "max", "sum", "reporting")}
    for name in PERCENTILES:
        out[name] = {}
    for metric, per_instance in values.items():
        if len(ids) < len(per_instance):
            got = [per_instance[i] for i in ids if i in per_instance]
        else:
            got = [v for i, v in per_instance.items() if i in ids]
        got.sort()
        if not got:
            continue
        total = math.fsum(got)
        out["avg"][metric] = total / len(got)
        out["min"][metric] = got[0]
        out["max"][metric] = got[-1]
        out["sum"][metric] = total
        out["reporting"][metric] = float(len(got))
        for name, p in PERCENTILES.items():
            out[name][metric] = percentile(got, p)
    count = len(ids)
    out["firing"], out["firing_fraction"] = {}, {}
    for rule, where in firing.items():
        n = len(ids.intersection(where))
        out["firing"][rule] = float(n)
        if count:
            out["firing_fraction"][rule] = n / count
    out["count"] = float(count)
    return out


__all__ = ["FleetRule", "FleetRuleSource", "FleetStep", "percentile", "scope_of"]
