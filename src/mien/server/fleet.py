"""The per-replica cache of everything that decides desired state, and the long-poll hub.

Holds the latest persona versions, the bindings, every instance's tags and explicit
activation, and which instances have remote commands waiting. Long-polls read only this:
no database read and no validation on the hot path. Resolution is memoised three ways:

* per distinct set of tags → the matching bindings;
* per distinct :class:`~mien.server.resolve.Choice` → the composed effective persona;
* per (choice, activation, matching fleet-policy trust entries) → the answer, its trust
  levels capped by the policy (:mod:`mien.server.policy`), encoded once with orjson and
  handed, as the same bytes, to every agent that should get it.

A change (from this replica's own writes, or another's via LISTEN/NOTIFY) reloads just
the items it names, drops the memos it invalidates, and wakes only the waiting agents
whose answer is now different from what they hold.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from mien.server import policy as policies
from mien.server import resolve
from mien.server.notify import Change
from mien.server.policy import Capped, PolicyDoc
from mien.server.resolve import ActivationRef, BindingDoc, Choice, Effective, PersonaDoc
from mien.server.store import activations as activations_q
from mien.server.store import bindings as bindings_q
from mien.server.store import commands as commands_q
from mien.server.store import instances as instances_q
from mien.server.store import personas as personas_q
from mien.server.store import policy as policy_q
from mien.server.store.db import Database
from mien.server.waiters import Waiters

log = logging.getLogger("mien.server.fleet")


@dataclass(frozen=True)
class Member:
    """An instance as the resolver sees it."""

    tags: dict[str, str]
    activation: ActivationRef | None


@dataclass(frozen=True)
class Desired:
    """One answer to ``GET /agent/desired``, shared by every instance it applies to."""

    effective: Effective  # as the agent gets it: trust levels capped by the fleet policy
    state: str
    payload: dict[str, Any]
    body: bytes
    capped: tuple[Capped, ...] = ()

    @property
    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in self.payload.items() if k not in ("state", "document", "commands")}


def state_token(content_hash: str | None, activation_id: str | None) -> str:
    """The opaque ``state`` an agent sends back as ``known``."""
    raw = f"{content_hash or 'none'}|{activation_id or ''}".encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def _persona_doc(row: personas_q.LatestRow | personas_q.VersionRow) -> PersonaDoc:
    if isinstance(row, personas_q.LatestRow):
        return PersonaDoc(
            row.name,
            row.version,
            row.content_hash,
            row.document,
            row.default_persona,
            row.default_since,
            row.deleted_at is not None,
        )
    return PersonaDoc(row.name, row.version, row.content_hash, row.document)


def _binding_doc(row: bindings_q.BindingRow) -> BindingDoc:
    return BindingDoc(
        row.name,
        row.selector,
        row.persona,
        row.override,
        row.priority,
        row.version,
        "add" if row.mode == "add" else "replace",
    )


def _policy_doc(row: policy_q.PolicyRow | None) -> PolicyDoc | None:
    from mien.spec.policy import from_stored

    if row is None:
        return None
    return PolicyDoc(
        row.version,
        row.content_hash,
        from_stored(row.document),
        row.document,
        row.created_at,
        row.created_by,
    )


class Fleet:
    """The replica's view of the fleet; see the module docstring."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.personas: dict[str, PersonaDoc] = {}
        self.pinned: dict[tuple[str, int], PersonaDoc] = {}
        self.bindings: dict[str, BindingDoc] = {}
        self.policy: PolicyDoc | None = None
        self.members: dict[str, Member] = {}
        self.pending_commands: set[str] = set()
        self.waiters = Waiters()
        self.seen: dict[str, datetime] = {}
        self._written: dict[str, datetime] = {}  # last-seen times already in the database
        self._ranked: list[BindingDoc] = []
        self._default: str | None = None
        self._matches: dict[frozenset[tuple[str, str]], tuple[BindingDoc, ...]] = {}
        self._trust: dict[frozenset[tuple[str, str]], tuple[int, ...]] = {}
        self._effective: dict[tuple[Any, ...], Effective] = {}
        self._encoded: dict[tuple[Any, ...], Desired] = {}
        self._per_instance: dict[str, Desired] = {}
        # The answer for a tag set and activation: what an instance's answer depends on, so
        # instances alike (most of a fleet) share one computation after a change.
        self._by_shape: dict[tuple[frozenset[tuple[str, str]], ActivationRef | None], Desired] = {}
        self._lock = asyncio.Lock()
        self.resolutions = 0  # compositions computed (for metrics and benchmarks)

    # --- loading ---------------------------------------------------------------------

    async def load_all(self, now: datetime) -> None:
        async with self._lock:
            await self._load_all(now)
            self._invalidate()
        self.waiters.wake_where(self._stale)

    async def _load_all(self, now: datetime) -> None:
        async with self.db.read() as s:
            personas = {r.name: _persona_doc(r) for r in await personas_q.snapshot(s)}
            bindings = {r.name: _binding_doc(r) for r in await bindings_q.list_all(s)}
            policy = _policy_doc(await policy_q.latest(s))
            keys = await instances_q.keys(s)
            refs = await self._activation_refs(
                s, [k.activation_id for k in keys if k.activation_id]
            )
            pending = await commands_q.instances_with_pending(s, now)
            self.personas, self.bindings, self.policy = personas, bindings, policy
            self.members = {
                k.id: Member(dict(k.tags), refs.get(k.activation_id or "")) for k in keys
            }
            self.pinned = {}
            await self._ensure_pinned(s, self.members.values())
        self.pending_commands = pending

    @staticmethod
    async def _activation_refs(s: Any, ids: list[str]) -> dict[str, ActivationRef]:
        rows = await activations_q.get_many(s, ids)
        return {r.id: ActivationRef(r.id, r.persona, r.version) for r in rows.values()}

    async def _ensure_pinned(self, s: Any, members: Iterable[Member]) -> None:
        """Load old versions that explicit activations of ``members`` still pin."""
        for member in list(members):
            ref = member.activation
            if ref is None:
                continue
            latest = self.personas.get(ref.persona)
            key = (ref.persona, ref.version)
            if (latest is None or latest.version != ref.version) and key not in self.pinned:
                row = await personas_q.get_version(s, ref.persona, ref.version)
                if row is not None:
                    self.pinned[key] = _persona_doc(row)

    async def apply(self, changes: Iterable[Change], now: datetime) -> None:
        """Reload what ``changes`` name and wake the agents whose answer changed."""
        changes = list(changes)
        kinds = {c.kind for c in changes}
        if "all" in kinds:
            await self.load_all(now)
            return
        personas = sorted({c.key for c in changes if c.kind == "persona"})
        bindings = sorted({c.key for c in changes if c.kind == "binding"})
        instances = sorted({c.key for c in changes if c.kind == "instance"})
        commands = {c.key for c in changes if c.kind == "command"}
        policy = "policy" in kinds
        if not (personas or bindings or instances or commands or policy):
            return
        async with self._lock:
            async with self.db.read() as s:
                if policy:
                    self.policy = _policy_doc(await policy_q.latest(s))
                if personas:
                    rows = {r.name: r for r in await personas_q.snapshot(s, personas)}
                    for name in personas:
                        row = rows.get(name)
                        if row is None:
                            self.personas.pop(name, None)
                        else:
                            self.personas[name] = _persona_doc(row)
                if bindings:
                    for name in bindings:
                        b = await bindings_q.get(s, name)
                        if b is None:
                            self.bindings.pop(name, None)
                        else:
                            self.bindings[name] = _binding_doc(b)
                if instances:
                    keys = {k.id: k for k in await instances_q.keys(s, instances)}
                    refs = await self._activation_refs(
                        s, [k.activation_id for k in keys.values() if k.activation_id]
                    )
                    for iid in instances:
                        key = keys.get(iid)
                        if key is None:
                            self.members.pop(iid, None)
                            self.pending_commands.discard(iid)
                        else:
                            self.members[iid] = Member(
                                dict(key.tags), refs.get(key.activation_id or "")
                            )
                        self._per_instance.pop(iid, None)
                if personas:
                    # A new latest version: activations pinning the old one need it kept.
                    names = set(personas)
                    await self._ensure_pinned(
                        s,
                        (
                            m
                            for m in self.members.values()
                            if m.activation is not None and m.activation.persona in names
                        ),
                    )
                if instances:
                    await self._ensure_pinned(
                        s, (self.members[i] for i in instances if i in self.members)
                    )
            self.pending_commands.update(c for c in commands if c in self.members)
            if personas or bindings or policy:
                self._invalidate()
        if personas or bindings or policy:
            self.waiters.wake_where(self._stale)
        for iid in {*instances, *commands}:
            self.waiters.wake(iid)

    def _invalidate(self) -> None:
        self._ranked = resolve.rank(list(self.bindings.values()))
        self._default = resolve.default_persona(self.personas)
        self._matches.clear()
        self._trust.clear()
        self._effective.clear()
        self._encoded.clear()
        self._per_instance.clear()
        self._by_shape.clear()

    def _stale(self, instance_id: str, known: str | None) -> bool:
        desired = self.desired(instance_id)
        return desired is None or desired.state != known

    # --- resolution ------------------------------------------------------------------

    def matches(self, tags: dict[str, str]) -> tuple[BindingDoc, ...]:
        key = frozenset(tags.items())
        found = self._matches.get(key)
        if found is None:
            found = self._matches[key] = resolve.matching(self._ranked, tags)
        return found

    def trust_entries(self, tags: dict[str, str]) -> tuple[int, ...]:
        """The fleet policy's ``trust`` entries that match ``tags`` (memoised per tag set)."""
        key = frozenset(tags.items())
        found = self._trust.get(key)
        if found is None:
            policy = self.policy.policy if self.policy else None
            found = self._trust[key] = policies.trust_entries(policy, tags)
        return found

    def with_policy(
        self, effective: Effective, tags: dict[str, str]
    ) -> tuple[Effective, tuple[Capped, ...]]:
        """``effective`` with its trust levels capped by the fleet policy for ``tags``."""
        policy = self.policy.policy if self.policy else None
        return policies.cap(effective, policy, self.trust_entries(tags))

    def choice(self, member: Member) -> Choice:
        return resolve.choose(
            self.matches(member.tags), member.activation, self.personas, self._default
        )

    def effective(self, choice: Choice) -> Effective:
        found = self._effective.get(choice.key)
        if found is None:
            self.resolutions += 1
            found = resolve.compose_choice(choice, self.personas, self.bindings, self.pinned)
            self._effective[choice.key] = found
        return found

    def desired(self, instance_id: str) -> Desired | None:
        """The answer for ``instance_id`` (``None`` if it is not a known instance)."""
        found = self._per_instance.get(instance_id)
        if found is not None:
            return found
        member = self.members.get(instance_id)
        if member is None:
            return None
        shape = (frozenset(member.tags.items()), member.activation)
        found = self._by_shape.get(shape)
        if found is not None:
            self._per_instance[instance_id] = found
            return found
        if len(self._encoded) + len(self._by_shape) > 2 * len(self.members) + 1000:
            # Answers of old activations and old tag sets pile up between fleet-wide
            # changes (which clear everything); start afresh rather than grow for ever.
            self._matches.clear()
            self._trust.clear()
            self._effective.clear()
            self._encoded.clear()
            self._by_shape.clear()
        choice = self.choice(member)
        entries = self.trust_entries(member.tags)
        key = (choice.key, choice.activation_id, choice.bindings, entries)
        found = self._encoded.get(key)
        if found is None:
            policy = self.policy.policy if self.policy else None
            effective, capped = policies.cap(self.effective(choice), policy, entries)
            found = self._encoded[key] = self._encode(effective, choice, capped, self.policy)
        self._by_shape[shape] = found
        self._per_instance[instance_id] = found
        return found

    @staticmethod
    def _encode(
        effective: Effective,
        choice: Choice,
        capped: tuple[Capped, ...] = (),
        policy: PolicyDoc | None = None,
    ) -> Desired:
        state = state_token(effective.hash, choice.activation_id)
        payload: dict[str, Any] = {
            "state": state,
            "source": choice.source,
            "persona": choice.persona,
            "version": effective.version,
            "hash": effective.hash,
            "activation_id": choice.activation_id,
            "bindings": list(choice.bindings),
            "added": list(choice.additions),
            "error": effective.error,
            "policy_version": policy.version if policy else None,
            "capped": [c.as_dict() for c in capped],
            "document": effective.data,
            "commands": [],
        }
        return Desired(effective, state, payload, orjson.dumps(payload), capped)

    @property
    def default_persona(self) -> str | None:
        return self._default

    @property
    def ranked_bindings(self) -> list[BindingDoc]:
        return self._ranked

    # --- questions the API asks ------------------------------------------------------

    def uses_of(self, persona: str) -> list[str]:
        """Why deleting ``persona`` would change something (empty: nothing uses it)."""
        uses: list[str] = []
        for b in self.bindings.values():
            if b.persona == persona:
                uses.append(f"binding {b.name!r} selects it")
        for doc in self.personas.values():
            if not doc.deleted and doc.document.get("extends") == persona:
                uses.append(f"persona {doc.name!r} extends it")
        instances = []
        for iid in self.members:
            desired = self.desired(iid)
            resolved = desired.effective.resolved if desired else None
            if desired is not None and (
                desired.effective.choice.persona == persona
                or (resolved is not None and persona in resolved.chain)
            ):
                instances.append(iid)
        if instances:
            shown = ", ".join(instances[:5]) + (" …" if len(instances) > 5 else "")
            uses.append(f"{len(instances)} instance(s) run it: {shown}")
        return uses

    def take_seen(self, min_gap: float) -> dict[str, datetime]:
        """Last-seen times worth writing: those at least ``min_gap`` seconds newer than what
        the database already has (an agent polling every 30 s is not a write every 30 s)."""
        seen, self.seen = self.seen, {}
        out = {}
        for iid, at in seen.items():
            written = self._written.get(iid)
            if written is None or (at - written).total_seconds() >= min_gap:
                out[iid] = at
            else:
                self.seen[iid] = at  # keep the newest for the next round
        return out

    def mark_written(self, seen: dict[str, datetime]) -> None:
        self._written.update(seen)
