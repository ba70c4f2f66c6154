"""Key paths: the dotted paths (``os_settings.theme``, ``app.values."a.b"``) that name a
setting in customizations and in a persona's ``locked`` list.

Parsing and formatting them, and finding the lock that forbids customizing one. Used by
:mod:`mien.spec.compose` (customizations, locks), by the agent (its engine and the
handlers that write settings) and by ``mien explain``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from mien.spec.errors import FieldPath

_KEY_PART = re.compile(r'"((?:[^"\\]|\\.)*)"|([^.]+)')


def parse_key(key: str) -> tuple[str, ...]:
    """``application_configuration.app.values."a.b"`` → its parts. Quote parts with dots."""
    parts: list[str] = []
    pos = 0
    while pos < len(key):
        m = _KEY_PART.match(key, pos)
        if not m:
            raise ValueError(f"{key!r} is not a key path such as os_settings.theme")
        parts.append(m.group(1).replace('\\"', '"') if m.group(1) is not None else m.group(2))
        pos = m.end()
        if pos < len(key):
            if key[pos] != ".":
                raise ValueError(f"{key!r}: expected '.' after {parts[-1]!r}")
            pos += 1
            if pos == len(key):
                raise ValueError(f"{key!r} ends with '.'")
    if not parts:
        raise ValueError("empty key path")
    return tuple(parts)


def format_key(path: FieldPath) -> str:
    return ".".join(f'"{p}"' if "." in str(p) else str(p) for p in path)


def locking(key: FieldPath, locked_by: Mapping[str, str]) -> tuple[str, str] | None:
    """The lock (key, persona) that forbids customizing ``key``, if any.

    A lock on ``a.b`` forbids ``a.b``, ``a.b.c`` and ``a`` (which would replace ``a.b``).
    """
    for lock, owner in locked_by.items():
        parts = parse_key(lock)
        n = min(len(parts), len(key))
        if tuple(parts[:n]) == tuple(str(p) for p in key[:n]):
            return lock, owner
    return None
