"""The inputs of one evaluation: which instances each fleet rule's selector matches, the
newest value of the metrics the rules read, and which machine rules are firing where.

Used by :mod:`mien.server.orchestrator.loop`. Members come from the replica's fleet cache
(tags of every live instance, no database read); values and machine-rule phases from the
leader's copy of the newest rows (:class:`mien.server.orchestrator.newest.Newest`, which
reads only what changed), only the names the rules mention and only values fresher than
each rule's ``fresh`` window. The arithmetic is :func:`mien.rules.fleet.scope_of`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mien.rules.fleet import FleetRule, scope_of
from mien.server.fleet import Member
from mien.server.orchestrator.documents import FleetRuleDoc
from mien.server.orchestrator.newest import Newest
from mien.server.resolve import selector_matches


@dataclass
class Loaded:
    """A rule in force, compiled."""

    doc: FleetRuleDoc
    rule: FleetRule
    version: int

    def metrics(self) -> set[str]:
        names = self.rule.metrics()
        for act in self.doc.then:
            by = (act.activate and act.activate.by) or (act.call_provider and act.call_provider.by)
            if by:
                names.add(by)
        return names


@dataclass
class Inputs:
    """What every rule of one evaluation reads."""

    values: dict[float, dict[str, dict[str, float]]] = field(default_factory=dict)
    """fresh window → metric → instance → newest value."""
    firing: dict[float, dict[str, set[str]]] = field(default_factory=dict)


def members_of(selector: Mapping[str, Any], members: Mapping[str, Member]) -> list[str]:
    """The live instances whose tags the selector matches (an empty one matches all),
    with :func:`mien.server.resolve.selector_matches`'s semantics."""
    if not selector:
        return list(members)
    if len(selector) == 1:  # the common case, in one comparison an instance
        ((key, wanted),) = selector.items()
        if isinstance(wanted, str) and wanted != "*":
            return [iid for iid, m in members.items() if m.tags.get(key) == wanted]
    return [iid for iid, m in members.items() if selector_matches(selector, m.tags)]


class Selections:
    """:func:`members_of` once per distinct selector in one evaluation."""

    def __init__(self, members: Mapping[str, Member]) -> None:
        self.members = members
        self._memo: dict[str, list[str]] = {}

    def __call__(self, selector: Mapping[str, Any]) -> list[str]:
        key = repr(sorted(selector.items()))
        got = self._memo.get(key)
        if got is None:
            got = self._memo[key] = members_of(selector, self.members)
        return got


async def load(
    session: AsyncSession, newest: Newest, rules: Sequence[Loaded], now: float
) -> Inputs:
    """Bring ``newest`` up to date with what the rules name, then take per fresh window
    the values and phases fresh enough."""
    windows: dict[float, tuple[set[str], set[str]]] = {}
    for r in rules:
        metrics, machine = windows.setdefault(r.doc.fresh.seconds, (set(), set()))
        metrics.update(r.metrics())
        machine.update(r.rule.machine_rules())
    await newest.refresh(
        session,
        {m for metrics, _ in windows.values() for m in metrics},
        {r for _, machine in windows.values() for r in machine},
        now,
    )
    out = Inputs()
    for window, (metrics, machine) in windows.items():
        after = now - window
        out.values[window] = newest.values_after(metrics, after)
        out.firing[window] = newest.firing_after(machine, after)
    return out


def scope(r: Loaded, members: Sequence[str], inputs: Inputs) -> dict[str, Any]:
    window = r.doc.fresh.seconds
    values = inputs.values.get(window, {})
    firing = inputs.firing.get(window, {})
    wanted = r.rule.metrics()
    return scope_of(
        members,
        {m: v for m, v in values.items() if m in wanted},
        {k: v for k, v in firing.items() if k in r.rule.machine_rules()},
    )


def shown(r: Loaded, scope: Mapping[str, Any]) -> dict[str, Any]:
    """The values the rule's conditions read, for ``mien fleet-rule show``."""
    out: dict[str, Any] = {"count": scope.get("count", 0)}
    for cond in (r.rule.compiled.when, r.rule.compiled.clear):
        if cond is None:
            continue
        for var, key in cond.reads():
            value = scope.get(var, {}).get(key)
            if value is not None:
                out[f"{var}.{key}"] = value
    return out
