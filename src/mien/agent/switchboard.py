"""What a person on the machine may do through the agent's socket, and doing it for them.

:class:`Switchboard` answers the requests of :mod:`mien.agent.local_api` for one
:class:`Person` (identified by the kernel, never by the request): the personas they may
switch to, a preview (the plan), the switch, history and rollback, and the customizations
of unlocked keys.

Who may do what:

* root may do everything;
* anyone may switch to a persona whose ``access_controls.users`` names them or one of their
  groups (``group:NAME``) — on a machine without a server, from the personas in
  ``ROOT/etc/mien/personas``; on a fleet machine the switch is a request to the server on
  their behalf, which decides with the same rule and records the activation (so the server
  keeps the switch instead of reverting it);
* rolling back to a history entry is a switch to that entry's persona (locally, byte for
  byte; on a fleet machine, a request for that persona's latest version); entry 0 (the
  machine before mien) is root's alone;
* customizations belong to the machine's persona user (``--user``): only they and root
  may read or change them.

Every action and every refusal is audited with the person's name.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mien.agent.audit_log import acting_for
from mien.agent.engine import Engine, EngineError, Refused
from mien.agent.state import State
from mien.protocol.switching import (
    Caller,
    Candidate,
    LocalCustomization,
    LocalHistoryEntry,
    Outcome,
    PlanLine,
    Preview,
    refusal,
)
from mien.spec.errors import SpecError

if TYPE_CHECKING:
    from mien.agent.enrollment import Credentials
    from mien.agent.plan import Plan
    from mien.client import AgentClient


class Denied(Exception):
    """The person may not do this (403); the message says why."""


class Missing(Exception):
    """No such persona or entry (404)."""


class Upstream(Exception):
    """The fleet server could not be asked (502)."""


@dataclass(frozen=True)
class Person:
    """Who calls, as the kernel said (SO_PEERCRED) and the user database names them."""

    uid: int
    user: str
    groups: tuple[str, ...] = ()

    @property
    def root(self) -> bool:
        return self.uid == 0


@dataclass
class Switchboard:
    """The operations of the local API on one machine root."""

    root: Path
    user: str | None = None  # the persona user (whose customizations the machine keeps)
    creds: Credentials | None = None  # set on a fleet machine
    client_factory: Callable[[], AgentClient] | None = None
    _engine_factory: Callable[[], Engine] | None = field(default=None, repr=False)

    def engine(self) -> Engine:
        if self._engine_factory is not None:
            return self._engine_factory()
        return Engine(self.root, user=self.user)

    # --- who -------------------------------------------------------------------------

    def persona_user(self) -> str | None:
        if self.user:
            return self.user
        if State.exists(self.root):
            with State(self.root) as state:
                return state.get_meta("user") or None
        return None

    def owns_customizations(self, person: Person) -> bool:
        return person.root or (person.user == self.persona_user())

    def caller(self, person: Person) -> Caller:
        return Caller(
            uid=person.uid,
            user=person.user,
            groups=list(person.groups),
            root=person.root,
            persona_user=self.persona_user(),
            owns_customizations=self.owns_customizations(person),
            fleet=self.creds.server if self.creds else None,
        )

    def audit(self, person: Person, event: str, **detail: Any) -> None:
        with State(self.root) as state, state.transaction():
            state.audit(event, actor=f"local:{person.user}", via="socket", **detail)

    def deny(self, person: Person, what: str, reason: str, **detail: Any) -> Denied:
        self.audit(person, "local_api.refused", request=what, reason=reason, **detail)
        return Denied(reason)

    # --- personas --------------------------------------------------------------------

    def _api(self) -> AgentClient:
        assert self.client_factory is not None
        return self.client_factory()

    def _ask(self, call: Any) -> Any:
        from mien.client import ClientError, Forbidden, NotFound

        with self._api() as api:
            try:
                return api.send(call)
            except Forbidden as exc:
                raise Denied(str(exc)) from None
            except NotFound as exc:
                raise Missing(str(exc)) from None
            except ClientError as exc:
                raise Upstream(
                    f"the fleet server {self.creds and self.creds.server}: {exc}"
                ) from None

    def candidates(self, person: Person) -> list[Candidate]:
        """Every persona this person could be offered, each with ``allowed`` and why not."""
        if self.creds is not None:
            from mien.client.switching import switchable

            found = self._ask(switchable(self.creds.instance_id, person.user, person.groups))
            return list(found.items)
        engine = self.engine()
        out = []
        for name, path in sorted(engine.catalog.names().items()):
            try:
                data = engine.source(path).data
            except (EngineError, SpecError, OSError):
                continue  # a persona that does not resolve is not offered
            why = None if person.root else refusal(data, person.user, person.groups)
            out.append(
                Candidate(
                    name=name,
                    display_name=data.get("display_name"),
                    description=data.get("description"),
                    allowed=why is None,
                    reason=why,
                )
            )
        return out

    def personas(self, person: Person) -> list[Candidate]:
        """The personas this person may switch to (what ``GET /v1/personas`` lists)."""
        return [c for c in self.candidates(person) if c.allowed]

    def _allowed(self, person: Person, name: str, what: str) -> Candidate:
        for candidate in self.candidates(person):
            if candidate.name == name:
                if not candidate.allowed:
                    raise self.deny(
                        person,
                        what,
                        f"{person.user} may not use persona {name!r}: {candidate.reason}",
                        persona=name,
                    )
                return candidate
        raise Missing(f"no persona {name!r} (see `mien switch --list`)")

    # --- preview and switch ----------------------------------------------------------

    def _plan(self, name: str, person: Person) -> Plan:
        engine = self.engine()
        if self.creds is not None:
            from mien.client.switching import document

            doc = self._ask(document(self.creds.instance_id, name, person.user, person.groups))
            label = f"server:{name}@v{doc.version}"
            return engine.plan_source(engine.source_from_data(doc.document, label))
        return engine.plan_source(engine.source(engine.catalog.names()[name]))

    def preview(self, person: Person, name: str) -> Preview:
        self._allowed(person, name, "preview")
        with acting_for(person.user):
            plan = self._plan(name, person)
        lines = [
            PlanLine(handler=c.handler, action=c.action, target=c.path, detail=c.summary)
            for c in plan.files
        ] + [
            PlanLine(handler=o.handler, action="run", target=o.key, detail=o.summary)
            for o in plan.operations
        ]
        notes = [
            f"{o['setting']}: {o['status']} ({o.get('message', '')})"
            for o in plan.outcomes()
            if o.get("status") != "applied"
        ]
        return Preview(
            persona=name, active=plan.previous, changes=plan.changes, lines=lines, notes=notes
        )

    def switch(self, person: Person, name: str, wait: float) -> Outcome:
        self._allowed(person, name, "switch")
        self.audit(person, "switch.requested", persona=name, fleet=bool(self.creds))
        if self.creds is not None:
            return self._fleet_switch(person, name, wait)
        engine = self.engine()
        with acting_for(person.user):
            result = engine.apply(engine.catalog.names()[name])
        changes = result.plan.changes if result.applied else 0
        return Outcome(
            ok=True,
            message=f"switched to {name}: {changes} change{'s' * (changes != 1)}",
            active=name,
            changes=changes,
        )

    def _fleet_switch(self, person: Person, name: str, wait: float) -> Outcome:
        from mien.client.switching import request_switch

        assert self.creds is not None
        activation = self._ask(
            request_switch(self.creds.instance_id, name, person.user, person.groups)
        )
        where = f"{person.user} on {self.creds.instance_id}"
        deadline = time.monotonic() + wait
        while True:
            with State(self.root) as state:
                applied = state.get_meta("server_hash")
                active = state.get_meta("active")
            if applied == activation.desired_hash and active == name:
                return Outcome(
                    ok=True,
                    message=f"switched to {name} (the server recorded it, requested by {where})",
                    active=name,
                    activation_id=activation.id,
                )
            if time.monotonic() >= deadline:
                return Outcome(
                    ok=False,
                    message=f"the server recorded the switch to {name} (requested by {where}); "
                    "the agent has not applied it yet",
                    active=active,
                    activation_id=activation.id,
                )
            time.sleep(0.1)

    # --- history and rollback --------------------------------------------------------

    def history(self, person: Person) -> list[LocalHistoryEntry]:
        entries, current = self.engine().history(50)
        try:
            allowed = {c.name for c in self.personas(person)}
        except Upstream:
            allowed = set()  # the history is local; what may be rolled back waits for the server
        return [
            LocalHistoryEntry(
                id=e.id,
                persona=e.persona or None,
                kind=e.kind,
                applied_at=e.applied_at,
                note=e.note or None,
                current=e.id == current,
                may_roll_back=e.id != current and (person.root or e.persona in allowed),
            )
            for e in entries
        ]

    def rollback(self, person: Person, to: int | None, wait: float) -> Outcome:
        entries, current = self.engine().history()
        if to is None:
            earlier = [e.id for e in entries if current is not None and e.id < current]
            if not earlier:
                raise Missing("nothing to roll back to: this is the first applied state")
            to = max(earlier)
        if to == 0:
            if not person.root:
                raise self.deny(
                    person, "rollback", "only root may return the machine to before mien"
                )
            persona = ""
        else:
            found = [e for e in entries if e.id == to]
            if not found:
                raise Missing(f"no history entry #{to}")
            persona = found[0].persona
            if not person.root:
                self._allowed(person, persona, "rollback")
        if self.creds is not None:
            if not persona:
                raise Denied("on a fleet machine the server decides; clear its activation instead")
            self.audit(person, "switch.requested", persona=persona, rollback_to=to, fleet=True)
            return self._fleet_switch(person, persona, wait)
        with acting_for(person.user):
            result = self.engine().rollback(to)
        return Outcome(
            ok=True,
            message=f"rolled back to #{to} ({persona or 'before mien'})",
            active=persona or None,
            changes=result.plan.changes,
        )

    # --- customizations --------------------------------------------------------------

    def _owner(self, person: Person, what: str) -> None:
        if not self.owns_customizations(person):
            owner = self.persona_user()
            raise self.deny(
                person,
                what,
                f"the customizations on this machine are {owner!r}'s (its persona user); "
                f"{person.user} may neither read nor change them"
                if owner
                else "this machine has no persona user yet; only root may customize it",
            )

    def customizations(self, person: Person) -> list[LocalCustomization]:
        self._owner(person, "customizations")
        items, _saved = self.engine().customizations()
        return [LocalCustomization(key=c.key, value=c.value, source=c.source) for c in items]

    def customize(self, person: Person, key: str, value: Any, unset: bool) -> Outcome:
        self._owner(person, "customize")
        with acting_for(person.user):
            try:
                result = self.engine().customize(key, value, unset=unset)
            except Refused as exc:
                raise Denied(str(exc)) from None
        verb = "removed" if unset else "stored"
        return Outcome(
            ok=True,
            message=f"customization {key} {verb}",
            active=result.plan.persona if result else None,
            changes=result.plan.changes if result and result.applied else 0,
        )
