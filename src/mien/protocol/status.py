"""How much of its persona an instance has in effect, and what its machine says besides.

:class:`MachineStatus` is what the agent reports beside the settings' outcomes: the
customizations the machine's users made and mien keeps, the managed files changed behind
mien's back (drift), each adaptation rule's phase and the latest automated actions. Every
list is bounded on the wire; an agent with more sends the newest or first ones and the
total. The agent sends it with its reports and, when it changed, on its own
(``PUT /instances/{id}/status``); the server stores it and shows it unchanged.

:class:`Effect` is the server's summary of the settings' outcomes (:func:`effect_of`): an
instance is "in sync" only when its agent applied the desired content *and* every setting
is in effect; otherwise ``mien instance list``/``show``, the API and the dashboard say how
much is (``partly in effect: 10 of 14 settings applied; 3 stored, not applied; 1 failed``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from mien.protocol.base import RequestModel, WireModel
from mien.protocol.outcomes import Outcome

MAX_CUSTOMIZATIONS = 200
MAX_DRIFT = 200
MAX_RULES = 200
MAX_ACTIONS = 20
MAX_VALUE = 1024
"""Characters of a customization's value (its JSON text) sent; longer ones are cut."""

Short = Annotated[str, StringConstraints(max_length=256)]
Text = Annotated[str, StringConstraints(max_length=4096)]

EffectState = Literal["full", "partial", "none", "unknown"]
RulePhase = Literal["inactive", "pending", "firing", "resolving"]


class CustomizationInfo(RequestModel):
    """A key the machine's users changed; mien keeps their value over the persona's."""

    key: Short
    value: Annotated[str, StringConstraints(max_length=MAX_VALUE + 16)] = Field(
        description="the value as JSON text, cut to about 1 KiB"
    )
    source: Annotated[str, StringConstraints(max_length=32)] = Field(
        description="user (mien customize set), captured (from an edited file), restored"
    )
    origin: Text = Field("", description="the file a captured value came from")


class RuleStatus(RequestModel):
    """One adaptation rule of the persona the machine runs, and its phase."""

    rule: Short
    phase: RulePhase
    since: datetime | None = Field(None, description="when the current phase began")


class ActionRecord(RequestModel):
    """One automated change the adaptation loop made (or tried)."""

    id: int = Field(ge=0, le=2**63 - 1)
    rule: Short
    action: Annotated[str, StringConstraints(max_length=64)]
    status: Annotated[str, StringConstraints(max_length=32)] = Field(
        description="retry, applied, requested, done, reverted or failed"
    )
    at: datetime
    error: Text = ""


class MachineStatus(RequestModel):
    """What the agent sees on its machine beside the settings' outcomes (bounded)."""

    at: datetime = Field(description="when the agent looked")
    persona: Annotated[str, StringConstraints(max_length=63)] | None = None
    customizations: list[CustomizationInfo] = Field(
        default_factory=list, max_length=MAX_CUSTOMIZATIONS
    )
    customizations_total: int = Field(
        0, ge=0, le=2**31, description="all of them, when more than sent"
    )
    drift: list[Text] = Field(
        default_factory=list,
        max_length=MAX_DRIFT,
        description="managed files whose content is not what mien last wrote",
    )
    drift_total: int = Field(0, ge=0, le=2**31)
    rules: list[RuleStatus] = Field(default_factory=list, max_length=MAX_RULES)
    actions: list[ActionRecord] = Field(
        default_factory=list, max_length=MAX_ACTIONS, description="the newest first"
    )


class Effect(WireModel):
    """How much of the persona the machine runs is in effect (from the settings' outcomes)."""

    state: EffectState = Field(
        description="full: every setting applied; partial: some; none: not one; "
        "unknown: the agent did not say"
    )
    total: int = 0
    applied: int = 0
    pending: int = 0
    stored: int = 0
    failed: int = 0
    summary: str = Field("", description="one line, as the CLI and dashboard show it")


class InstanceStatus(WireModel):
    """``GET /instances/{id}/status``: the effect and what the machine last reported."""

    instance_id: str
    in_sync: bool = Field(description="the agent applied the desired content (as on Instance)")
    effect: Effect
    machine: MachineStatus | None = Field(
        None, description="null until the agent reports it (older agents never do)"
    )


def effect_of(outcomes: Iterable[Mapping[str, Any]] | None, *, running: bool = True) -> Effect:
    """The effect of these outcomes (dicts with ``status``). ``None``: the agent reported no
    outcomes at all (unknown); ``running`` False: the machine runs no persona (none)."""
    if not running:
        return Effect(state="none", summary="no persona in effect")
    if outcomes is None:
        return Effect(state="unknown", summary="the agent did not report its settings")
    counts = {o.value: 0 for o in Outcome}
    for item in outcomes:
        raw = str(item.get("status", Outcome.FAILED.value))
        counts[raw if raw in counts else Outcome.FAILED.value] += 1
    total = sum(counts.values())
    applied = counts[Outcome.APPLIED.value]
    if applied == total:
        state: EffectState = "full"
        summary = f"in effect: all {total} settings applied" if total else "in effect"
    else:
        state = "partial" if applied else "none"
        head = "partly in effect" if applied else "not in effect"
        parts = [f"{applied} of {total} settings applied"]
        if counts[Outcome.PENDING.value]:
            parts.append(f"{counts[Outcome.PENDING.value]} pending")
        if counts[Outcome.STORED.value]:
            parts.append(f"{counts[Outcome.STORED.value]} stored, not applied")
        if counts[Outcome.FAILED.value]:
            parts.append(f"{counts[Outcome.FAILED.value]} failed")
        summary = f"{head}: " + "; ".join(parts)
    return Effect(
        state=state,
        total=total,
        applied=applied,
        pending=counts[Outcome.PENDING.value],
        stored=counts[Outcome.STORED.value],
        failed=counts[Outcome.FAILED.value],
        summary=summary,
    )


def fully_in_sync(in_sync: bool, effect: Effect) -> bool:
    """What the CLI and dashboard call "in sync": the desired content is applied *and*
    nothing of it is known not to be in effect (an agent that reports no outcomes counts as
    in effect). ``in_sync`` alone, the API's field, is what rollouts wait for."""
    return in_sync and effect.state in ("full", "unknown")
