"""What the agent tells its server about the machine beside the settings' outcomes.

:func:`collect` reads, from the machine's state: the customizations its users made (what
``mien customize list`` shows), the managed files whose content is not what mien last wrote
(drift, as ``mien status`` finds it), the phase of each adaptation rule of the persona it
runs (the adaptation ledger) and the newest automated changes. Each list is cut to the
bounds of :class:`mien.protocol.status.MachineStatus`, with the totals said. :func:`digest`
is what stays the same while nothing changed: :class:`StatusSender` sends the status with
each report and, between reports, only when it changed (used by :mod:`mien.agent.sync`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from mien.agent.adapt.ledger import Ledger
from mien.agent.state import State
from mien.protocol.status import (
    MAX_ACTIONS,
    MAX_CUSTOMIZATIONS,
    MAX_DRIFT,
    MAX_RULES,
    MAX_VALUE,
)

STATUS_EVERY = 15.0
"""Seconds between looks at the machine between reports (after a long-poll answer)."""


def _iso(ts: float | None) -> str | None:
    if ts is None or ts <= 0:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _value(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= MAX_VALUE else text[:MAX_VALUE] + " …"


def customizations(state: State) -> tuple[list[dict[str, Any]], int]:
    items = state.customizations()
    out = [
        {
            "key": c.key[:256],
            "value": _value(c.value),
            "source": c.source[:32],
            "origin": c.origin[:4096],
        }
        for c in items[:MAX_CUSTOMIZATIONS]
    ]
    return out, len(items)


def rules(state: State, persona: str) -> list[dict[str, Any]]:
    """Every rule of ``persona`` the ledger knows or the persona names, with its phase (a
    rule that never left ``inactive`` has no stored state)."""
    from mien.rules import RuleState

    out: dict[str, dict[str, Any]] = {}
    raw = state.get_meta("active_history")
    if raw and raw.isdigit():
        try:
            _, document, _, _ = state.history_entry(int(raw))
        except KeyError:
            document = {}
        for rule in document.get("adaptation_rules") or []:
            if isinstance(rule, dict) and isinstance(rule.get("name"), str):
                name = rule["name"][:256]
                out[name] = {"rule": name, "phase": "inactive", "since": None}
    for name, text in Ledger(state).rule_states(persona).items():
        try:
            parsed = RuleState.from_json(text)
        except ValueError:
            continue  # the loop drops a damaged state and starts the rule over
        out[name[:256]] = {"rule": name[:256], "phase": parsed.phase, "since": _iso(parsed.since)}
    return list(out.values())[:MAX_RULES]


def actions(state: State) -> list[dict[str, Any]]:
    return [
        {
            "id": c.id,
            "rule": c.rule[:256],
            "action": c.action[:64],
            "status": c.status[:32],
            "at": _iso(c.applied_at or c.created_at),
            "error": (c.error or "")[:4096],
        }
        for c in Ledger(state).recent_changes(MAX_ACTIONS)
    ]


def collect(state: State, drift: Callable[[], list[str]]) -> dict[str, Any]:
    """The machine's status as the wire's ``MachineStatus`` (a dict). ``drift`` lists the
    drifted managed files; when it raises (another mien holds the state), drift is left
    out rather than the status."""
    persona = (state.get_meta("active") or "")[:63] or None
    custom, custom_total = customizations(state)
    try:
        drifted = sorted(drift())
    except Exception:  # a status without drift beats none; the next one tries again
        drifted = []
    return {
        "at": _iso(time.time()),
        "persona": persona,
        "customizations": custom,
        "customizations_total": custom_total,
        "drift": [p[:4096] for p in drifted[:MAX_DRIFT]],
        "drift_total": len(drifted),
        "rules": rules(state, persona or ""),
        "actions": actions(state),
    }


def digest(status: dict[str, Any]) -> str:
    """Equal for two statuses that say the same (the time they were taken aside)."""
    same = {k: v for k, v in status.items() if k != "at"}
    return hashlib.sha256(json.dumps(same, sort_keys=True, default=str).encode()).hexdigest()


class StatusSender:
    """The machine's status for each report (:meth:`for_report`) and, between reports,
    sent with ``put`` only when it changed since last sent (:meth:`refresh`)."""

    def __init__(
        self,
        state: State,
        drift: Callable[[], list[str]],
        put: Callable[[dict[str, Any]], None],
        warn: Callable[[str], None],
        *,
        every: float = STATUS_EVERY,
    ) -> None:
        self.state = state
        self.drift = drift
        self.put = put
        self.warn = warn
        self.every = every
        self.sent: str | None = None  # digest of the status last sent
        self.checked = 0.0
        self.failing = False

    def for_report(self) -> dict[str, Any]:
        """The status to send with a report (reports are delivered at least once, so it
        counts as sent)."""
        status = collect(self.state, self.drift)
        self.sent = digest(status)
        self.checked = time.monotonic()
        return status

    def refresh(self, *, force: bool = False) -> bool:
        """Look at most every ``every`` seconds (``force``: now) and send the status if it
        changed; True when sent. A failure is said once and tried again next time."""
        from mien.client import ClientError

        if not force and time.monotonic() - self.checked < self.every:
            return False
        self.checked = time.monotonic()
        status = collect(self.state, self.drift)
        found = digest(status)
        if found == self.sent:
            return False
        try:
            self.put(status)
        except ClientError as exc:
            if not self.failing:
                self.warn(f"machine status not delivered ({exc}); sent again when it can be")
            self.failing = True
            return False
        self.failing = False
        self.sent = found
        return True
