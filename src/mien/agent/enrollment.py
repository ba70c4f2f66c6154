"""An agent's enrollment: the credential it trades an enrollment token for, and where that
credential lives.

The credential (server, instance id, token) is kept in ``ROOT/var/lib/mien/agent.json``,
mode 0600, written atomically. Used by ``mien agent enroll|run|status``
(:mod:`mien.cli.fleet.agent`; ``serve-socket`` checks whether a machine is enrolled), by
:class:`mien.agent.sync.Agent`, which follows the server with it, and by the local API's
switchboard (:mod:`mien.agent.switchboard`), which asks the fleet server with it.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from mien import __version__
from mien.agent.state import STATE_DIR, State

CREDENTIALS = f"{STATE_DIR}/agent.json"


class AgentError(Exception):
    """The agent cannot run (not enrolled, credential refused); the message says what to do."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """What an enrolled agent needs to talk to its server."""

    server: str
    instance_id: str
    token: str
    verify: bool | str = True  # False, or a CA bundle path, for private certificates
    user: str | None = None  # the persona user, when given at enrollment

    def save(self, root: Path) -> Path:
        path = root / CREDENTIALS
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(".agent.json.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(asdict(self), fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, root: Path) -> Credentials:
        path = root / CREDENTIALS
        try:
            data = json.loads(path.read_text())
            return cls(**data)
        except FileNotFoundError:
            raise AgentError(
                f"this machine is not enrolled ({path} is missing): run "
                "`mien agent enroll --server URL --token ENROLLMENT_TOKEN` first"
            ) from None
        except (ValueError, TypeError) as exc:
            raise AgentError(f"{path} is damaged ({exc}): enroll again") from None


def enroll(
    root: Path,
    server: str,
    enroll_token: str,
    *,
    tags: Mapping[str, str] | None = None,
    hostname: str | None = None,
    instance_id: str | None = None,
    verify: bool | str = True,
    user: str | None = None,
) -> Credentials:
    """Trade a limited-use enrollment token for this instance's own credential, as
    ``instance_id`` when given (else the server picks one)."""
    from mien.client import AgentClient

    with AgentClient(server, verify=verify) as api:
        enrollment = api.enroll(
            enroll_token,
            tags=tags,
            hostname=hostname or socket.gethostname(),
            instance_id=instance_id,
            agent_version=__version__,
        )
    creds = Credentials(server, enrollment.instance_id, enrollment.token, verify, user)
    creds.save(root)
    with State(root) as state, state.transaction():
        state.audit(
            "agent.enrolled",
            server=server,
            instance=enrollment.instance_id,
            tags=dict(enrollment.tags),
        )
    return creds
