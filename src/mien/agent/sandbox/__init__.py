"""Sandboxes for application personas: the provisioning engine's drivers on a host.

The broker gives a host a lease; the agent's host glue turns the lease's persona into a
:class:`SandboxSpec`, picks a driver (:func:`drivers`, :func:`pick`) and calls
``provision`` → ``run`` / ``usage`` → ``destroy``. Drivers: ``local`` (bubblewrap +
cgroup v1, :mod:`mien.agent.sandbox.local`) and ``podman`` (containers through the Docker
API of ``podman system service``, :mod:`mien.agent.sandbox.podman`). Inside, the persona
is applied by mien's own engine (:mod:`mien.agent.sandbox.roots`); the flat form of
``application_configuration`` becomes the persona's env file,
``/etc/persona/application.env`` (as on a machine), loaded by ``run``.
"""

from __future__ import annotations

from mien.agent.sandbox.base import (
    Driver,
    Endpoint,
    Limits,
    Mount,
    RunResult,
    SandboxError,
    SandboxHandle,
    SandboxSpec,
    Usage,
    pick,
)

__all__ = [
    "Driver",
    "Endpoint",
    "Limits",
    "Mount",
    "RunResult",
    "SandboxError",
    "SandboxHandle",
    "SandboxSpec",
    "Usage",
    "drivers",
    "get_driver",
    "pick",
]


def drivers() -> dict[str, Driver]:
    """Every driver this build knows, by name, in order of preference."""
    from mien.agent.sandbox.local import LocalDriver
    from mien.agent.sandbox.podman import PodmanDriver

    return {"podman": PodmanDriver(), "local": LocalDriver()}


def get_driver(name: str | None = None) -> Driver:
    """The driver called ``name`` (``None``: the first usable one), ready to use; raises
    :class:`SandboxError` saying what is missing."""
    return pick(drivers(), name)
