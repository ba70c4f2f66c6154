"""The one interface every provider implements, and the request it is handed.

A request comes from three places: an agent's ``scale`` action (a machine rule asked for
more or fewer cores or memory), a fleet rule's ``provider`` action, and the activation of a
persona whose ``resource_requirements`` differ from the instance's size. Whatever the
source, it is a :class:`ProviderRequest` with an idempotency key, so a request retried after
a timeout or a server restart is acted on once. Used by the provider queue, the
orchestrator and each driver (``webhook``, ``libvirt``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Kind = Literal["resize", "call"]
RISK = "resource_scaling"
"""The risk category every provider call is judged under."""


@dataclass(frozen=True)
class ProviderRequest:
    """What to ask a provider for, about one instance.

    ``resize`` carries ``cpus`` and/or ``memory_mib`` in ``params``: a whole number, or a
    relative step as a string (``"+1"``, ``"-1024"``) that the driver resolves against the
    current size; ``call`` carries whatever the fleet rule gave (a webhook receiver
    interprets it).
    """

    provider: str
    instance_id: str
    kind: Kind
    params: Mapping[str, Any]
    reason: str
    """Who asked and why, for the audit record and the instance's page."""
    idempotency_key: str
    """The same key for every attempt of one request."""
    needed: str = "medium"
    """The ``resource_scaling`` trust level the instance's persona must grant (``scale``
    needs ``medium``, see :mod:`mien.spec.actions`)."""


@dataclass(frozen=True)
class ProviderOutcome:
    """What one attempt achieved. ``retry`` says a failure may pass (a timeout, a 5xx);
    a refusal (4xx, an unknown domain) is final."""

    ok: bool
    detail: str
    retry: bool = False
    result: Mapping[str, Any] = field(default_factory=dict)


class Provider(Protocol):
    """A driver: one attempt per call, no retries of its own (the queue retries)."""

    name: str

    async def call(self, request: ProviderRequest) -> ProviderOutcome: ...
