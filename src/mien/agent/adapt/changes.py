"""Carrying out what the rules decided. The rules judged each intent (trust, cooldown, a
heavier rule wanting the opposite) and expanded ``respond: NAME``; here an intent that may
run is recorded as an automated change and run by its executor, one that may not is
recorded as refused, suppressed or cooling down. A failed change is retried with
exponential backoff; a change is reverted when its rule resolves, when a newer change of
the same rule replaces it, or when its lifetime is up while the rule no longer fires.

Used by :mod:`mien.agent.adapt.loop`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mien.agent.adapt.action_base import ActionFailed, Ctx, Executor
from mien.agent.adapt.executors import executors
from mien.agent.adapt.ledger import (
    APPLIED,
    DONE,
    FAILED,
    REQUESTED,
    RETRY,
    REVERTED,
    Change,
    Ledger,
)

if TYPE_CHECKING:
    from mien.agent.engine import Engine
    from mien.spec.models import Persona

SUPERSEDES = ("set_setting", "firewall_block")  # a re-fire replaces the rule's earlier one
BACKOFF_BASE = 2.0  # seconds before the first retry; doubled each time
BACKOFF_CAP = 600.0
MAX_ATTEMPTS = 8


def backoff(attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failure (jittered ±20 %, capped)."""
    delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, attempts - 1))
    return float(delay * random.uniform(0.8, 1.2))


class Runner:
    """Runs, retries and reverts the automated changes of one machine."""

    def __init__(
        self,
        root: Path,
        ledger: Ledger,
        engine: Callable[[], Engine],
        *,
        has_server: bool = False,
        log: Callable[[str], None] = print,
    ) -> None:
        self.root = root
        self.ledger = ledger
        self.engine = engine
        self.has_server = has_server
        self.log = log
        self.executors: dict[str, Executor] = executors()
        self.data: Mapping[str, Any] = {}
        self.lifetime: float | None = None  # seconds a reversible change lives (decay_rate)

    def ctx(self, change: Change) -> Ctx:
        return Ctx(
            self.root,
            change.persona,
            change.rule,
            change.id,
            self.ledger,
            self.engine,
            self.data,
            self.has_server,
            self.log,
        )

    # --- what the rules decided ----------------------------------------------------------

    def intent(self, persona: Persona, intent: Any, now: float) -> None:
        """Act on one intent of a rule step (``respond`` is already expanded, and trust,
        cooldown and priorities already judged, by the rules)."""
        name = str(persona.name or "")
        base = {
            "rule": intent.rule,
            "action": intent.name,
            "params": _plain(intent.params),
            "target": intent.target,
            "via": intent.via,
        }
        if not intent.allowed:
            self.ledger.event(
                "action.refused",
                persona=name,
                reason=str(intent.refused or "beyond the persona's trust_levels"),
                risk=intent.risk,
                needed=intent.needed,
                **base,
            )
            return
        if intent.suppressed_by:
            self.ledger.event(
                "action.suppressed", persona=name, suppressed_by=intent.suppressed_by, **base
            )
            return
        if intent.cooldown_until is not None:
            self.ledger.event(
                "action.cooldown", persona=name, cooldown_until=intent.cooldown_until, **base
            )
            return
        change_id = self.ledger.add_change(name, intent.rule, intent.name, base["params"], now)
        self.run(self.ledger.change(change_id), now)

    # --- running ---------------------------------------------------------------------------

    def run(self, change: Change, now: float) -> None:
        executor = self.executors.get(change.action)
        attempts = change.attempts + 1
        try:
            if executor is None:
                raise ActionFailed(f"unknown action {change.action!r}", retry=False)
            done = executor.apply(self.ctx(change), change.params)
        except ActionFailed as exc:
            self._failed(change, attempts, str(exc), exc.retry, now)
            return
        except Exception as exc:  # an executor's bug must not stop the loop
            self._failed(change, attempts, f"{type(exc).__name__}: {exc}", True, now)
            return
        if executor.reversible:
            status = APPLIED
        else:
            status = REQUESTED if done.status == "requested" else DONE
        until = now + self.lifetime if status == APPLIED and self.lifetime else None
        self.ledger.update_change(
            change.id,
            status=status,
            applied_at=now,
            until=until,
            undo=done.undo,
            attempts=attempts,
            next_try=None,
            error="",
        )
        if status == APPLIED and change.action in SUPERSEDES:
            for older in self.ledger.changes([APPLIED]):
                same = (older.persona, older.rule, older.action) == (
                    change.persona,
                    change.rule,
                    change.action,
                )
                if same and older.id < change.id:
                    self.revert(older, "replaced by a newer change of its rule", now)
        self.ledger.event(
            f"action.{status}",
            persona=change.persona,
            rule=change.rule,
            action=change.action,
            params=change.params,
            change=change.id,
            message=done.message,
            until=until,
            attempt=attempts,
        )

    def _failed(self, change: Change, attempts: int, error: str, retry: bool, now: float) -> None:
        if retry and attempts < MAX_ATTEMPTS:
            delay = backoff(attempts)
            self.ledger.update_change(
                change.id, status=RETRY, attempts=attempts, next_try=now + delay, error=error
            )
        else:
            delay = None
            self.ledger.update_change(
                change.id, status=FAILED, attempts=attempts, next_try=None, error=error
            )
        self.log(f"rule {change.rule}: {change.action} failed: {error}")
        self.ledger.event(
            "action.failed",
            persona=change.persona,
            rule=change.rule,
            action=change.action,
            params=change.params,
            change=change.id,
            error=error,
            attempt=attempts,
            retry_in=None if delay is None else round(delay, 3),
        )

    def retry_due(self, now: float) -> None:
        for change in self.ledger.changes([RETRY]):
            if change.next_try is not None and change.next_try <= now:
                self.run(change, now)

    # --- undoing ---------------------------------------------------------------------------

    def revert(self, change: Change, why: str, now: float, *, touch: bool = True) -> bool:
        """Undo ``change`` (``touch``: run its executor's revert; without, only record that
        the machine no longer has it). False when undoing failed (tried again later)."""
        if change.status == RETRY:
            self.ledger.update_change(change.id, status=REVERTED, next_try=None)
            self.ledger.event(
                "action.abandoned",
                persona=change.persona,
                rule=change.rule,
                action=change.action,
                change=change.id,
                why=why,
            )
            return True
        executor = self.executors.get(change.action)
        if touch and executor is not None and executor.reversible:
            try:
                executor.revert(self.ctx(change), change.undo)
            except (ActionFailed, OSError) as exc:
                retry_at = now + backoff(change.attempts + 1)
                self.ledger.update_change(
                    change.id, until=retry_at, attempts=change.attempts + 1, error=str(exc)
                )
                self.ledger.event(
                    "action.revert_failed",
                    persona=change.persona,
                    rule=change.rule,
                    action=change.action,
                    change=change.id,
                    error=str(exc),
                    retry_at=retry_at,
                )
                return False
        self.ledger.update_change(change.id, status=REVERTED, until=None, error="")
        self.ledger.event(
            "action.reverted",
            persona=change.persona,
            rule=change.rule,
            action=change.action,
            params=change.params,
            change=change.id,
            why=why,
        )
        return True

    def resolved(self, persona: str, rules: list[str], now: float) -> None:
        wanted = set(rules)
        for change in self.ledger.changes():
            if change.persona == persona and change.rule in wanted:
                self.revert(change, "rule resolved", now)

    def expire(self, persona: str, firing: Callable[[str], bool], now: float) -> None:
        """Changes whose lifetime is up: kept (another lifetime) while their rule fires,
        else reverted."""
        for change in self.ledger.changes([APPLIED]):
            if change.until is None or change.until > now:
                continue
            if change.persona == persona and firing(change.rule):
                until = now + self.lifetime if self.lifetime else None
                self.ledger.update_change(change.id, until=until)
                continue
            self.revert(change, "lifetime over", now)

    def end_persona(self, persona: str, now: float) -> None:
        """The machine left ``persona``: its rules' changes end. Settings went with the
        switch itself (the new persona was applied without them); the rest is undone."""
        from mien.agent.adapt import firewall, overlays

        live = [c for c in self.ledger.changes() if c.persona == persona]
        for change in live:
            touch = change.action not in ("set_setting", "firewall_block")
            self.revert(change, "persona switched", now, touch=touch)
        if any(c.action == "firewall_block" for c in live):
            try:
                firewall.remove_table()
            except ActionFailed as exc:
                self.log(f"firewall table not removed: {exc}")
        overlays.remember_base(self.ledger, None)


def _plain(params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters as JSON data (durations and sizes as the language writes them)."""
    return dict(json.loads(json.dumps(dict(params), default=str)))
