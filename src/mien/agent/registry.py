"""Which handlers the agent runs: everything registered in the ``mien.handlers`` entry-point
group, built-ins included (they are listed in mien's own ``pyproject.toml``).

A site adds a handler by publishing a package with::

    [project.entry-points."mien.handlers"]
    motd = "acme_mien.motd:MotdHandler"

Handlers run in the order of their ``order`` attribute (default 50), then by name, so
packages are installed before the files that configure them. Used by the engine.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from mien.agent.handlers.base import Handler, HandlerError

GROUP = "mien.handlers"


@cache
def handlers() -> tuple[Handler, ...]:
    """Every registered handler, instantiated once per process, in run order."""
    found: dict[str, Handler] = {}
    for ep in entry_points(group=GROUP):
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin must not take the agent down
            raise HandlerError(
                f"handler plugin {ep.name!r} ({ep.value}) failed to load: {exc}"
            ) from exc
        instance = cls()
        if not isinstance(instance, Handler):
            raise HandlerError(
                f"handler plugin {ep.name!r} does not implement the Handler protocol"
            )
        if instance.name != ep.name:
            raise HandlerError(
                f"handler plugin {ep.name!r} calls itself {instance.name!r}; the names must match"
            )
        found[ep.name] = instance
    return tuple(sorted(found.values(), key=lambda h: (getattr(h, "order", 50), h.name)))


def by_name(name: str) -> Handler:
    for h in handlers():
        if h.name == name:
            return h
    raise HandlerError(f"no handler named {name!r} is installed")


def claimed_settings() -> frozenset[str]:
    """Persona key paths some handler gives effect to."""
    return frozenset(s for h in handlers() for s in h.settings)
