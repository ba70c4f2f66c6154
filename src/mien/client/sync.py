"""The synchronous client of the mien API, used by the ``mien`` CLI (and scripts, CI).

::

    with Client("https://mien.internal:8470", token) as api:
        api.create_persona(Path("developer.yaml"))
        api.create_binding("devs", {"team": "dev"}, "developer")
        activation = api.activate("i-0abc", "developer")
        api.wait_activation(activation.id)

Every failure is a :class:`~mien.client.errors.ClientError` (see that module for which ones
are worth retrying). Collections are paged by the server; the ``list_*`` methods follow the
pages and return everything.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from mien.client import errors, ops
from mien.client._http import Session, build
from mien.client.admin import AdminCalls
from mien.client.effectiveness import EffectivenessCalls
from mien.protocol import (
    Activation,
    ActivePersona,
    Binding,
    BindingIn,
    DefaultPersona,
    EffectivePersona,
    FleetSummary,
    Health,
    HistoryEntry,
    Instance,
    PersonaDiff,
    PersonaSummary,
    PersonaVersion,
    VersionSummary,
    WhoAmI,
)
from mien.protocol.status import InstanceStatus
from mien.protocol.telemetry import MetricsAnswer, TelemetryEvent

T = TypeVar("T")
Document = Mapping[str, Any] | str | bytes | Path
"""A persona document: a mapping (sent as JSON), YAML/JSON text or bytes, or a file."""


class Client(Session, AdminCalls, EffectivenessCalls):
    """An operator's session with one mien server, authenticated by one bearer token."""

    # --- service -------------------------------------------------------------------

    def health(self) -> Health:
        return self.send(ops.health())

    def whoami(self) -> WhoAmI:
        return self.send(ops.whoami())

    # --- personas ------------------------------------------------------------------

    def create_persona(self, document: Document, *, source: str | None = None) -> PersonaVersion:
        """Store a new persona (version 1); :class:`Conflict` if the name exists.

        ``source`` (default: a :class:`~pathlib.Path`'s file name) is shown in problem
        positions, and its stem names a persona whose document has no ``name``, as for
        ``mien validate``."""
        return self.send(ops.create_persona(document, source))

    def update_persona(
        self,
        name: str,
        document: Document,
        *,
        if_match: str | None = None,
        source: str | None = None,
    ) -> PersonaVersion:
        """Store a new version. With ``if_match`` (an ``etag`` you read), a concurrent
        update makes this raise :class:`PreconditionFailed` instead of overwriting it."""
        return self.send(ops.update_persona(name, document, if_match, source))

    def get_persona(self, name: str, *, include_deleted: bool = False) -> PersonaVersion:
        return self.send(ops.get_persona(name, include_deleted))

    def get_persona_yaml(self, name: str) -> str:
        """The latest version's canonical YAML, as ``mien render`` prints it."""
        return self.send(ops.get_persona_yaml(name))

    def list_personas(self, *, include_deleted: bool = False) -> list[PersonaSummary]:
        out: list[PersonaSummary] = []
        after: str | None = None
        while True:
            page = self.send(ops.list_personas(include_deleted, after))
            out.extend(page.items)
            if not page.next:
                return out
            after = page.next

    def delete_persona(self, name: str, *, force: bool = False) -> None:
        """Soft-delete (every version is kept). :class:`Conflict` if in use, unless ``force``."""
        self.send(ops.delete_persona(name, force))

    def set_default_persona(self, name: str) -> DefaultPersona:
        """Make ``name`` the fleet's default persona (what an instance with no activation
        and no matching binding runs); any other default is cleared."""
        return self.send(ops.set_default_persona(name))

    def unset_default_persona(self, name: str) -> DefaultPersona:
        """Stop ``name`` being the fleet's default (nothing happens if it is not)."""
        return self.send(ops.unset_default_persona(name))

    def persona_versions(self, name: str) -> list[VersionSummary]:
        return self.send(ops.persona_versions(name)).items

    def persona_version(self, name: str, version: int) -> PersonaVersion:
        return self.send(ops.persona_version(name, version))

    def persona_diff(
        self, name: str, from_: int | None = None, to: int | None = None
    ) -> PersonaDiff:
        return self.send(ops.persona_diff(name, from_, to))

    # --- instances -----------------------------------------------------------------

    def iter_instances(
        self,
        *,
        tags: Mapping[str, str] | None = None,
        persona: str | None = None,
        hostname: str | None = None,
        include_deleted: bool = False,
        noncompliant: bool | None = None,
        page_size: int = 500,
    ) -> Iterator[Instance]:
        after: str | None = None
        while True:
            page = self.send(
                ops.list_instances(
                    tags, persona, include_deleted, after, page_size, hostname, noncompliant
                )
            )
            yield from page.items
            if not page.next:
                return
            after = page.next

    def list_instances(self, **filters: Any) -> list[Instance]:
        """Every instance matching ``tags`` (all must match), desired ``persona``,
        ``hostname`` and, when given, ``noncompliant`` (out of fleet policy or not)."""
        return list(self.iter_instances(**filters))

    def get_instance(self, instance_id: str) -> Instance:
        return self.send(ops.get_instance(instance_id))

    def find_instance(self, ref: str) -> Instance:
        """The instance whose id is ``ref``, else the one whose host name is ``ref``.
        :class:`NotFound` when none is; :class:`Conflict` (code ``ambiguous``, the
        candidates' ids in its message) when the host name names several."""
        try:
            return self.get_instance(ref)
        except errors.NotFound:
            pass
        found = list(self.iter_instances(hostname=ref, page_size=20))
        if len(found) == 1:
            return found[0]
        if not found:
            raise errors.NotFound(
                f"instance {ref!r} not found (no instance has that id or host name)",
                code="not_found",
                status=404,
            )
        ids = ", ".join(sorted(i.id for i in found))
        raise errors.Conflict(
            f"host name {ref!r} names {len(found)} instances: {ids}; name one by its id",
            code="ambiguous",
            status=409,
        )

    def set_tags(self, instance_id: str, tags: Mapping[str, str | None]) -> Instance:
        """Merge ``tags`` into the instance's: a value sets a tag, ``None`` removes it."""
        return self.send(ops.set_tags(instance_id, tags))

    def delete_instance(self, instance_id: str) -> None:
        self.send(ops.delete_instance(instance_id))

    def active_persona(self, instance_id: str) -> ActivePersona:
        return self.send(ops.active_persona(instance_id))

    def effective_persona(self, instance_id: str) -> EffectivePersona:
        return self.send(ops.effective_persona(instance_id))

    def instance_history(self, instance_id: str) -> list[HistoryEntry]:
        return self.send(ops.instance_history(instance_id)).items

    def instance_status(self, instance_id: str) -> InstanceStatus:
        """How much of its persona is in effect, and what its agent reports of the machine."""
        return self.send(ops.instance_status(instance_id))

    def fleet_summary(self) -> FleetSummary:
        return self.send(ops.fleet_summary())

    # --- activations ---------------------------------------------------------------

    def activate(self, instance_id: str, persona: str, *, version: int | None = None) -> Activation:
        """Ask the instance to run ``persona`` (its latest version unless ``version``).
        Returns at once with the pending record; see :meth:`wait_activation`."""
        return self.send(ops.activate(instance_id, persona, version))

    def clear_activation(self, instance_id: str) -> None:
        """Drop the explicit activation: the instance follows its bindings again."""
        self.send(ops.clear_activation(instance_id))

    def get_activation(self, activation_id: str) -> Activation:
        return self.send(ops.get_activation(activation_id))

    def list_activations(
        self,
        *,
        instance: str | None = None,
        persona: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[Activation]:
        """The newest ``limit`` activation records matching the filters."""
        return self.send(ops.list_activations(instance, persona, status, None, limit)).items

    def wait_activation(
        self,
        activation_id: str,
        *,
        timeout: float = 120.0,
        until: Sequence[str] = ("applied", "failed", "superseded", "cancelled"),
    ) -> Activation:
        """Poll the record until its status is one of ``until``; :class:`Timeout` after
        ``timeout`` seconds (polling starts fast and slows to once a second)."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            activation = self.get_activation(activation_id)
            if activation.status in until:
                return activation
            if time.monotonic() + delay > deadline:
                raise errors.Timeout(
                    f"activation {activation_id} is still {activation.status} after {timeout:g}s",
                    code="timeout",
                )
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    # --- bindings ------------------------------------------------------------------

    def create_binding(
        self,
        name: str,
        selector: Mapping[str, str | list[str]],
        persona: str,
        *,
        override: Mapping[str, Any] | None = None,
        priority: int = 0,
        description: str | None = None,
        mode: str = "replace",
    ) -> Binding:
        """Instances whose tags match ``selector`` (all keys; a list of values or ``"*"``
        allowed) get ``persona``, with ``override`` composed over it. With ``mode="add"``
        the persona is layered on top of the one chosen for them instead."""
        body = build(
            BindingIn,
            {
                "name": name,
                "selector": dict(selector),
                "persona": persona,
                "override": dict(override) if override is not None else None,
                "priority": priority,
                "description": description,
                "mode": mode,
            },
        )
        return self.send(ops.create_binding(body))

    def update_binding(
        self,
        name: str,
        selector: Mapping[str, str | list[str]],
        persona: str,
        *,
        override: Mapping[str, Any] | None = None,
        priority: int = 0,
        description: str | None = None,
        if_match: str | None = None,
        mode: str = "replace",
    ) -> Binding:
        body = build(
            BindingIn,
            {
                "name": name,
                "selector": dict(selector),
                "persona": persona,
                "override": dict(override) if override is not None else None,
                "priority": priority,
                "description": description,
                "mode": mode,
            },
        )
        return self.send(ops.update_binding(body, if_match))

    def get_binding(self, name: str) -> Binding:
        return self.send(ops.get_binding(name))

    def list_bindings(self) -> list[Binding]:
        """Every binding, in the order the server decides by."""
        return self.send(ops.list_bindings()).items

    def delete_binding(self, name: str) -> None:
        self.send(ops.delete_binding(name))

    # --- telemetry -------------------------------------------------------------------

    def instance_metrics(
        self,
        instance_id: str,
        *,
        name: str | None = None,
        since: float | None = None,
        step: float | None = None,
    ) -> MetricsAnswer:
        """The instance's metric series over the last ``since`` seconds (default: an hour),
        ``step`` seconds per point (default: the server picks)."""
        return self.send(ops.instance_metrics(instance_id, name, since, step))

    def telemetry_events(
        self,
        *,
        instance: str | None = None,
        since: float | None = None,
        kind: str | None = None,
        limit: int = 1000,
    ) -> list[TelemetryEvent]:
        """Adaptation events the agents sent, oldest first (every page)."""
        out: list[TelemetryEvent] = []
        after: str | None = None
        while True:
            page = self.send(ops.telemetry_events(instance, since, kind, after, min(limit, 1000)))
            out.extend(page.items)
            if page.next is None or len(out) >= limit:
                return out[:limit]
            after = page.next
