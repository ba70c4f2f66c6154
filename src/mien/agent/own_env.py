"""Environment variables mien sets for its own sake, kept from the programs it starts.

The console script (:mod:`mien.cli.entry`) sets ``PYDANTIC_DISABLE_PLUGINS`` so pydantic
does not scan every installed distribution at start-up. That is mien's business, not that of
a command run by ``mien exec`` (:mod:`mien.agent.router_exec`) or a persona's hook script
(:mod:`mien.agent.scripts`): both build their child's environment with :func:`for_children`,
which drops what :func:`set_own` added and keeps a value the caller had set themselves.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

_added: dict[str, str] = {}


def set_own(name: str, value: str) -> None:
    """Set ``name`` in this process's environment unless the caller already did."""
    if name not in os.environ:
        os.environ[name] = value
        _added[name] = value


def for_children(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` without the variables mien set for itself."""
    return {k: v for k, v in env.items() if k not in _added or _added[k] != v}
