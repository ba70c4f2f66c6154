"""The synchronous client's calls for remote commands, audit and tokens: a
mixin of :class:`mien.client.Client` (kept apart so that each module stays small)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import TypeVar

from mien.client import ops
from mien.client._http import Call, build
from mien.protocol import (
    AuditRecord,
    AuditVerification,
    CommandRecord,
    CommandRequest,
    TokenCreate,
    TokenCreated,
    TokenInfo,
)

T = TypeVar("T")


class AdminCalls:
    """Remote commands, audit, tokens (see :class:`mien.client.Client`)."""

    def send(self, call: Call[T]) -> T:
        raise NotImplementedError  # provided by Client

    # --- remote commands -----------------------------------------------------------

    def run_command(
        self,
        instance_id: str,
        command: str,
        args: Sequence[str] = (),
        *,
        timeout: float = 60.0,
        wait: float = 30.0,
    ) -> CommandRecord:
        """Run a command on the instance through its persona's routing table. Returns the
        finished record (``status == "done"``: see ``exit_status``, ``refused``) or, after
        ``wait`` seconds, the record still pending (poll with :meth:`get_command`)."""
        request = build(
            CommandRequest, {"command": command, "args": list(args), "timeout": timeout}
        )
        return self.send(ops.run_command(instance_id, request, wait))

    def get_command(self, instance_id: str, command_id: str, *, wait: float = 0.0) -> CommandRecord:
        return self.send(ops.get_command(instance_id, command_id, wait))

    def list_commands(self, instance_id: str, *, limit: int = 100) -> list[CommandRecord]:
        return self.send(ops.list_commands(instance_id, limit)).items

    # --- audit ---------------------------------------------------------------------

    def audit(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        instance: str | None = None,
        persona: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page_size: int = 500,
    ) -> Iterator[AuditRecord]:
        """Audit records, oldest first (``action`` is a prefix: ``persona.``)."""
        after: str | None = None
        while True:
            page = self.send(
                ops.audit(
                    actor=actor,
                    action=action,
                    instance=instance,
                    persona=persona,
                    since=since,
                    until=until,
                    after=after,
                    limit=page_size,
                )
            )
            yield from page.items
            if not page.next:
                return
            after = page.next

    def audit_verify(self) -> AuditVerification:
        """Have the server check its whole hash chain (admin)."""
        return self.send(ops.audit_verify())

    # --- tokens and enrollment -----------------------------------------------------

    def create_token(
        self,
        name: str,
        *,
        role: str | None = None,
        kind: str = "api",
        uses: int | None = None,
        expires_in: float | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> TokenCreated:
        """An API token with ``role``, or (``kind="enroll"``) an enrollment token good for
        ``uses`` enrollments until ``expires_in`` seconds, giving new instances ``tags``.
        The secret is in ``.token``, shown this once."""
        request = build(
            TokenCreate,
            {
                "kind": kind,
                "name": name,
                "role": role,
                "uses": uses,
                "expires_in": expires_in,
                "tags": dict(tags or {}),
            },
        )
        return self.send(ops.create_token(request))

    def list_tokens(self, *, include_revoked: bool = False) -> list[TokenInfo]:
        return self.send(ops.list_tokens(include_revoked)).items

    def revoke_token(self, token_id: str) -> None:
        self.send(ops.revoke_token(token_id))
