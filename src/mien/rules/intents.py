"""What a firing rule wants done: its actions as intents, with targets, trust and conflicts.

Used by :mod:`mien.rules.engine`. An :class:`Intent` is one action a rule asks for, already
judged: ``allowed``/``refused`` by the persona's trust levels, ``cooldown_until`` when the
same action on the same target ran too recently, ``suppressed_by`` when a rule serving a
heavier priority wants the opposite of the same target. ``runs`` says whether an executor
should carry it out. ``respond: NAME`` is expanded into the actions of
``automated_responses.NAME`` (each its own intent, ``via`` NAME).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mien.rules.trust import refusal
from mien.spec.actions import ACTIONS, params_of
from mien.spec.models import Action, Persona

MAX_DEPTH = 8  # responses that respond: a chain deeper than this is cut (and a cycle is)


@dataclass(frozen=True)
class Intent:
    """One action a rule asks for at one moment, and the verdict on it."""

    rule: str
    action: Action
    name: str  # the built-in action (never "respond")
    params: dict[str, Any]  # the action's arguments, ``from: data…`` resolved when known
    target: str  # what it acts on, for cooldowns and conflicts
    risk: str | None
    needed: str
    allowed: bool
    refused: str | None = None
    suppressed_by: str | None = None
    cooldown_until: float | None = None
    via: str | None = None  # the automated response it came from
    at: float = 0.0

    @property
    def runs(self) -> bool:
        """True when an executor should carry it out."""
        return self.allowed and self.suppressed_by is None and self.cooldown_until is None

    @property
    def verdict(self) -> str:
        """A short human word for what happens: runs, refused, suppressed, cooling down."""
        if not self.allowed:
            return f"refused: {self.refused}"
        if self.suppressed_by:
            return f"suppressed by {self.suppressed_by}"
        if self.cooldown_until is not None:
            return f"cooling down until {self.cooldown_until:g}"
        return "runs"


@dataclass(frozen=True)
class Planned:
    """One action of a rule, expanded from responses, known before anything fires."""

    action: Action
    name: str
    target: str
    wants: tuple[tuple[str, Any], ...]  # (conflict key, what it wants there)
    via: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


def plan(
    actions: list[Action], persona: Persona, via: str | None = None, depth: int = 0
) -> list[Planned]:
    """Expand ``respond`` and describe each built-in action's target and wants."""
    out: list[Planned] = []
    for act in actions:
        if act.respond is not None:
            body = persona.automated_responses.get(act.respond)
            if body is not None and depth < MAX_DEPTH:
                out.extend(plan(body, persona, act.respond, depth + 1))
            continue
        name = act.action or ""
        if name not in ACTIONS:
            continue  # validation rejects these; a stored persona from elsewhere is skipped
        params = params_of(act)
        out.append(Planned(act, name, _target(name, params), _wants(name, params), via, params))
    return out


def _target(name: str, params: Mapping[str, Any]) -> str:
    key = {
        "set_setting": "key",
        "switch_persona": "",
        "run": "command",
        "restart_service": "service",
        "limit": "exe",
        "notify": "message",
    }.get(name)
    if name == "firewall_block":
        return f"firewall_block:{params.get('from') or 'addresses'}"
    if name == "scale":
        return "scale:" + ",".join(r for r in ("cpu", "memory") if params.get(r) is not None)
    if key:
        return f"{name}:{params.get(key)}"
    return name


def _wants(name: str, params: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    if name == "set_setting":
        return ((f"setting:{params.get('key')}", repr(params.get("value", params.get("from")))),)
    if name == "switch_persona":
        return (("persona", params.get("persona")),)
    if name == "scale":
        return tuple(
            (f"resource:{r}", ("scale", str(params[r])))
            for r in ("cpu", "memory")
            if params.get(r) is not None
        )
    if name == "limit":
        return tuple(
            (f"resource:{r}", ("limit", params.get("exe"), str(params[r])))
            for r in ("cpu", "memory")
            if params.get(r) is not None
        )
    return ()


def opposed(a: Any, b: Any) -> bool:
    """Two wants of the same key that cannot both be had."""
    if a == b:
        return False
    # Limits of different executables do not contend with each other.
    return not (
        isinstance(a, tuple) and isinstance(b, tuple) and a[0] == b[0] == "limit" and a[1] != b[1]
    )


def resolve_params(p: Planned, data: Any) -> dict[str, Any]:
    """The action's arguments with ``from: data`` / ``from: data.NAME`` filled in."""
    params = dict(p.params)
    ref = params.get("from")
    if not isinstance(ref, str) or not isinstance(data, Mapping):
        return params
    entry: Any = data if ref == "data" else data.get(ref[len("data.") :])
    if not isinstance(entry, Mapping) or "value" not in entry:
        return params
    value = entry["value"]
    if p.name == "firewall_block":
        params["addresses"] = [str(v) for v in value] if isinstance(value, list) else []
    elif p.name == "set_setting":
        params["value"] = value
    return params


def judge(
    rule: str,
    p: Planned,
    trust_levels: Mapping[str, str],
    now: float,
    cooldown: Mapping[str, float],
    data: Any,
) -> Intent:
    spec = ACTIONS[p.name]
    why = refusal(trust_levels, spec.risk, spec.needs)
    until = cooldown.get(p.target)
    return Intent(
        rule=rule,
        action=p.action,
        name=p.name,
        params=resolve_params(p, data),
        target=p.target,
        risk=spec.risk,
        needed=spec.needs,
        allowed=why is None,
        refused=why,
        cooldown_until=until if until is not None and until > now else None,
        via=p.via,
        at=now,
    )
