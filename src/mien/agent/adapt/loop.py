"""The adaptation loop: the machine watching itself and acting within its persona's limits.

Every interval (the persona's ``telemetry.interval``, 15 s by default) :class:`Adaptation`
samples telemetry, updates the baselines, polls the data sources that are due, steps the
active persona's rules, and carries out what they decided (:mod:`mien.agent.adapt.changes`):
intents run, are refused or suppressed; resolved rules have their changes reverted;
changes past their lifetime are reverted unless their rule still fires; failed ones are
retried with backoff. Rule states (with their since-times) are saved on every transition,
so an agent killed mid-``for`` keeps its pending time.

It follows the persona the machine runs: a switch (by a person, the server or a rule)
swaps the rule set and ends the old rules' changes; a rollback finds the old rules'
states where it left them (they are kept per persona). Between ticks it sleeps. Each
tick writes ``ROOT/var/lib/mien/adapt-status.json`` for ``mien top``.

Run by ``mien agent run`` (in a thread beside the long poll) and ``mien agent run --local``.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mien.agent.adapt import overlays
from mien.agent.adapt.action_base import ActionFailed, Ctx
from mien.agent.adapt.changes import Runner
from mien.agent.adapt.feeds import Feeds, NoSources, write_status
from mien.agent.adapt.ledger import APPLIED, REVERTED, Ledger
from mien.agent.adapt.upload import record_samples
from mien.agent.state import State

if TYPE_CHECKING:
    from mien.agent.engine import Engine
    from mien.spec.models import Persona

DEFAULT_INTERVAL = 15.0
SAVE_BASELINES_EVERY = 60.0
FIRING = ("firing", "resolving")


def phase_of(state: Any) -> str:
    phase = getattr(state, "phase", "inactive")
    return str(getattr(phase, "value", phase))


def interval_of(persona: Persona) -> float:
    telemetry = getattr(persona, "telemetry", None)
    value = getattr(telemetry, "interval", None)
    seconds = getattr(value, "seconds", value)
    return float(seconds) if seconds else DEFAULT_INTERVAL


class Adaptation:
    """The loop of one machine root. :meth:`tick` once, or :meth:`run` until stopped."""

    def __init__(
        self,
        root: Path,
        engine: Callable[[], Engine],
        *,
        interval: float | None = None,
        has_server: bool = False,
        log: Callable[[str], None] = print,
        telemetry: Callable[[Persona, Path], Any] | None = None,
        sources: Callable[[Persona, Path], Any] | None = None,
        baselines: Any = None,
        clock: Callable[[], float] = time.time,
        fleet: Any = None,
    ) -> None:
        """``fleet``: the server's copies of fleet-wide sources
        (:class:`mien.agent.adapt.sources.FleetClient`); without it they are fetched
        directly."""
        self.root = root
        self.has_server = has_server
        self.log = log
        self.clock = clock
        self.fixed_interval = interval
        self.interval = interval or DEFAULT_INTERVAL
        self.state = State(root)
        self.ledger = Ledger(self.state)
        self.runner = Runner(root, self.ledger, engine, has_server=has_server, log=log)
        self.make_telemetry = telemetry or _telemetry
        self.make_sources = sources or (lambda persona, root: _sources(persona, root, fleet))
        self.baselines_module = baselines  # the module with Baselines and lifetime()
        self.stopping = threading.Event()
        self.known_history: str | None = None
        self.persona: Persona | None = None
        self.rules: Any = None
        self.states: dict[str, Any] = {}
        self.telemetry: Any = None
        self.feeds: Feeds | None = None
        self.baselines: Any = None
        self.saved_baselines = 0.0
        self.last: dict[str, Any] = {}

    @property
    def name(self) -> str:
        return str(self.persona.name or "") if self.persona is not None else ""

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._save_baselines()
        self._close_parts()
        self.state.close()

    # --- the loop ------------------------------------------------------------------------

    def run(self) -> None:
        """Tick every interval until :attr:`stopping` is set; sleeps in between."""
        try:
            while not self.stopping.is_set():
                started = self.clock()
                try:
                    self.tick(started)
                except Exception as exc:  # the loop outlives a bad tick, and says so
                    self.log(f"adaptation: tick failed: {type(exc).__name__}: {exc}")
                self.stopping.wait(max(0.05, self.interval - (self.clock() - started)))
        finally:
            self.close()

    def tick(self, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        self.follow(now)
        if self.rules is None or self.persona is None or self.feeds is None:
            return
        from mien.rules import Inputs

        reading = self.telemetry.sample(now)
        if self.has_server:  # queued for the server (mien.agent.adapt.upload)
            record_samples(self.state, reading.metrics, now)
        baseline, anomaly = self.baselines.update(reading.metrics, now)
        self.feeds.poll_due(now)
        data = self.feeds.entries(now)
        self.runner.data = data
        step = self.rules.step(
            Inputs(
                metrics=reading.metrics,
                baseline=baseline,
                anomaly=anomaly,
                events=reading.events,
                data=data,
                now=now,
            ),
            self.states,
        )
        self.states = dict(step.states)
        for t in step.transitions:
            self.ledger.event(
                f"rule.{t.to}",
                persona=self.name,
                rule=t.rule,
                from_=str(t.from_),
                to=str(t.to),
                at=t.at,
                why=str(t.why),
                truth=str(t.truth),
            )
        if step.transitions:
            self._save_states()
        if step.resolved:
            self.runner.resolved(self.name, list(step.resolved), now)
        for intent in step.fire:
            self.runner.intent(self.persona, intent, now)
        self.runner.retry_due(now)
        self.runner.expire(self.name, self.firing, now)
        self._accept_own_apply()
        self.follow(now)
        self.last = {"metrics": reading.metrics, "baseline": baseline, "anomaly": anomaly}
        self.last["errors"] = dict(getattr(reading, "errors", None) or {})
        self._write_status(now)
        if now - self.saved_baselines >= SAVE_BASELINES_EVERY:
            self._save_baselines()
            self.saved_baselines = now

    def firing(self, rule: str) -> bool:
        state = self.states.get(rule)
        return state is not None and phase_of(state) in FIRING

    # --- which persona -----------------------------------------------------------------

    def follow(self, now: float) -> None:
        """Load the persona the machine runs when it changed (switch, apply, rollback)."""
        raw = self.state.get_meta("active_history")
        if raw == self.known_history:
            return
        self.known_history = raw
        name = self.state.get_meta("active") or ""
        previous = self.name if self.persona is not None else None
        if previous is not None and previous != name:
            self._save_states()
            self.runner.end_persona(previous, now)
        # What the agent missed while it was not running: changes of another persona.
        for other in {c.persona for c in self.ledger.changes()} - {name}:
            self.runner.end_persona(other, now)
        self._load(name)
        known = overlays.base_of(self.ledger, self.state.get_meta("active_hash"))
        if self.persona is not None and (previous == name or known is not None):
            self._adopt(now)

    def _accept_own_apply(self) -> None:
        """After the loop's own apply of the same persona, its new history is not news."""
        if self.state.get_meta("active") == self.name:
            self.known_history = self.state.get_meta("active_history")

    def _load(self, name: str) -> None:
        from mien.agent.sources import Source, effective
        from mien.spec.errors import SpecError

        self.persona, self.rules = None, None
        raw = self.known_history
        if not name or not raw or not raw.isdigit():
            return
        entry, document, customs, extra = self.state.history_entry(int(raw))
        source = Source(entry.persona, document, dict(extra.get("locked_by", {})), entry.persona)
        try:
            persona = effective(source, customs).persona
        except SpecError as exc:
            self.log(f"adaptation: persona {name} is not valid here: {exc}")
            return
        try:
            self._build(name, persona)
        except Exception as exc:  # adaptation off for this persona, said once
            self.persona, self.rules = None, None
            self.log(f"adaptation: persona {name}: cannot adapt: {type(exc).__name__}: {exc}")
            self.ledger.event("persona.failed", persona=name, error=f"{type(exc).__name__}: {exc}")
            return
        rules = len(persona.adaptation_rules)
        self.log(f"adaptation: persona {name}: {rules} rule(s), every {self.interval:g}s")
        self.ledger.event(
            "persona.loaded", persona=name, rules=rules, interval=self.interval, history=raw
        )

    def _build(self, name: str, persona: Persona) -> None:
        from mien.rules import RuleSet, RuleState

        self.persona = persona
        self.interval = self.fixed_interval or interval_of(persona)
        self.rules = RuleSet.compile(persona)
        self.states = {}
        for rule, text in self.ledger.rule_states(name).items():
            try:
                self.states[rule] = RuleState.from_json(text)
            except ValueError as exc:  # a damaged row starts that rule over, and says so
                self.log(f"adaptation: rule {rule}: stored state dropped ({exc})")
        self._close_parts()
        self.telemetry = self.make_telemetry(persona, self.root)
        sources = self.make_sources(persona, self.root)
        saved = self.ledger.get(f"sources:{name}")
        if saved is not None and hasattr(sources, "from_json"):
            try:
                fleet = {"fleet": sources.fleet} if getattr(sources, "fleet", None) else {}
                sources = type(sources).from_json(persona, self.root, saved, **fleet)
            except (TypeError, ValueError, KeyError) as exc:
                self.log(f"adaptation: saved data source copies dropped ({exc})")
        self.feeds = Feeds(sources, self.ledger, name)
        direct = list(getattr(sources, "direct_fleet", ()))
        if direct:  # `mien agent run --local`: no server to ask
            self.log(
                f"adaptation: fleet-wide source(s) {', '.join(direct)} fetched directly "
                "from their origin: no server"
            )
            self.ledger.event("source.direct", persona=name, sources=direct, reason="no server")
        self._load_baselines(persona)

    def _adopt(self, now: float) -> None:
        """Someone applied this persona again, or rolled back to a state of it: that state
        is the base now (or, for a state the loop made, the base it was made from), and the
        settings whose rule still fires go over it again."""
        name = self.name
        found = overlays.active_source(self.ledger)
        if found is None:
            return
        known = overlays.base_of(self.ledger, self.state.get_meta("active_hash"))
        live = [
            c
            for c in self.ledger.changes([APPLIED])
            if c.action == "set_setting" and c.persona == name
        ]
        keep = [c for c in live if self.firing(c.rule)]
        for change in live:
            if change not in keep:
                self.runner.revert(change, "persona applied again", now, touch=False)
        if known is not None:  # a rollback to a state with settings the loop had made
            keys = {str(c.undo["key"]) for c in keep}
            for change in reversed(self.ledger.changes([REVERTED], limit=100_000)):
                key = str(change.undo.get("key"))
                if (
                    change.action == "set_setting"
                    and change.persona == name
                    and self.firing(change.rule)
                    and key not in keys
                ):
                    keys.add(key)
                    keep.append(change)
                    self.ledger.update_change(change.id, status=APPLIED, until=None)
                    self.ledger.event(
                        "action.applied",
                        persona=name,
                        rule=change.rule,
                        action=change.action,
                        params=change.params,
                        change=change.id,
                        message="kept after a rollback: its rule still fires",
                    )
        if not keep and known is None:
            overlays.remember_base(self.ledger, None)
            return
        items = {str(c.undo["key"]): c.undo["value"] for c in keep}
        ctx = Ctx(self.root, name, "adaptation", 0, self.ledger, self.runner.engine, log=self.log)
        overlays.remember_base(self.ledger, known or found[1])
        try:
            overlays.apply_with(ctx, items, "automated settings laid over the new state")
        except ActionFailed as exc:
            self.log(f"adaptation: could not lay automated settings over the new state: {exc}")
        if not items:
            overlays.remember_base(self.ledger, None)
        self.known_history = self.state.get_meta("active_history")

    # --- persistence ---------------------------------------------------------------------

    def _save_states(self) -> None:
        if self.persona is None:
            return
        self.ledger.save_rule_states(
            self.name, {rule: state.to_json() for rule, state in self.states.items()}
        )

    def _load_baselines(self, persona: Persona) -> None:
        baselines = self.baselines_module or _module("baselines")
        decay = persona.decay_rate
        saved = self.ledger.get("baselines")
        self.baselines = baselines.Baselines(decay)
        if saved is not None:
            try:
                self.baselines = baselines.Baselines.from_json(saved, decay)
            except (TypeError, ValueError, KeyError) as exc:
                self.log(f"adaptation: saved baselines dropped ({exc})")
        lifetime = float(baselines.lifetime(decay))
        self.runner.lifetime = lifetime if math.isfinite(lifetime) else None

    def _save_baselines(self) -> None:
        if self.baselines is not None:
            self.ledger.put(baselines=self.baselines.to_json())

    def _close_parts(self) -> None:
        for part in (self.telemetry, self.feeds):
            close = getattr(part, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()

    def _write_status(self, now: float) -> None:
        rules = {}
        for rule, state in self.states.items():
            rules[rule] = {"phase": phase_of(state), "since": getattr(state, "since", None)}
        write_status(
            self.root,
            {
                "ts": now,
                "persona": self.name,
                "interval": self.interval,
                "pid": os.getpid(),
                "rules": rules,
                "sources": self.feeds.status() if self.feeds is not None else {},
                **self.last,
            },
        )


def _module(name: str) -> Any:
    # Looked up by name: the collectors are optional parts of the agent, and a machine
    # without them says so through the loop's "cannot adapt" event rather than failing.
    from importlib import import_module

    return import_module(f"mien.agent.adapt.{name}")


def _telemetry(persona: Persona, root: Path) -> Any:
    return _module("telemetry").Telemetry(persona, root)


def _sources(persona: Persona, root: Path, fleet: Any = None) -> Any:
    if not persona.external_data_sources:
        return NoSources()  # and no HTTP client loaded (8 MiB of an idle agent)
    return _module("sources").DataSources(persona, root, None, fleet=fleet)
