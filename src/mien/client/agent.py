"""The agent's side of the protocol (used by ``mien agent``): enroll, long-poll for the desired
state, report, return remote command results, heartbeat.

The loop the agent runs on top (``mien agent run``)::

    known = load_known()                       # the `state` of the last answer handled
    attempt = 0
    while True:
        try:
            desired = api.desired(known, wait=30)
        except RetryableError as exc:          # server gone, restarting, overloaded
            attempt += 1
            time.sleep(backoff(attempt, retry_after=exc.retry_after))
            continue
        attempt = 0
        if desired is None:                    # 204: nothing new within `wait`
            continue
        for command in desired.commands:       # run each through the router, then
            api.command_result(command.id, exit_status, stdout, stderr, refused)
        if desired.document is not None and desired.hash != applied_hash:
            api.report("applying", activation_id=desired.activation_id, ...)
            ...apply...
            api.report("applied" | "failed", hash=..., error=..., history=...)
        elif desired.activation_id:            # already running it: confirm
            api.report("applied", activation_id=desired.activation_id, hash=applied_hash)
        known = desired.state

:class:`~mien.client.errors.FinalError` from ``desired`` (401: the instance was deleted or
its token revoked) means stop and re-enroll, not retry. The requests themselves are built
in :mod:`mien.client.ops`; an asyncio caller sends the same calls through
:class:`~mien.client._http.AsyncSession`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Unpack

from mien.client import agent_ops, ops
from mien.client._http import Session
from mien.client.agent_ops import ReportFields
from mien.protocol import DesiredState, Enrollment, Instance, ReportAck
from mien.protocol.telemetry import TelemetryAck


class AgentClient(Session):
    """Synchronous agent client (one instance's token)."""

    agent = True

    def enroll(
        self,
        enroll_token: str,
        *,
        tags: Mapping[str, str] | None = None,
        hostname: str | None = None,
        instance_id: str | None = None,
        agent_version: str | None = None,
    ) -> Enrollment:
        """Trade an enrollment token for this instance's id and token (store it 0600)."""
        return self.send(
            agent_ops.enroll(
                enroll_token,
                tags=tags,
                hostname=hostname,
                instance_id=instance_id,
                agent_version=agent_version,
            )
        )

    def desired(self, known: str | None = None, wait: float = 30.0) -> DesiredState | None:
        """Long-poll: the desired state once it differs from ``known`` (or commands wait);
        ``None`` when ``wait`` seconds pass with nothing new."""
        return self.send(agent_ops.desired(known, wait))

    def report(self, state: str, **fields: Unpack[ReportFields]) -> ReportAck:
        """``applying``, ``applied`` or ``failed`` (with ``error``)."""
        return self.send(agent_ops.report(state, **fields))

    def command_result(
        self,
        command_id: str,
        exit_status: int,
        stdout: str = "",
        stderr: str = "",
        *,
        refused: bool = False,
        error: str | None = None,
    ) -> None:
        self.send(
            agent_ops.command_result(
                command_id, exit_status, stdout, stderr, refused=refused, error=error
            )
        )

    def heartbeat(self, agent_version: str | None = None) -> None:
        self.send(agent_ops.heartbeat(agent_version))

    def telemetry(self, body: bytes) -> TelemetryAck:
        """Send one gzip-compressed telemetry batch (:mod:`mien.agent.adapt.upload`)."""
        return self.send(agent_ops.post_telemetry(body))

    def source(self, key: str, etag: str | None = None) -> agent_ops.SourceAnswer:
        """The server's copy of the fleet-wide source ``key`` (:mod:`mien.protocol.sources`):
        ``(copy, etag, fetched_at)``, the copy None when ``etag`` is still current (304)."""
        return self.send(agent_ops.agent_source(key, etag))

    def put_status(self, instance_id: str, status: Mapping[str, Any]) -> None:
        """Report the machine's status (customizations, drift, rules, actions) between
        reports, when it changed."""
        self.send(agent_ops.put_status(instance_id, status))

    def instance(self, instance_id: str) -> Instance:
        """This instance's record (an agent may read only its own)."""
        return self.send(ops.get_instance(instance_id))
