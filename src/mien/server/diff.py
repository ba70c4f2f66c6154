"""What changed between two persona versions: per-key changes and a unified YAML diff."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

from mien.spec.canonical import to_yaml
from mien.spec.errors import format_path

PathT = tuple[str | int, ...]


def _leaves(data: Any, path: PathT = ()) -> Iterator[tuple[PathT, Any]]:
    if isinstance(data, dict) and data:
        for key, value in data.items():
            yield from _leaves(value, (*path, key))
    else:
        yield path, data


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, str, Any, Any]]:
    """(path, op, before, after) for every leaf that differs. Lists compare whole, the way
    composition treats them."""
    old = dict(_leaves(before))
    new = dict(_leaves(after))
    out = []
    for path in list(old) + [p for p in new if p not in old]:
        if path not in new:
            out.append((format_path(path), "removed", old[path], None))
        elif path not in old:
            out.append((format_path(path), "added", None, new[path]))
        elif old[path] != new[path]:
            out.append((format_path(path), "changed", old[path], new[path]))
    return out


def unified(before: dict[str, Any], after: dict[str, Any], a: str, b: str) -> str:
    return "".join(
        difflib.unified_diff(
            to_yaml(before).splitlines(keepends=True),
            to_yaml(after).splitlines(keepends=True),
            fromfile=a,
            tofile=b,
        )
    )
