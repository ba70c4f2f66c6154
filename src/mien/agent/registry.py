"""Which handlers the agent runs: everything registered in the ``mien.handlers`` entry-point
group, built-ins included (they are listed in mien's own ``pyproject.toml``).

A site adds a handler by publishing a package with::

    [project.entry-points."mien.handlers"]
    motd = "acme_mien.motd:MotdHandler"

The order in which handlers run is part of the contract (:func:`run_order`): by their
``order`` attribute (:data:`DEFAULT_ORDER` when a plugin has none), then by name, whatever
order the entry points are found in. Operations are performed in that order and undone in
reverse, and the built-ins keep to these steps:

* 10 system packages (``packages_apt``), 20 Python environments (``packages_pip``),
  25 npm prefixes (``packages_npm``, whose npm step 10 may install): what the later steps
  configure is installed first;
* 30 editor extensions (``ide_extensions``), installed by an editor step 10 may install;
* 40 the environment (``environment``);
* 50 files and settings (``browser_extensions``, ``commands``, ``config_files``,
  ``logging``, ``login_shell``, ``theme``): independent of each other, run by name;
* 60 schedules (``schedules``), whose jobs run commands the steps before installed;
* 85 the adaptive fields (``adaptation``): nothing written, reported as pending on the
  agent's adaptation loop;
* 90 the settings store (``settings_store``), which records what no other step applied.

A test holds the built-ins to this order. Used by the engine.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from importlib.metadata import entry_points

from mien.agent.handlers.base import Handler, HandlerError

GROUP = "mien.handlers"
DEFAULT_ORDER = 50


def order_of(handler: Handler) -> int:
    """A handler's step (its ``order`` attribute, :data:`DEFAULT_ORDER` when it has none)."""
    order = getattr(handler, "order", DEFAULT_ORDER)
    if not isinstance(order, int) or isinstance(order, bool):
        raise HandlerError(f"handler {handler.name!r}: order {order!r} is not an integer")
    return order


def run_order(found: Iterable[Handler]) -> tuple[Handler, ...]:
    """``found`` in run order: by step, then by name (never by discovery order)."""
    return tuple(sorted(found, key=lambda h: (order_of(h), h.name)))


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
    return run_order(found.values())


def by_name(name: str) -> Handler:
    for h in handlers():
        if h.name == name:
            return h
    raise HandlerError(f"no handler named {name!r} is installed")


def claimed_settings() -> frozenset[str]:
    """Persona key paths some handler gives effect to."""
    return frozenset(s for h in handlers() for s in h.settings)
