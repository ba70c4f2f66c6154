"""May the server call a provider about an instance: the checks, in order, each returning
why not (a sentence) or None. Pure; used by the provider queue when a request is submitted.

A provider call resizes or reconfigures a machine from outside, so it is judged as the
``resource_scaling`` risk: the instance's persona must grant the level the request needs
(``scale`` needs ``medium``), and the fleet policy may cap that further
(:func:`fleet_trust_cap`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mien.rules import trust
from mien.server.providers.base import RISK
from mien.server.resolve import selector_matches

_STEP = re.compile(r"^[+-]\d+$")
RESIZE_KEYS = ("cpus", "memory_mib")


def malformed(kind: str, params: Mapping[str, Any]) -> str | None:
    """Why a request cannot be sent as it is: a ``resize`` takes ``cpus`` and/or
    ``memory_mib``, each a whole number of at least 1 or a step such as ``"+1"``."""
    if kind != "resize":
        return None
    unknown = sorted(set(params) - set(RESIZE_KEYS))
    if unknown:
        return f"a resize takes cpus and/or memory_mib, not {', '.join(unknown)}"
    if not any(params.get(k) is not None for k in RESIZE_KEYS):
        return "a resize names neither cpus nor memory_mib"
    for key in RESIZE_KEYS:
        value = params.get(key)
        if value is None:
            continue
        step = isinstance(value, str) and _STEP.match(value.strip())
        whole = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        if not (step or whole):
            return f"{key}: {value!r} is neither a whole number (1 or more) nor a step like '+1'"
    return None


def served(
    selector: Mapping[str, str | list[str]], tags: Mapping[str, str], name: str
) -> str | None:
    if selector_matches(selector, tags):
        return None
    return f"provider {name!r} does not serve this instance (its selector {dict(selector)} does not match the instance's tags)"


def persona_trust(persona: str | None, trust_levels: Mapping[str, str], needed: str) -> str | None:
    if persona is None:
        return "the instance has no persona, so nothing grants resource_scaling trust"
    why = trust.refusal(trust_levels, RISK, needed)
    return None if why is None else f"persona {persona!r} {why}"


def fleet_trust_cap(cap: tuple[str, str] | None, needed: str) -> str | None:
    """The fleet policy's cap on ``resource_scaling`` for the instance — ``(allowed,
    entry)`` as :mod:`mien.server.policy` computed it, None when the policy caps nothing
    there: why the fleet refuses ``needed``, or None. The one place the cap is checked."""
    if cap is None:
        return None
    allowed, entry = cap
    if trust.allowed({RISK: allowed}, RISK, needed):
        return None
    return f"the fleet policy ({entry}) caps resource_scaling at {allowed}, the call needs {needed}"


def refusal(
    *,
    kind: str,
    params: Mapping[str, Any],
    name: str,
    selector: Mapping[str, str | list[str]],
    tags: Mapping[str, str],
    persona: str | None,
    trust_levels: Mapping[str, str],
    needed: str,
    cap: tuple[str, str] | None = None,
) -> str | None:
    """The first reason a call is refused, or None when it may go ahead. ``trust_levels``
    are the persona's own; ``cap`` the fleet policy's on ``resource_scaling``."""
    return (
        malformed(kind, params)
        or served(selector, tags, name)
        or persona_trust(persona, trust_levels, needed)
        or fleet_trust_cap(cap, needed)
    )
