"""The sandbox interface: what a lease asks for, what a driver hands back, and the driver
contract every isolation backend (``local``, ``podman``; later e.g. Kubernetes) fulfils.

Used by the agent's host glue (which provisions the leases the broker gives this host),
by the drivers in this package, and by ``mien app image``. A :class:`SandboxSpec` is built
from a resolved persona (:meth:`SandboxSpec.from_persona`): ``resource_requirements``
become :class:`Limits`, ``access_controls.filesystem`` mounts, ``access_controls.network``
the network, and the persona's user the user the applications run as. A Kubernetes driver
would map the same spec onto a Pod (requests = limits from :class:`Limits`, a
PriorityClass from ``priority``, volumes from the mounts) and its handle's ``data`` onto
the Pod's name and namespace.
"""

from __future__ import annotations

import re
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from mien.spec.models import Persona

Progress = Callable[[str], None]
_LEASE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_ENDPOINT = re.compile(r"^(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(?P<port>\d{1,5})$")


class SandboxError(Exception):
    """A sandbox could not be provisioned, used or destroyed; the message says why."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What the sandbox may consume; ``None`` means no limit of that kind."""

    cpu_cores: float | None = None
    memory_bytes: int | None = None
    storage_bytes: int | None = None
    bandwidth_bps: int | None = None
    pids: int = 1024
    priority: int = 0


@dataclass(frozen=True, slots=True)
class Mount:
    """A host path made visible at the same path inside, read-only or read-write."""

    host_path: str
    mode: Literal["ro", "rw"] = "ro"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One ``host:port`` the sandbox may connect to (TCP)."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        m = _ENDPOINT.match(text.strip())
        if not m or not 0 < int(m.group("port")) < 65536:
            raise SandboxError(
                f"access_controls.network.egress: {text!r} is not host:port (e.g. db.internal:5432)"
            )
        return cls(m.group("host").strip("[]"), int(m.group("port")))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class SandboxSpec:
    """Everything a driver needs to build one lease's sandbox.

    ``network`` is ``"none"`` (an empty network namespace) or ``"egress"`` (only the
    ``egress`` endpoints are reachable). ``persona`` is the resolved persona document as a
    mapping: the drivers apply it inside with mien's own engine."""

    lease_id: str
    persona_name: str
    persona: Mapping[str, Any]
    limits: Limits = Limits()
    mounts: tuple[Mount, ...] = ()
    network: Literal["none", "egress"] = "none"
    egress: tuple[Endpoint, ...] = ()
    user: str | None = None

    def __post_init__(self) -> None:
        if not _LEASE.match(self.lease_id):
            raise SandboxError(
                f"lease id {self.lease_id!r}: use 1-63 letters, digits, '.', '_' or '-'"
            )

    @classmethod
    def from_persona(
        cls, lease_id: str, persona: Persona | Mapping[str, Any], *, user: str | None = None
    ) -> SandboxSpec:
        """The spec for ``persona`` (a :class:`Persona` or its resolved document)."""
        if isinstance(persona, Persona):
            document: dict[str, Any] = persona.model_dump(mode="json", exclude_none=True)
        else:
            document = dict(persona)
        name = str(document.get("name") or "app")
        req = _mapping(document.get("resource_requirements"))
        access = _mapping(document.get("access_controls"))
        net = _mapping(access.get("network"))
        limits = Limits(
            cpu_cores=_parse(req.get("cpu"), "cpu"),
            memory_bytes=_parse(req.get("memory"), "memory"),
            storage_bytes=_parse(req.get("storage"), "storage"),
            bandwidth_bps=_parse(req.get("network_bandwidth"), "network_bandwidth"),
            priority=int(req.get("priority") or 0),
        )
        mounts = []
        for i, entry in enumerate(access.get("filesystem") or []):
            item = _mapping(entry)
            path, mode = str(item.get("path", "")), str(item.get("mode", "ro"))
            if not path.startswith("/") or ".." in path.split("/") or mode not in ("ro", "rw"):
                raise SandboxError(
                    f"access_controls.filesystem[{i}]: {path!r} ({mode}) is not an absolute "
                    "host path with mode ro or rw"
                )
            mounts.append(Mount(path.rstrip("/") or "/", "rw" if mode == "rw" else "ro"))
        egress = tuple(Endpoint.parse(str(e)) for e in net.get("egress") or [])
        return cls(
            lease_id=lease_id,
            persona_name=name,
            persona=document,
            limits=limits,
            mounts=tuple(mounts),
            network="egress" if egress else "none",
            egress=egress,
            user=user,
        )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _parse(value: Any, what: str) -> Any:
    """A resource value from the document (canonical text or a number) in base units."""
    from mien.spec.values import Bandwidth, CpuCount, Size

    if value is None:
        return None
    try:
        if what == "cpu":
            return CpuCount.parse(value).cores
        if what == "network_bandwidth":
            return Bandwidth.parse(value).bits_per_second
        return Size.parse(value).bytes
    except ValueError as exc:
        raise SandboxError(f"resource_requirements.{what}: {exc}") from None


@dataclass(slots=True)
class SandboxHandle:
    """A provisioned sandbox. JSON-serializable (:meth:`to_json` / :meth:`from_json`) so
    the agent can persist it and destroy what it made after a restart."""

    driver: str
    lease_id: str
    persona_name: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SandboxHandle:
        return cls(
            driver=str(data["driver"]),
            lease_id=str(data["lease_id"]),
            persona_name=str(data.get("persona_name", "")),
            data=dict(data.get("data") or {}),
        )


@dataclass(frozen=True, slots=True)
class RunResult:
    exit_status: int
    stdout: bytes
    stderr: bytes


@dataclass(frozen=True, slots=True)
class Usage:
    """What a lease consumed. ``processes``: the command lines of every ``run`` and of the
    processes seen inside at the last scan."""

    cpu_seconds: float
    peak_memory_bytes: int
    processes: list[list[str]]
    oom_killed: bool

    @property
    def peak_memory(self) -> int:
        """The same as :attr:`peak_memory_bytes` (the broker's usage report names it so)."""
        return self.peak_memory_bytes

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def as_spec(spec: Any) -> SandboxSpec:
    """A :class:`SandboxSpec`, or one made from any object with ``lease_id`` and the
    persona ``document`` (what the host glue hands over)."""
    if isinstance(spec, SandboxSpec):
        return spec
    document = getattr(spec, "document", None)
    lease_id = getattr(spec, "lease_id", None)
    if not isinstance(document, Mapping) or not isinstance(lease_id, str):
        raise SandboxError(f"not a sandbox spec: {type(spec).__name__}")
    return SandboxSpec.from_persona(lease_id, document)


class Driver(ABC):
    """One isolation backend. Implementations must make :meth:`destroy` idempotent and
    leave nothing behind after a failed :meth:`provision`."""

    name: str = ""

    @abstractmethod
    def available(self) -> str | None:
        """``None`` when usable here, else what is missing (one sentence)."""

    @abstractmethod
    def provision(self, spec: SandboxSpec, progress: Progress | None = None) -> SandboxHandle:
        """Build and start the sandbox; raises :class:`SandboxError` (nothing left behind)."""

    @abstractmethod
    def run(
        self,
        handle: SandboxHandle,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        tty: bool = False,
        timeout: float | None = None,
    ) -> RunResult:
        """Run ``argv`` inside as the sandbox user, with the persona's environment and the
        applications' settings (``/etc/persona/application.env``) loaded, then ``env`` on top."""

    def spawn(
        self,
        handle: SandboxHandle,
        argv: Sequence[str],
        *,
        stdin: int,
        stdout: int,
        stderr: int,
        tty: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` inside (as :meth:`run` would) on the given descriptors (or
        ``subprocess.PIPE``) and return at once: ``mien app shell``. With ``tty``, ``stdin``
        is a terminal's slave side, which becomes the program's controlling terminal (its
        window size changes reach the program inside)."""
        raise SandboxError(f"the {self.name} sandbox driver cannot start interactive programs")

    @abstractmethod
    def usage(self, handle: SandboxHandle) -> Usage: ...

    @abstractmethod
    def destroy(self, handle: SandboxHandle) -> None:
        """Remove every process, mount, cgroup, network, container and file of the lease."""

    @abstractmethod
    def list(self) -> list[SandboxHandle]:
        """The sandboxes this driver finds on the host (also those of a previous agent)."""


def pick(drivers: Mapping[str, Driver], name: str | None = None) -> Driver:
    """The driver called ``name``, or the first available one."""
    if name is not None:
        driver = drivers.get(name)
        if driver is None:
            raise SandboxError(f"no sandbox driver {name!r} (known: {', '.join(drivers)})")
        missing = driver.available()
        if missing:
            raise SandboxError(f"sandbox driver {name!r} is not usable here: {missing}")
        return driver
    reasons = []
    for driver in drivers.values():
        missing = driver.available()
        if missing is None:
            return driver
        reasons.append(f"{driver.name}: {missing}")
    raise SandboxError("no sandbox driver is usable here (" + "; ".join(reasons) + ")")


def split_app_config(document: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The document without the flat ``application_configuration`` entries, and those
    entries (``key: scalar``) as environment settings for the applications."""
    config = _mapping(document.get("application_configuration"))
    flat: dict[str, str] = {}
    kept: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            kept[key] = value
        elif value is not None and not isinstance(value, list):
            flat[str(key)] = str(value).lower() if isinstance(value, bool) else str(value)
    out = dict(document)
    if flat:
        out["application_configuration"] = kept
    return out, flat
