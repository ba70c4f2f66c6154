"""Where provider requests come from, turned into :class:`ProviderRequest`: an agent's
``scale`` action (an ``adapt.action.requested`` event in its telemetry) and a persona whose
``resource_requirements`` differ from the instance's size. Pure; used by the telemetry
route and the replica's size reconciler (:mod:`mien.server.providers.sizes`).

Which provider serves an instance: the first declared provider, by name, whose tag selector
matches the instance's tags.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from mien.server.providers.base import ProviderRequest
from mien.server.resolve import selector_matches
from mien.spec.values import CpuCount, Size

NO_PROVIDER = "(none)"
"""The provider named on a request no declared provider serves (stored as refused)."""
SCALE_EVENT = "adapt.action.requested"
MIB = 1024 * 1024


def provider_for(
    providers: Iterable[tuple[str, Mapping[str, Any]]], tags: Mapping[str, str]
) -> str | None:
    """The name of the first ``(name, selector)`` serving ``tags`` (sorted by name)."""
    for name, selector in sorted(providers, key=lambda p: p[0]):
        if selector_matches(selector, tags):
            return name
    return None


def _relative(value: Any) -> str | None:
    if isinstance(value, str) and value.strip()[:1] in "+-":
        return value.strip()
    return None


def scale_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """A ``scale`` action's ``cpu``/``memory`` as resize params (``cpus``, ``memory_mib``).
    A relative memory step (``"+1"``) is in GiB; ValueError for what cannot be read."""
    out: dict[str, Any] = {}
    cpu, memory = params.get("cpu"), params.get("memory")
    if cpu is not None:
        step = _relative(cpu)
        out["cpus"] = step if step else math.ceil(CpuCount.parse(cpu).cores)
    if memory is not None:
        step = _relative(memory)
        if step:
            out["memory_mib"] = (
                f"{'+' if float(step) >= 0 else '-'}{round(abs(float(step)) * 1024)}"
            )
        else:
            out["memory_mib"] = Size.parse(memory).bytes // MIB
    if not out:
        raise ValueError("a scale request names neither cpu nor memory")
    return out


def scale_requests(
    instance_id: str, events: Iterable[Any], provider: str | None
) -> list[ProviderRequest]:
    """A resize request per ``scale`` event (objects with ``seq``, ``kind``, ``detail``),
    keyed by the event's (instance, seq), which the telemetry store keeps once."""
    out = []
    for event in events:
        detail = event.detail if isinstance(event.detail, Mapping) else {}
        if event.kind != SCALE_EVENT or detail.get("action") != "scale":
            continue
        found = detail.get("params")
        raw: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        try:
            params = scale_params(raw)
        except ValueError:
            # Stored as asked and refused by the gate, so the operator sees what came.
            params = {str(k): v for k, v in raw.items()}
        out.append(
            ProviderRequest(
                provider=provider or NO_PROVIDER,
                instance_id=instance_id,
                kind="resize",
                params=params,
                reason=f"scale by rule {detail.get('rule')!r} of persona {detail.get('persona')!r}",
                idempotency_key=f"scale:{instance_id}:{event.seq}",
            )
        )
    return out


def wanted_size(document: Mapping[str, Any] | None) -> dict[str, int]:
    """The ``cpus``/``memory_mib`` a persona's ``resource_requirements`` ask for."""
    needs = (document or {}).get("resource_requirements") or {}
    out: dict[str, int] = {}
    try:
        if needs.get("cpu") is not None:
            out["cpus"] = math.ceil(CpuCount.parse(needs["cpu"]).cores)
        if needs.get("memory") is not None:
            out["memory_mib"] = Size.parse(needs["memory"]).bytes // MIB
    except ValueError:
        return {}
    return out


def differs(wanted: Mapping[str, int], known: Mapping[str, Any]) -> bool:
    """True when a wanted dimension is unknown or not what the instance has."""
    return any(known.get(k) is None or int(known[k]) != v for k, v in wanted.items())


def size_request(
    instance_id: str, provider: str, persona: str, version: int | None, wanted: Mapping[str, int]
) -> ProviderRequest:
    """The resize asked when ``persona`` (at ``version``) is in effect: once per target."""
    parts = ",".join(f"{k}={v}" for k, v in sorted(wanted.items()))
    return ProviderRequest(
        provider=provider,
        instance_id=instance_id,
        kind="resize",
        params=dict(wanted),
        reason=f"persona {persona!r} v{version} needs {parts}",
        idempotency_key=f"persona-size:{instance_id}:{persona}@{version}:{parts}",
    )
