"""The persisted state of one rule: its phase, since when, and what stops a re-fire.

The engine (:mod:`mien.rules.engine`) reads and returns these; the agent stores them as
JSON (``to_json``/``from_json``) so that a restarted agent carries on where it stopped: a
rule pending since ``t`` stays pending since ``t`` and fires at ``t + for``, not later.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast

Phase = Literal["inactive", "pending", "firing", "resolving"]
PHASES: tuple[Phase, ...] = ("inactive", "pending", "firing", "resolving")
TRUTHS = ("true", "false", "unknown")


@dataclass
class RuleState:
    """One rule's state.

    ``since``: when the current phase began. ``fired_at``: when the current firing began
    (None when not firing or resolving). ``keep_until``: while firing, the end of the
    ``keep_firing_for`` grace after ``when`` stopped holding. ``cooldown``: per action
    target, the time before which that action does not run again. ``truth``: ``when``'s
    last value (``true``/``false``/``unknown``). ``data_changed_at``: for a data source's
    rule, the ``changed_at`` of the copy it last fired on.
    """

    phase: Phase = "inactive"
    since: float = 0.0
    truth: str = "unknown"
    fired_at: float | None = None
    keep_until: float | None = None
    cooldown: dict[str, float] = field(default_factory=dict)
    data_changed_at: float | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> RuleState:
        """Parse a stored state; raises ValueError on anything malformed."""
        try:
            raw: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"rule state is not JSON: {exc.msg}") from None
        if not isinstance(raw, dict):
            raise ValueError("rule state must be a JSON object")
        phase = raw.get("phase", "inactive")
        if phase not in PHASES:
            raise ValueError(f"unknown rule phase {phase!r}")
        truth = raw.get("truth", "unknown")
        if truth not in TRUTHS:
            raise ValueError(f"unknown truth value {truth!r}")
        cooldown = raw.get("cooldown") or {}
        if not isinstance(cooldown, dict):
            raise ValueError("cooldown must be an object of target: time")
        return cls(
            phase=cast(Phase, phase),
            since=_time(raw.get("since", 0.0), "since"),
            truth=truth,
            fired_at=_opt_time(raw.get("fired_at"), "fired_at"),
            keep_until=_opt_time(raw.get("keep_until"), "keep_until"),
            cooldown={str(k): _time(v, f"cooldown.{k}") for k, v in cooldown.items()},
            data_changed_at=_opt_time(raw.get("data_changed_at"), "data_changed_at"),
        )

    def copy(self) -> RuleState:
        return RuleState(
            self.phase,
            self.since,
            self.truth,
            self.fired_at,
            self.keep_until,
            dict(self.cooldown),
            self.data_changed_at,
        )


def _time(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number of seconds")
    return float(value)


def _opt_time(value: Any, name: str) -> float | None:
    return None if value is None else _time(value, name)
