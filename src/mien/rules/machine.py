"""One rule's state machine: how a rule moves between phases at one sample, and why.

Used by :mod:`mien.rules.engine`, which decides the conditions and calls :func:`advance`
for every rule whose state can change. Pure: the time is the sample's, never the clock's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mien.rules.conditions import FALSE, TRUE, Condition, Decision
from mien.rules.intents import Planned
from mien.rules.state import Phase, RuleState


@dataclass(frozen=True)
class Transition:
    """A rule changed phase at ``at``; ``why`` says why, in words."""

    rule: str
    from_: Phase
    to: Phase
    at: float
    why: str
    truth: str


@dataclass
class Compiled:
    """One rule (or data source) ready to step."""

    name: str
    when: Condition | None  # None: a data source without `when` (true while data is there)
    clear: Condition | None
    for_s: float
    clear_for_s: float
    keep_s: float
    cooldown_s: float
    planned: list[Planned]
    weight: float
    source: str | None = None
    index: int = 0


def clear_of(rule: Compiled, when: Decision, local: Mapping[str, Any]) -> Decision:
    if rule.clear is not None:
        return rule.clear.decide(local)
    if when.truth == "unknown":
        return when
    return FALSE if when.truth == "true" else TRUE


def advance(
    rule: Compiled,
    state: RuleState,
    when: Decision,
    local: Mapping[str, Any],
    now: float,
    transitions: list[Transition],
) -> str:
    """Move one rule's state; record transitions; return a note on where it stands."""

    def go(to: Phase, why: str) -> None:
        transitions.append(Transition(rule.name, state.phase, to, now, why, when.truth))
        state.phase, state.since = to, now
        if to == "firing" and state.fired_at is None:
            state.fired_at = now
        if to == "inactive":
            state.fired_at = state.keep_until = None

    what = "the data" if rule.when is None else "`when`"
    if when.truth == "unknown" and state.phase in ("inactive", "pending"):
        return unknown_note(state.phase, rule, when)
    if state.phase == "inactive":
        if when.truth != "true":
            return QUIET
        if rule.for_s <= 0:
            go("firing", "its data is there" if rule.when is None else "`when` holds (no `for`)")
            return "firing"
        go("pending", f"`when` holds; fires after {_dur(rule.for_s)} if it keeps holding")
        return f"pending for {_dur(rule.for_s)}"
    if state.phase == "pending":
        held = now - state.since
        if when.truth != "true":
            go("inactive", f"`when` stopped holding after {_dur(held)}")
            return "inactive"
        if held >= rule.for_s:
            go("firing", f"`when` held for {_dur(held)} (`for` {_dur(rule.for_s)})")
            return "firing"
        return f"pending: `when` holds; fires in {_dur(rule.for_s - held)}"
    clear = clear_of(rule, when, local)
    clear_name = "`clear_when`" if rule.clear is not None else f"{what} no longer holds"
    if clear.truth == "unknown":
        return f"{state.phase}: clear condition is unknown ({', '.join(clear.unknown)})"
    if state.phase == "firing":
        if clear.truth != "true":
            state.keep_until = None
            return HOLDING
        if rule.keep_s > 0:
            if state.keep_until is None:
                state.keep_until = now + rule.keep_s
            if now < state.keep_until:
                return f"firing: kept firing (`keep_firing_for`) until {state.keep_until:g}"
        if rule.clear_for_s <= 0:
            go("inactive", f"{clear_name}: resolved")
            return "inactive"
        go("resolving", f"{clear_name}; resolves after {_dur(rule.clear_for_s)} if it stays so")
        return "resolving"
    # resolving
    held = now - state.since
    if clear.truth != "true":
        go("firing", "the clear condition stopped holding: firing again")
        return "firing"
    if held >= rule.clear_for_s:
        go("inactive", f"clear condition held for {_dur(held)} (`clear_for`): resolved")
        return "inactive"
    return f"resolving: resolves in {_dur(rule.clear_for_s - held)}"


QUIET = "inactive: `when` does not hold"
HOLDING = "firing: the condition still holds"


def unknown_note(phase: str, rule: Compiled, when: Decision) -> str:
    what = "the data" if rule.when is None else "`when`"
    return f"{phase}: {what} is unknown ({', '.join(when.unknown) or 'no value'})"


def _dur(seconds: float) -> str:
    """``45s``, ``6m40s``, ``2h``: a duration as people write it."""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{round(seconds, 3):g}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(hours, "h"), (minutes, "m"), (secs, "s")]
    return "".join(f"{n}{unit}" for n, unit in parts if n) or "0s"
