"""The rules engine: a persona's rules compiled once, stepped over samples of its inputs.

Pure (no I/O, no clock): the agent's adaptation loop calls :meth:`RuleSet.step` with the
latest :class:`Inputs` and the stored states, executes the intents that ``runs``, reverts
the automated changes of the rules in ``resolved`` and stores the new states; ``mien rules
test`` calls it over samples from a file; the server will call it for fleet rules.

Each rule is a state machine::

    inactive ─when holds─▶ pending ─held for `for`─▶ firing ─clear holds─▶ resolving
        ▲                     │ when stops                ▲  clear stops      │
        └─────────────────────┘                           └───────────────────┘
        ◀──────────────────── clear held for `clear_for` ─────────────────────┘

A rule without ``for`` fires at once; without ``clear_for`` it goes back to inactive as
soon as its clear condition (``clear_when``, default ``when`` not holding) holds;
``keep_firing_for`` delays that by a grace period. A condition that cannot be decided
(a metric or source missing) is ``unknown`` and keeps the rule where it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from mien.rules.conditions import TRUE, Condition, Decision
from mien.rules.intents import Intent, Planned, judge, opposed, plan
from mien.rules.machine import HOLDING, QUIET, Compiled, Transition, advance, unknown_note
from mien.rules.state import RuleState
from mien.spec.metrics import metric_refs
from mien.spec.models import Action, Persona, Rule

SOURCE_PREFIX = "source:"
_GONE = object()
_CHANGING = ("metrics", "baseline", "anomaly", "events")  # what differs between steps


@dataclass(frozen=True)
class Inputs:
    """One sample of everything a condition may read.

    ``data`` maps a source name to its entry: ``value`` (the parsed payload: a list of
    lines, a JSON value or a text), ``age`` (seconds since it was fetched),
    ``changed_at`` (epoch seconds the payload last changed) and, for a JSON object, its
    top-level keys as well (so ``data.forecast.expected_rps`` reads the payload). Build
    entries with :func:`source_data`.
    """

    metrics: Mapping[str, float] = field(default_factory=dict)
    baseline: Mapping[str, float] = field(default_factory=dict)
    anomaly: Mapping[str, float] = field(default_factory=dict)
    events: Mapping[str, float] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    now: float = 0.0


def source_data(value: Any, *, age: float, changed_at: float) -> dict[str, Any]:
    """A data source's entry in :attr:`Inputs.data`."""
    entry: dict[str, Any] = dict(value) if isinstance(value, dict) else {}
    entry.update(value=value, age=float(age), changed_at=float(changed_at))
    return entry


@dataclass
class Step:
    """The outcome of one step: new states, transitions, intents and resolved rules.

    ``notes`` says, per rule, where it stands and why (for ``mien rules test``/``mien
    top``); ``unknown`` lists the inputs that made a condition unknown. A rule whose state
    did not change keeps the very :class:`RuleState` object it was given: treat states as
    values (never change one in place), and store ``states`` as the next step's input.
    """

    states: dict[str, RuleState]
    transitions: list[Transition] = field(default_factory=list)
    fire: list[Intent] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    unknown: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _seconds(value: Any) -> float:
    return float(value.seconds) if value is not None else 0.0


_PRIORITY_REF = re.compile(r"\bpriority\s*(?:\.\s*([A-Za-z_]\w*)|\[\s*[\"']([^\"']*)[\"']\s*\])")


def _weight(rule: Rule | None, when: str, priority: Mapping[str, float]) -> float:
    """The weight of the goal a rule serves: ``serves``, else the first metric the
    condition reads that is a priority, else the first ``priority.NAME`` it reads."""
    if rule is not None and rule.serves:
        return float(priority.get(rule.serves, 0.0))
    for ref in metric_refs(when):
        if ref.name in priority:
            return float(priority[ref.name])
    for a, b in _PRIORITY_REF.findall(when):
        if (a or b) in priority:
            return float(priority[a or b])
    return 0.0


class RuleSet:
    """A persona's rules and data sources, compiled; step them with :meth:`step`."""

    def __init__(self, persona: Persona, rules: list[Compiled]) -> None:
        self.persona = persona
        # The previous step's inputs, to see which rules read something that changed (a
        # cache, not state: a rule set stepped over unrelated streams merely evaluates
        # more). `_watch`: variable → key → rules whose `when` reads it; `_wholes`:
        # variable → rules reading the whole map; `_always`: rules decided every step.
        self._last: dict[str, dict[str, Any]] | None = None
        self._quiet = True  # skip the machine of a rule where nothing can change
        self._watch: dict[str, dict[str, list[int]]] = {}
        self._wholes: dict[str, list[int]] = {}
        self._always: set[int] = set()
        for i, rule in enumerate(rules):
            cond = rule.when
            if rule.source is not None or cond is None or cond.reads_now:
                self._always.add(i)
                continue
            for var, key in cond.reads():
                if var in _CHANGING:
                    self._watch.setdefault(var, {}).setdefault(key, []).append(i)
            for var in cond.wholes():
                if var in _CHANGING:
                    self._wholes.setdefault(var, []).append(i)
                elif var == "data":
                    self._always.add(i)
        self._watched = tuple(v for v in _CHANGING if v in self._watch or v in self._wholes)
        self._watch_all: dict[str, set[int]] = {
            var: {i for rules in self._watch.get(var, {}).values() for i in rules}
            | set(self._wholes.get(var, ()))
            for var in self._watched
        }
        self.rules = rules
        self.by_name = {r.name: r for r in rules}
        self._scope_base: dict[str, Any] = {
            "priority": dict(persona.priority_metrics),
            "trust": dict(persona.trust_levels),
            "persona": {"name": persona.name or "", "labels": dict(persona.labels)},
        }

    @classmethod
    def compile(cls, persona: Persona) -> RuleSet:
        """Compile every condition once; raises ConditionError for one that does not."""
        out: list[Compiled] = []
        priority = persona.priority_metrics
        for i, rule in enumerate(persona.adaptation_rules):
            out.append(
                Compiled(
                    name=rule.name or f"rule-{i + 1}",
                    when=Condition(rule.when),
                    clear=Condition(rule.clear_when) if rule.clear_when else None,
                    for_s=_seconds(rule.for_),
                    clear_for_s=_seconds(rule.clear_for),
                    keep_s=_seconds(rule.keep_firing_for),
                    cooldown_s=_seconds(rule.cooldown),
                    planned=plan(rule.then, persona),
                    weight=_weight(rule, rule.when, priority),
                    index=i,
                )
            )
        for i, src in enumerate(persona.external_data_sources):
            if not src.then:
                continue
            name = src.name or f"source-{i + 1}"
            out.append(
                Compiled(
                    name=SOURCE_PREFIX + name,
                    when=Condition(src.when) if src.when else None,
                    clear=None,
                    for_s=0.0,
                    clear_for_s=0.0,
                    keep_s=0.0,
                    cooldown_s=0.0,
                    planned=plan(src.then, persona),
                    weight=_weight(None, src.when or "", priority),
                    source=name,
                    index=len(out),
                )
            )
        return cls(persona, out)

    def without_shortcuts(self) -> None:
        """Decide every condition on CEL alone at every step, and step every machine
        (for comparisons: the benchmark and the tests that shortcuts change nothing)."""
        for rule in self.rules:
            for cond in (rule.when, rule.clear):
                if cond is not None:
                    cond.without_shortcuts()
        self._always = set(range(len(self.rules)))
        self._quiet = False

    def names(self) -> list[str]:
        return [r.name for r in self.rules]

    def actions_of(self, name: str) -> list[Action]:
        """The built-in actions a rule runs (responses expanded)."""
        return [p.action for p in self.by_name[name].planned]

    def step(self, inputs: Inputs, states: Mapping[str, RuleState]) -> Step:
        """Advance every rule to ``inputs.now``; ``states`` is not modified."""
        now = inputs.now
        scope: dict[str, Any] = {
            **self._scope_base,
            "metrics": inputs.metrics,
            "baseline": inputs.baseline,
            "anomaly": inputs.anomaly,
            "events": inputs.events,
            "data": inputs.data,
            "now": float(now),
        }
        out = Step(states={})
        newly: list[tuple[Compiled, RuleState]] = []
        affected = self._affected(inputs)
        states_out, notes, unknown = out.states, out.notes, out.unknown
        for i, rule in enumerate(self.rules):
            name = rule.name
            local: Mapping[str, Any] = scope
            if rule.source is not None:
                entry = inputs.data.get(rule.source)
                local = {**scope, "data": entry if isinstance(entry, Mapping) else {}}
                when = self._decide_when(rule, local)
            else:
                cond = rule.when
                assert cond is not None
                last = cond.last
                when = cond.evaluate(scope) if last is None or i in affected else last
            prev = states.get(name)
            truth = when.truth
            if prev is not None and prev.truth == truth and self._quiet:
                # Nothing can change: share the (never mutated) state, skip the machine.
                if prev.phase == "inactive" and truth != "true":
                    states_out[name] = prev
                    if truth == "unknown":
                        unknown[name] = when.unknown
                        notes[name] = unknown_note("inactive", rule, when)
                    else:
                        notes[name] = QUIET
                    continue
                if (
                    prev.phase == "firing"
                    and truth == "true"
                    and rule.clear is None
                    and prev.keep_until is None
                    and rule.source is None
                ):
                    states_out[name] = prev
                    notes[name] = HOLDING
                    continue
            state = prev.copy() if prev is not None else RuleState(since=now)
            if state.cooldown:
                state.cooldown = {t: u for t, u in state.cooldown.items() if u > now}
            before = state.phase
            notes[name] = advance(rule, state, when, local, now, out.transitions)
            state.truth = truth
            states_out[name] = state
            if truth == "unknown":
                unknown[name] = when.unknown
            if state.phase == "firing" and before in ("inactive", "pending"):
                newly.append((rule, state))
            elif rule.source is not None and state.phase == "firing":
                changed = _changed_at(inputs.data.get(rule.source))
                if changed is not None and changed != state.data_changed_at:
                    newly.append((rule, state))  # a new copy of the feed: act on it again
            if state.phase == "inactive" and before in ("firing", "resolving"):
                out.resolved.append(name)
        if newly:
            self._intents(newly, inputs, out)
        return out

    def _affected(self, inputs: Inputs) -> set[int]:
        """The rules whose ``when`` reads something that differs from the last step."""
        affected = set(self._always)
        last = self._last
        snapshot: dict[str, dict[str, Any]] = {}
        for var in self._watched:
            copy = snapshot[var] = dict(getattr(inputs, var))
            before = last.get(var) if last is not None else None
            if before is None:
                affected.update(self._watch_all[var])
                continue
            if copy == before:
                continue  # C-speed check: most variables do not change on most steps
            affected.update(self._wholes.get(var, ()))
            for key, rules in self._watch.get(var, {}).items():
                value, old = copy.get(key, _GONE), before.get(key, _GONE)
                if value is not old and (value != old or type(value) is not type(old)):
                    affected.update(rules)
        self._last = snapshot
        return affected

    def _decide_when(self, rule: Compiled, local: Mapping[str, Any]) -> Decision:
        if rule.when is None:
            present = isinstance(local.get("data"), Mapping) and "value" in local["data"]
            return TRUE if present else Decision("unknown", (f"data.{rule.source} missing",))
        return rule.when.decide(local)

    def _intents(self, newly: list[tuple[Compiled, RuleState]], inputs: Inputs, out: Step) -> None:
        trust = self.persona.trust_levels
        active = [r for r in self.rules if out.states[r.name].phase in ("firing", "resolving")]
        fresh = {rule.name for rule, _ in newly}
        for rule, state in newly:
            data = inputs.data.get(rule.source) if rule.source else inputs.data
            if rule.source is not None:
                state.data_changed_at = _changed_at(data)
            for p in rule.planned:
                intent = judge(rule.name, p, trust, inputs.now, state.cooldown, data)
                winner = _heavier(rule, p, active, fresh)
                if winner is not None:
                    intent = _replace(intent, suppressed_by=winner)
                if intent.runs and rule.cooldown_s > 0:
                    state.cooldown[p.target] = inputs.now + rule.cooldown_s
                out.fire.append(intent)


def _replace(intent: Intent, **changes: Any) -> Intent:
    return replace(intent, **changes)


def _changed_at(entry: Any) -> float | None:
    if isinstance(entry, Mapping):
        value = entry.get("changed_at")
        if isinstance(value, int | float):
            return float(value)
    return None


def _heavier(rule: Compiled, p: Planned, active: list[Compiled], fresh: set[str]) -> str | None:
    """The rule that wins a target ``p`` wants, when it wants something else there.

    Per target, the heaviest rule wanting something of it wins; on a tie a rule that was
    already firing keeps what it has, and between rules firing now the first written wins.
    """
    for key, want in p.wants:
        contenders = [
            (other, w) for other in active for q in other.planned for k, w in q.wants if k == key
        ]
        if not contenders:
            continue
        winner, wanted = max(
            contenders, key=lambda c: (c[0].weight, c[0].name not in fresh, -c[0].index)
        )
        if winner is not rule and opposed(want, wanted):
            return winner.name
    return None


__all__ = ["SOURCE_PREFIX", "Inputs", "RuleSet", "Step", "Transition", "source_data"]
