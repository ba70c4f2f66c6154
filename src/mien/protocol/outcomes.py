"""What became of each setting of a persona on a machine: a closed type, not a free string.

Handlers produce one :class:`Outcome` with a :class:`Reason` for each setting they looked
at; the agent keeps them in its history, ``mien plan``/``apply``/``status`` print them, and
the agent's report carries them so the server shows the same thing (``mien instance show``).
A setting has exactly one outcome: where several handlers speak about it, the one that
leaves the user waiting longest wins (see :func:`settle`), so nothing is ever shown both
applied and pending.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from pydantic import Field

from mien.protocol.base import WireModel


class Outcome(StrEnum):
    APPLIED = "applied"
    """In effect on the machine now."""
    PENDING = "pending"
    """Written, and takes effect when something else happens (its reason says what)."""
    STORED = "stored"
    """Kept (in ``/etc/mien/settings.json`` or the persona), not applied (its reason says why)."""
    FAILED = "failed"
    """mien tried and could not; the message says what went wrong."""


class Reason(StrEnum):
    IN_EFFECT = "in-effect"
    # pending: waiting for what
    NOT_INSTALLED = "not-installed"
    """A program the setting needs is not installed yet."""
    SERVICE_STOPPED = "service-stopped"
    """A daemon the setting needs (e.g. cron) is not running."""
    NEEDS_CONFIGURATION = "needs-configuration"
    """Another part of the machine's configuration must change first."""
    AGENT = "agent"
    """Acted on by the agent's adaptation loop while it runs (``mien agent run``)."""
    # stored: why not applied
    NO_EFFECT = "no-effect"
    """Nothing on the machine reads this setting; it is kept for programs that ask."""
    UNSUPPORTED = "unsupported"
    """mien has no way to apply this value here."""
    USER_CHOICE = "user-choice"
    """The user changed it themselves, and their choice is kept."""
    # failed
    ERROR = "error"


ALLOWED: dict[Outcome, frozenset[Reason]] = {
    Outcome.APPLIED: frozenset({Reason.IN_EFFECT}),
    Outcome.PENDING: frozenset(
        {Reason.NOT_INSTALLED, Reason.SERVICE_STOPPED, Reason.NEEDS_CONFIGURATION, Reason.AGENT}
    ),
    Outcome.STORED: frozenset({Reason.NO_EFFECT, Reason.UNSUPPORTED, Reason.USER_CHOICE}),
    Outcome.FAILED: frozenset({Reason.ERROR}),
}
"""Which reasons each outcome may give."""

DEFAULT_REASON: dict[Outcome, Reason] = {
    Outcome.APPLIED: Reason.IN_EFFECT,
    Outcome.PENDING: Reason.NEEDS_CONFIGURATION,
    Outcome.STORED: Reason.NO_EFFECT,
    Outcome.FAILED: Reason.ERROR,
}

# When two handlers speak about one setting, the outcome further from "in effect" is shown.
_RANK = {Outcome.APPLIED: 0, Outcome.STORED: 1, Outcome.PENDING: 2, Outcome.FAILED: 3}


class SettingOutcome(WireModel):
    """One setting's outcome, as stored in history and sent in the agent's report."""

    setting: str = Field(max_length=256)
    status: Outcome
    reason: Reason
    message: str = Field("", max_length=4096)


def from_stored(data: Mapping[str, Any]) -> SettingOutcome:
    """Read an outcome kept in history, including entries written before outcomes had a
    reason (when a failure was called ``error``)."""
    raw = str(data.get("status", "failed"))
    status = Outcome(raw) if raw in Outcome.__members__.values() else Outcome.FAILED
    reason_raw = str(data.get("reason", ""))
    reason = Reason(reason_raw) if reason_raw in Reason.__members__.values() else None
    if reason is None or reason not in ALLOWED[status]:
        reason = DEFAULT_REASON[status]
    return SettingOutcome(
        setting=str(data.get("setting", "")),
        status=status,
        reason=reason,
        message=str(data.get("message", "")),
    )


def settle(items: Iterable[SettingOutcome]) -> list[SettingOutcome]:
    """One outcome per setting, in first-seen order: the worst wins, messages are joined."""
    merged: dict[str, SettingOutcome] = {}
    for item in items:
        found = merged.get(item.setting)
        if found is None:
            merged[item.setting] = item
            continue
        worst = item if _RANK[item.status] > _RANK[found.status] else found
        messages = [m for m in (found.message, item.message) if m]
        merged[item.setting] = worst.model_copy(update={"message": "; ".join(messages)})
    return list(merged.values())
