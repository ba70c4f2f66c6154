"""Persona effectiveness, computed with no I/O: per persona version and per rule, how
often the rule fired, how long it stayed firing, what became of its actions, and how the
metric it serves moved around the actions that were carried out.

The inputs are the adaptation events the agents sent (``adapt.rule.*`` transitions and
``adapt.action.*`` outcomes, each naming its ``persona`` and ``persona_version``) and, for
each applied action, the samples of the served metric in a window on each side of it. The
work is in two steps so the caller can read exactly the samples needed: :func:`measures`
says which windows to read, :func:`report` computes the answer from the events and those
samples. Used by :mod:`mien.server.api.effectiveness`, with the reads of
:mod:`mien.server.store.effectiveness`.

Definitions (documented for users in ``docs/adaptation.md``):

- a *fire* is a transition to ``firing`` from ``inactive`` or ``pending`` (``resolving`` →
  ``firing`` continues the same firing); it lasts until the rule's next transition to
  ``inactive`` on that instance; one still firing at the end of the range counts up to it;
- action outcomes map onto four counts (:data:`OUTCOMES`); an action retried after a
  failure counts once, by its latest outcome;
- the *served metric* is the rule's ``serves`` when that names a metric, else the first
  metric its ``when`` reads; the window on each side of an action is
  ``max(3 × for, 60 s)``; an action's change is the median of the metric in the window
  after it minus the median in the window before it, and the rule's change is the median
  of those; under :data:`MIN_FIRES` fires, or under :data:`MIN_FIRES` measured actions,
  there is no number, only the reason.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mien.spec.metrics import domain_of, metric_refs

MIN_FIRES = 5
"""Fewer fires (or measured actions) than this give "insufficient data", never a number."""
MIN_WINDOW = 60.0
"""Seconds: the shortest window on each side of an action."""
WINDOW_FACTOR = 3.0
"""The window on each side of an action is this many times the rule's ``for``."""
MAX_MEASURED = 200
"""Most actions of one rule measured (the newest): bounds the samples read."""

OUTCOMES = ("applied", "refused", "suppressed", "failed")
OUTCOME_OF = {
    "adapt.action.applied": "applied",  # a reversible change in effect
    "adapt.action.done": "applied",  # done for good (nothing to revert)
    "adapt.action.requested": "applied",  # asked of someone else (a scale request)
    "adapt.action.refused": "refused",  # beyond the persona's trust_levels
    "adapt.action.suppressed": "suppressed",  # a rule serving a heavier goal won
    "adapt.action.cooldown": "suppressed",  # the same action ran within its cooldown
    "adapt.action.failed": "failed",  # failed (retried later, or given up)
}
"""The agent's action events and the outcome each counts as. Other ``adapt.action.*``
events (reverted, abandoned, revert_failed) are about undoing and are not counted."""

FIRING, INACTIVE = "adapt.rule.firing", "adapt.rule.inactive"
STARTS_FROM = ("inactive", "pending")


@dataclass(frozen=True)
class RuleInfo:
    """What effectiveness needs of one rule of a persona version."""

    name: str
    for_seconds: float
    metric: str | None

    @property
    def window(self) -> float:
        return window(self.for_seconds)


@dataclass(frozen=True)
class Event:
    """One adaptation event as the server stored it."""

    instance: str
    ts: float
    kind: str
    detail: Mapping[str, Any]

    @property
    def rule(self) -> str:
        return str(self.detail.get("rule") or "")

    @property
    def version(self) -> int | None:
        value = self.detail.get("persona_version")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def at(self) -> float:
        """The rule's own time of a transition (``at``), else when the event was sent."""
        value = self.detail.get("at")
        return float(value) if isinstance(value, int | float) else self.ts


@dataclass(frozen=True)
class Measure:
    """One applied action to measure: the served metric on ``instance`` in
    ``[at - window, at)`` (before) and ``(at, at + window]`` (after)."""

    instance: str
    rule: str
    metric: str
    at: float
    window: float

    @property
    def before(self) -> tuple[float, float]:
        return (self.at - self.window, self.at)

    @property
    def after(self) -> tuple[float, float]:
        return (self.at, self.at + self.window)


@dataclass(frozen=True)
class Sides:
    """The samples of one :class:`Measure`'s windows."""

    before: Sequence[float]
    after: Sequence[float]


@dataclass
class MetricEffect:
    metric: str | None
    window: float
    measured: int = 0
    before: float | None = None
    after: float | None = None
    change: float | None = None
    insufficient: str | None = None
    points: list[tuple[float, float, float]] = field(default_factory=list)
    """``(at, before median, after median)`` of each measured action, oldest first."""


@dataclass
class RuleEffect:
    rule: str
    for_seconds: float
    fires: int
    still_firing: int
    firing_total: float
    firing_median: float | None
    actions: dict[str, int]
    metric: MetricEffect
    insufficient: str | None


def window(for_seconds: float) -> float:
    """Seconds on each side of an action: ``max(3 × for, 60 s)``."""
    return max(WINDOW_FACTOR * max(for_seconds, 0.0), MIN_WINDOW)


def served_metric(serves: str | None, when: str) -> str | None:
    """The metric a rule serves: ``serves`` when it names a metric, else the first metric
    its condition reads (through ``metrics``, ``baseline`` or ``anomaly``)."""
    if serves and domain_of(serves) is not None:
        return serves
    for ref in metric_refs(when):
        if ref.name:
            return ref.name
    return None


def rules_of(persona: Any) -> list[RuleInfo]:
    """The rules of a (composed) :class:`~mien.spec.models.Persona`, named as the rules
    engine names them (``rule-N`` for an unnamed N-th rule)."""
    out = []
    for i, rule in enumerate(persona.adaptation_rules):
        seconds = float(rule.for_.seconds) if rule.for_ is not None else 0.0
        out.append(
            RuleInfo(rule.name or f"rule-{i + 1}", seconds, served_metric(rule.serves, rule.when))
        )
    return out


def median(values: Iterable[float]) -> float | None:
    found = list(values)
    return float(statistics.median(found)) if found else None


def _latest_outcomes(events: Iterable[Event]) -> dict[str, list[tuple[str, Event]]]:
    """Per rule, the counted outcomes: one per change (its latest), one per intent that
    made no change (refused, suppressed)."""
    by_change: dict[tuple[str, Any], tuple[str, Event]] = {}
    loose: list[tuple[str, Event]] = []
    for e in sorted(events, key=lambda e: e.ts):
        outcome = OUTCOME_OF.get(e.kind)
        if outcome is None:
            continue
        change = e.detail.get("change")
        if change is None:
            loose.append((outcome, e))
        else:
            by_change[(e.instance, change)] = (outcome, e)
    out: dict[str, list[tuple[str, Event]]] = {}
    for outcome, e in [*by_change.values(), *loose]:
        out.setdefault(e.rule, []).append((outcome, e))
    return out


def measures(rules: Sequence[RuleInfo], events: Iterable[Event], until: float) -> list[Measure]:
    """The applied actions to measure (at most :data:`MAX_MEASURED` newest per rule): those
    of a rule with a served metric whose after-window has passed by ``until``."""
    known = {r.name: r for r in rules}
    out: list[Measure] = []
    for rule, outcomes in _latest_outcomes(events).items():
        info = known.get(rule)
        if info is None or info.metric is None:
            continue
        done = sorted(
            (e for outcome, e in outcomes if outcome == "applied"),
            key=lambda e: e.ts,
        )
        done = [e for e in done if e.ts + info.window <= until][-MAX_MEASURED:]
        out.extend(Measure(e.instance, rule, info.metric, e.ts, info.window) for e in done)
    return out


def _firings(events: Iterable[Event], until: float) -> dict[str, tuple[list[float], int]]:
    """Per rule: the durations of its firings (seconds) and how many are still open."""
    open_at: dict[tuple[str, str], float] = {}
    durations: dict[str, list[float]] = {}
    for e in sorted(events, key=lambda e: (e.at, e.ts)):
        key = (e.instance, e.rule)
        if e.kind == FIRING and str(e.detail.get("from_", "")) in STARTS_FROM:
            if key not in open_at:
                open_at[key] = e.at
        elif e.kind == INACTIVE and key in open_at:
            durations.setdefault(e.rule, []).append(max(0.0, e.at - open_at.pop(key)))
    out: dict[str, tuple[list[float], int]] = {r: (d, 0) for r, d in durations.items()}
    for (_instance, rule), started in open_at.items():
        found, still = out.get(rule, ([], 0))
        out[rule] = ([*found, max(0.0, until - started)], still + 1)
    return out


def _metric_effect(
    info: RuleInfo, fires: int, wanted: Sequence[Measure], samples: Mapping[Measure, Sides]
) -> MetricEffect:
    effect = MetricEffect(metric=info.metric, window=info.window)
    if info.metric is None:
        effect.insufficient = "the rule serves no metric"
        return effect
    for m in sorted(wanted, key=lambda m: m.at):
        sides = samples.get(m)
        before = median(sides.before) if sides else None
        after = median(sides.after) if sides else None
        if before is not None and after is not None:
            effect.points.append((m.at, before, after))
    effect.measured = len(effect.points)
    if fires < MIN_FIRES:
        effect.insufficient = f"insufficient data: {fires} fire(s), {MIN_FIRES} needed"
    elif effect.measured < MIN_FIRES:
        effect.insufficient = (
            f"insufficient data: {effect.measured} applied action(s) with samples on both "
            f"sides, {MIN_FIRES} needed"
        )
    if effect.insufficient is None:
        effect.before = median(b for _, b, _ in effect.points)
        effect.after = median(a for _, _, a in effect.points)
        effect.change = median(a - b for _, b, a in effect.points)
    return effect


def report(
    rules: Sequence[RuleInfo],
    events: Iterable[Event],
    samples: Mapping[Measure, Sides],
    until: float,
) -> list[RuleEffect]:
    """Each rule's effectiveness over ``events`` (of one persona version), in the order of
    the persona's rules, then any other rule the events name; ``samples`` holds the
    windows :func:`measures` asked for."""
    events = list(events)
    firings = _firings(events, until)
    outcomes = _latest_outcomes(events)
    wanted: dict[str, list[Measure]] = {}
    for m in measures(rules, events, until):
        wanted.setdefault(m.rule, []).append(m)
    infos = list(rules)
    named = {r.name for r in infos}
    for extra in sorted({e.rule for e in events if e.rule} - named):
        infos.append(RuleInfo(extra, 0.0, None))
    out = []
    for info in infos:
        durations, still = firings.get(info.name, ([], 0))
        fires = len(durations)
        counts = dict.fromkeys(OUTCOMES, 0)
        for outcome, _ in outcomes.get(info.name, []):
            counts[outcome] += 1
        effect = _metric_effect(info, fires, wanted.get(info.name, []), samples)
        out.append(
            RuleEffect(
                rule=info.name,
                for_seconds=info.for_seconds,
                fires=fires,
                still_firing=still,
                firing_total=sum(durations),
                firing_median=median(durations),
                actions=counts,
                metric=effect,
                insufficient=(
                    f"insufficient data: {fires} fire(s), {MIN_FIRES} needed"
                    if fires < MIN_FIRES
                    else None
                ),
            )
        )
    return out
