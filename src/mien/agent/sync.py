"""Following a server: the loop behind ``mien agent run``.

The agent pulls (it works through NAT and firewalls): it long-polls the server for its
desired state, which answers at once when anything changed; applies a new persona through
the same :class:`~mien.agent.engine.Engine` as ``mien apply``; reports applying → applied |
failed (with the error, and its history), at least once (:mod:`mien.agent.outbox`); runs
remote commands through the command router; and reconnects with jittered backoff capped at
a few seconds when the server is away. The long-poll is also its heartbeat.

It talks to the server with the credential of its enrollment (:mod:`mien.agent.enrollment`).
Every persona it received stays in the local history, so ``mien rollback`` works
offline. When the server desires nothing (no activation, binding or default), the agent
keeps what it runs: removing a persona is an explicit act.

Used by ``mien agent run`` (:mod:`mien.cli.fleet.agent`).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mien import __version__
from mien.agent.machine_status import StatusSender
from mien.agent.outbox import Outbox
from mien.agent.state import State

if TYPE_CHECKING:
    from mien.agent.engine import Engine
    from mien.agent.enrollment import Credentials
    from mien.client import AgentClient
    from mien.protocol import DesiredState, PendingCommand

HISTORY_REPORTED = 20


class Agent:
    """One machine following its server. Call :meth:`run` (blocks) or :meth:`step`."""

    def __init__(
        self,
        root: Path,
        creds: Credentials,
        *,
        engine: Engine,
        wait: float = 30.0,
        log: Callable[[str], None] = print,
        warn: Callable[[str], None] | None = None,
        client: AgentClient | None = None,
    ) -> None:
        from mien.client import AgentClient

        self.root = root
        self.creds = creds
        self.engine = engine
        self.wait = wait
        self.log = log
        # Failures and lost contact: kept when the persona's logging_level is warning.
        self.warn = warn or log
        # The long-poll's read timeout must outlast the server's wait.
        self.api = client or AgentClient(
            creds.server, creds.token, timeout=wait + 15.0, verify=creds.verify
        )
        self.known: str | None = None
        self.stopping = threading.Event()
        self.busy = False
        # One connection for the agent's life: every poll reads a little of the state, and
        # the engine's own commits are visible to it (WAL).
        self.state = State(root)
        self.outbox = Outbox(self.state)
        # The machine's status: with each report, and between them when it changed.
        self.status = StatusSender(
            self.state,
            lambda: self.engine.status().drift,
            lambda status: self.api.put_status(creds.instance_id, status),
            self.warn,
        )

    def close(self) -> None:
        self.api.close()
        self.state.close()

    # --- state kept between runs -------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        return self.state.get_meta(key)

    def _set_meta(self, **values: str | None) -> None:
        with self.state.transaction():
            for key, value in values.items():
                self.state.set_meta(key, value)

    def _history(self) -> list[dict[str, Any]]:
        entries = self.state.history(HISTORY_REPORTED)
        return [
            {
                "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e.applied_at)),
                "persona": e.persona or None,
                "hash": e.hash,
                "action": e.kind,
                "id": e.id,
                "note": e.note,
            }
            for e in entries
        ]

    def _settings(self) -> list[dict[str, Any]]:
        """What became of each setting of the persona the machine runs (from its history)."""
        raw = self._meta("active_history")
        if not raw or not raw.isdigit():
            return []
        from mien.protocol.outcomes import from_stored

        try:
            _, _, _, extra = self.state.history_entry(int(raw))
        except KeyError:
            return []
        return [from_stored(n).model_dump(mode="json") for n in extra.get("notes", [])]

    def refresh_status(self, *, force: bool = False) -> bool:
        """Send the machine's status if it changed (:class:`StatusSender`); True when sent."""
        return self.status.refresh(force=force)

    def _locally_changed(self) -> bool:
        """Whether the machine runs something other than what the server's last persona
        gave (a local ``mien apply`` or ``rollback`` since)."""
        effective = self._meta("server_effective")
        return effective is not None and self._meta("active_hash") != effective

    # --- the loop ----------------------------------------------------------------------

    def run(self, *, once: bool = False) -> int:
        """Follow the server until stopped (SIGTERM/SIGINT) or, with ``once``, for one answer.

        Returns the process exit status: 0 when stopped, 1 when the server refused the
        credential (the instance was deleted or its token revoked: enroll again).
        """
        from mien.client import FinalError, RetryableError, backoff

        self._install_signals()
        self.log(
            f"mien agent {__version__}: instance {self.creds.instance_id} following {self.creds.server}"
        )
        self._report_current()
        attempt = 0
        try:
            while not self.stopping.is_set():
                try:
                    # Reports the server has not acknowledged go first, in order.
                    self.outbox.flush(self._deliver, self.log)
                    desired = self.api.desired(self.known, wait=0 if once else self.wait)
                except RetryableError as exc:
                    attempt += 1
                    delay = backoff(attempt, retry_after=exc.retry_after)
                    if attempt <= 3 or attempt % 20 == 0:  # not a line every few seconds
                        self.warn(f"server unavailable ({exc}); retrying in {delay:.1f}s")
                    if once:
                        return 1
                    self.stopping.wait(delay)
                    continue
                except FinalError as exc:
                    self.warn(f"the server refused this agent: {exc}. Enroll again.")
                    return 1
                if attempt:
                    self.log("reconnected")
                attempt = 0
                if desired is not None:
                    self.handle(desired)
                    self.known = desired.state
                elif self._locally_changed():
                    # Someone applied or rolled back on the machine itself: ask for the
                    # desired document again, so the server's persona wins.
                    self.known = None
                if once:
                    return 0
                self.refresh_status()
        except _Stop:
            pass
        finally:
            self.close()
        self.log("stopped")
        return 0

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def stop(signum: int, _frame: object) -> None:
            self.stopping.set()
            if not self.busy:  # interrupt the long-poll; an apply finishes first
                raise _Stop

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def _report_current(self) -> None:
        """Tell the server what this machine runs now (after a restart or an offline change)."""
        applied = self._meta("server_hash")
        if applied is None:
            return  # nothing from this server yet: the first poll brings it
        self._queue_report(
            {
                "state": "applied",
                "hash": applied,
                "persona": self._meta("active") or None,
                "history": self._history(),
                "agent_version": __version__,
                "settings": self._settings(),
                "instance": self.creds.instance_id,
                "status": self.status.for_report(),
            }
        )

    def _deliver(self, report: dict[str, Any]) -> None:
        from mien.client import ClientError

        try:
            self.api.report(**report)
        except ClientError as exc:
            extra = ("status", "instance")
            if (
                exc.retryable
                or exc.status not in (None, 422)
                or not any(report.get(k) for k in extra)
            ):
                raise
            # A server older than the machine status (or one refusing this status): the
            # report itself must still land.
            self.warn(f"report taken without the machine status: {exc}")
            self.api.report(**{k: v for k, v in report.items() if k not in extra})

    def _queue_report(self, report: dict[str, Any]) -> None:
        """Queue ``report`` durably, then try to send what waits; what the server does not
        acknowledge now is sent again before the next long-poll (see :mod:`mien.agent.outbox`)."""
        from mien.client import RetryableError

        self.outbox.add(report)
        try:
            self.outbox.flush(self._deliver, self.log)
        except RetryableError as exc:
            self.warn(
                f"report {report['state']} not delivered ({exc}): kept, and sent again "
                "as soon as the server answers"
            )

    def handle(self, desired: DesiredState) -> None:
        """Act on one answer of the long-poll: commands first (they are waited for), then
        the persona."""
        for command in desired.commands:
            self.run_command(command)
        if desired.document is None or desired.hash is None:
            return
        applied = self._meta("server_hash")
        if desired.hash == applied and not self._locally_changed():
            # Already running it: confirm an activation, or tell a server that last heard
            # of a failure (say, of an activation since cleared) that all is well again.
            if desired.activation_id or self.outbox.latest() != f"applied {applied}":
                self._send_report("applied", desired, applied)
            return
        self.apply(desired)

    def apply(self, desired: DesiredState) -> None:
        from mien.agent.engine import EngineError, NeedsAttention
        from mien.agent.handlers.base import HandlerError
        from mien.agent.state import Busy
        from mien.agent.transaction import ApplyFailed
        from mien.spec.errors import SpecError

        assert desired.document is not None
        label = f"server:{desired.persona}@v{desired.version}"
        self.log(f"applying {desired.persona} v{desired.version} ({desired.source})")
        self._send_report("applying", desired, None)
        self.busy = True
        error: str | None = None
        try:
            result = self.engine.apply_data(desired.document, label)
        except SpecError as exc:
            error = "invalid persona:\n" + "\n".join(str(p) for p in exc.problems)
        except ApplyFailed as exc:
            error = f"apply failed at {exc}; nothing was changed"
        except NeedsAttention as exc:
            error = f"the machine needs attention: {exc}"
        except (EngineError, HandlerError, Busy, OSError) as exc:
            error = str(exc)
        finally:
            self.busy = False
        if error is not None:
            self.warn(f"failed: {error}")
            self._send_report("failed", desired, None, error=error)
        else:
            self._set_meta(
                server_hash=desired.hash,
                server_version=str(desired.version),
                server_persona=desired.persona,
                server_effective=self._meta("active_hash"),
            )
            changes = result.plan.changes if result.applied else 0
            self.log(
                f"applied {desired.persona} v{desired.version}: {changes} changes ({result.elapsed_ms:.0f} ms)"
            )
            self._send_report("applied", desired, desired.hash)
        if self.stopping.is_set():
            raise _Stop

    def _send_report(
        self, state: str, desired: DesiredState, hash: str | None, *, error: str | None = None
    ) -> None:
        """Report on ``desired``'s activation. Only ``applied`` names the desired persona as
        running; ``applying`` and ``failed`` name what the machine still runs, so the server
        never shows a persona as applied that is not."""
        if state == "applied":
            persona, version = desired.persona, desired.version
        else:
            hash = self._meta("server_hash")
            persona = self._meta("active") or None
            raw = self._meta("server_version")
            version = int(raw) if raw and raw.isdigit() else None
        self._queue_report(
            {
                "state": state,
                "activation_id": desired.activation_id,
                "hash": hash,
                "persona": persona,
                "version": version,
                "error": error,
                "history": self._history() if state != "applying" else None,
                "agent_version": __version__,
                "settings": self._settings() if state != "applying" else None,
                "instance": self.creds.instance_id,
                "status": self.status.for_report() if state != "applying" else None,
            }
        )

    def run_command(self, command: PendingCommand) -> None:
        """Run a remote command through the routing table and send its result."""
        from mien.agent import router, router_exec
        from mien.client import ClientError

        argv = [command.command, *command.args]
        actor = f"server:{self.creds.server}"
        self.busy = True
        try:
            done = router_exec.run(
                self.root, argv, capture=True, timeout=command.timeout, actor=actor
            )
            report = done.report()
            refused = isinstance(done.decision, router.Refuse)
            stderr = report["stderr"] or (report["message"] + "\n" if report["message"] else "")
            status, stdout, error = report["status"], report["stdout"], None
        except router.RouteError as exc:
            refused, status, stdout, stderr, error = (
                True,
                router.REFUSED,
                "",
                f"mien: {exc}\n",
                str(exc),
            )
        finally:
            self.busy = False
        self.log(f"command {command.id}: {' '.join(argv)[:80]} → {status}")
        try:
            self.api.command_result(
                command.id, status, stdout, stderr, refused=refused, error=error
            )
        except ClientError as exc:
            self.warn(f"command {command.id}: result not delivered: {exc}")


class _Stop(Exception):
    """Raised from the signal handler to leave a blocking long-poll."""
