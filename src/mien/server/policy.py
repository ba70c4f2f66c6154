"""Applying the fleet policy (:mod:`mien.spec.policy`): pure functions over one stored
policy and an instance's tags.

* :func:`trust_entries` — which ``trust`` entries match an instance (its memo key);
* :func:`cap` — a composed persona with its ``trust_levels`` lowered to the lowest ``max``
  of every matching entry, and the list of what was lowered by which entry;
* :func:`switch_refusal` — why the policy does not let a person switch an instance to a
  persona (``None``: it does, or the policy says nothing about switching).

Used by the fleet cache (:mod:`mien.server.fleet`, once per distinct desired state), the
activation and switching routes, and the policy routes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from mien.server.resolve import Effective, selector_matches
from mien.spec.policy import Policy
from mien.spec.values import TRUST_ORDER


@dataclass(frozen=True)
class PolicyDoc:
    """The current policy version as the server holds it."""

    version: int
    content_hash: str
    policy: Policy
    document: dict[str, Any]
    created_at: datetime | None = None
    created_by: str | None = None


@dataclass(frozen=True)
class Capped:
    """One trust level the policy lowered."""

    risk: str
    granted: str  # what the persona grants
    allowed: str  # what the policy allows
    entry: str  # which entry set the cap: ``trust[0] (env=prod)``

    def as_dict(self) -> dict[str, str]:
        return {
            "risk": self.risk,
            "granted": self.granted,
            "allowed": self.allowed,
            "entry": self.entry,
        }


def selector_text(selector: Mapping[str, Any]) -> str:
    if not selector:
        return "every instance"
    parts = []
    for key, value in selector.items():
        shown = "|".join(value) if isinstance(value, list) else value
        parts.append(f"{key}={shown}")
    return ",".join(parts)


def entry_label(policy: Policy, index: int) -> str:
    return f"trust[{index}] ({selector_text(policy.trust[index].selector)})"


def trust_entries(policy: Policy | None, tags: Mapping[str, str]) -> tuple[int, ...]:
    """The indices of the ``trust`` entries whose selector matches ``tags``."""
    if policy is None:
        return ()
    return tuple(i for i, t in enumerate(policy.trust) if selector_matches(t.selector, tags))


def limits(policy: Policy, entries: Sequence[int]) -> dict[str, tuple[str, int]]:
    """Per risk category, the lowest ``max`` of ``entries`` and the first entry setting it."""
    out: dict[str, tuple[str, int]] = {}
    for index in entries:
        for risk, level in policy.trust[index].max.items():
            found = out.get(risk)
            if found is None or TRUST_ORDER[level] < TRUST_ORDER[found[0]]:
                out[risk] = (level, index)
    return out


def cap_levels(
    trust_levels: Mapping[str, Any], caps: Mapping[str, tuple[str, int]], policy: Policy
) -> tuple[dict[str, Any], list[Capped]]:
    """``trust_levels`` with every level above its cap lowered to it, and what was lowered.
    A category the persona does not list is ``none`` already and stays unlisted."""
    out = dict(trust_levels)
    lowered: list[Capped] = []
    for risk, granted in trust_levels.items():
        cap = caps.get(risk)
        level = str(granted).lower()
        if cap is None or level not in TRUST_ORDER:
            continue
        allowed, index = cap
        if TRUST_ORDER[level] > TRUST_ORDER[allowed]:
            out[risk] = allowed
            lowered.append(Capped(risk, level, allowed, entry_label(policy, index)))
    return out, lowered


def cap(
    effective: Effective, policy: Policy | None, entries: Sequence[int]
) -> tuple[Effective, tuple[Capped, ...]]:
    """``effective`` as the agent should get it under ``policy``: its ``trust_levels``
    capped, its hash that of the capped document. Unchanged when nothing is lowered."""
    from mien.spec.canonical import content_hash

    if policy is None or not entries or effective.data is None:
        return effective, ()
    levels = effective.data.get("trust_levels") or {}
    if not isinstance(levels, dict) or not levels:
        return effective, ()
    capped_levels, lowered = cap_levels(levels, limits(policy, entries), policy)
    if not lowered:
        return effective, ()
    data = {**effective.data, "trust_levels": capped_levels}
    return replace(effective, data=data, hash=content_hash(data)), tuple(lowered)


# --- switching --------------------------------------------------------------------------


def switch_refusal(
    policy: Policy | None,
    tags: Mapping[str, str],
    user: str,
    groups: Iterable[str],
    persona: str,
) -> str | None:
    """Why the fleet policy refuses ``user`` (in server ``groups``) switching an instance
    with ``tags`` to ``persona``; ``None`` when an entry allows it, or when the policy has
    no ``switching`` list (then the persona's ``access_controls`` decide alone)."""
    if policy is None or policy.switching is None:
        return None
    member_of = set(groups)
    scoped = [r for r in policy.switching if selector_matches(r.selector, tags)]
    if not scoped:
        return "no entry of the fleet policy's switching list covers this instance"
    for rule in scoped:
        who = "*" in rule.users or user in rule.users or bool(member_of & set(rule.groups))
        what = "*" in rule.personas or persona in rule.personas
        if who and what:
            return None
    return (
        f"the fleet policy's switching list does not let {user} switch this instance to {persona!r}"
    )
