"""The wire format of the broker of application personas (``/api/v1/broker/...``).

A user asks for a lease on a persona; the lease moves queued → provisioning → ready |
insufficient_resources | failed, and ends released | expired | preempted. Sandbox hosts
(agents started with ``--sandbox-host``) offer capacity, pick up the leases given to them
and the commands to run inside, and report state and usage.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from mien.protocol.base import NAME_PATTERN, Name, RequestModel, WireModel

LeaseState = Literal[
    "queued",
    "provisioning",
    "ready",
    "insufficient_resources",
    "failed",
    "released",
    "expired",
    "preempted",
]
USER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,199}$"
User = Annotated[str, StringConstraints(pattern=USER_PATTERN)]
Arg = Annotated[str, StringConstraints(max_length=4096)]


class LeaseRequest(RequestModel):
    """Ask for an environment of an application persona."""

    persona: Name
    priority: int | None = Field(
        None, ge=0, le=1000, description="overrides resource_requirements.priority"
    )
    ttl: float | None = Field(
        None, ge=5, le=86400, description="seconds the lease lives without a renewal"
    )


class Limits(WireModel):
    cpu: float
    memory: int
    storage: int


class Usage(WireModel):
    cpu_seconds: float = 0.0
    peak_memory: int = 0
    processes: list[list[str]] = Field(default_factory=list)
    oom_killed: bool | None = None  # None: the host did not say
    reported_at: datetime | None = None


class Lease(WireModel):
    id: str
    persona: str
    version: int
    holder: str
    state: LeaseState
    reason: str | None = None
    priority: int
    preemptible: bool
    limits: Limits
    host: str | None = None
    ttl: float
    expires_at: datetime
    usage: Usage | None = None
    created_at: datetime
    updated_at: datetime


class RunRequest(RequestModel):
    argv: list[Arg] = Field(min_length=1, max_length=256)
    timeout: float = Field(60.0, gt=0, le=3600, description="seconds the command may run")


class RunRecord(WireModel):
    id: str
    lease_id: str
    argv: list[str]
    status: Literal["pending", "sent", "done", "expired"]
    exit_status: int | None = None
    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    created_at: datetime
    finished_at: datetime | None = None


class GroupMembers(RequestModel):
    users: list[User] = Field(min_length=1, max_length=1000)


class Group(WireModel):
    name: str
    members: list[str]


# --- the host side ---------------------------------------------------------------------


class HostOffer(RequestModel):
    """What a sandbox host offers (sent as its heartbeat)."""

    cpu: float = Field(gt=0, le=4096)
    memory: int = Field(gt=0)
    storage: int = Field(ge=0)
    driver: Annotated[str, StringConstraints(pattern=NAME_PATTERN)] | None = None


class HostLease(WireModel):
    id: str
    persona: str
    version: int
    holder: str
    document: dict[str, object]
    limits: Limits


class HostRun(WireModel):
    id: str
    lease_id: str
    argv: list[str]
    timeout: float


class HostShell(WireModel):
    """An interactive program the lease holder waits for: the host connects to
    ``/broker/host/shells/{id}`` and runs ``argv`` in the lease (on a terminal of
    ``rows`` x ``cols`` when ``tty``)."""

    id: str
    lease_id: str
    argv: list[str]
    tty: bool = True
    rows: int = 24
    cols: int = 80
    term: str = "xterm"


class HostWork(WireModel):
    """What a sandbox host should do now."""

    provision: list[HostLease] = Field(default_factory=list)
    destroy: list[str] = Field(default_factory=list)
    runs: list[HostRun] = Field(default_factory=list)
    live: list[str] = Field(default_factory=list, description="leases it should be holding")
    shells: list[HostShell] = Field(
        default_factory=list, description="interactive programs to start (mien app shell)"
    )


class HostLeaseReport(RequestModel):
    state: Literal["ready", "failed", "destroyed", "released"]
    reason: Annotated[str, StringConstraints(max_length=8192)] | None = None


class HostUsage(RequestModel):
    cpu_seconds: float = Field(ge=0)
    peak_memory: int = Field(ge=0)
    processes: list[list[Arg]] = Field(default_factory=list, max_length=1000)
    oom_killed: bool | None = Field(None, description="whether the OOM killer struck inside")


class HostRunResult(RequestModel):
    exit_status: int | None = None
    stdout: str = ""
    stderr: str = ""
    error: Annotated[str, StringConstraints(max_length=8192)] | None = None
