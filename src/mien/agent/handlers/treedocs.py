"""Nested-mapping files edited in place through round-trip parsers: the part common to
YAML (:mod:`.yamldoc`) and TOML (``tomlkit``, here).

A round-trip parser keeps what a plain one throws away — comments, key order, quoting,
blank lines — so setting one key of a user's file changes that key's text and nothing
else the user wrote; when no value changed the original text is given back byte for byte.

Pure (text in, text out; the libraries are imported on first use, not with the agent).
Used by :mod:`mien.agent.handlers.formats`; values come out as plain Python (dicts,
lists, scalars, dates), so comparing and recording them does not depend on the library.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import MutableMapping
from typing import Any

from mien.agent.handlers.linedocs import MISSING, FormatError
from mien.agent.handlers.support import MARK

KeyPath = tuple[str, ...]
MAX_NODES = 100_000  # values larger than this (an alias bomb) are refused, not expanded


class TreeError(FormatError):
    """The file is not valid in its format, or a value cannot be written in it."""


def split_header(text: str) -> tuple[str, str]:
    """``text`` without mien's header line(s), and the newline run it ends with."""
    lines = text.splitlines(keepends=True)
    while lines and lines[0].startswith(f"# {MARK}"):
        lines.pop(0)
    body = "".join(lines)
    trailing = len(body) - len(body.rstrip("\n"))
    return body, "\n" * max(trailing, 1)


def plain(value: Any, budget: list[int] | None = None) -> Any:
    """``value`` with the library's types (commented maps, tomlkit items, ruamel scalars)
    turned into plain Python ones."""
    budget = budget if budget is not None else [MAX_NODES]
    budget[0] -= 1
    if budget[0] < 0:
        raise TreeError(f"a value holds more than {MAX_NODES} items (aliases?): not read")
    unwrap = getattr(value, "unwrap", None)
    if callable(unwrap) and not isinstance(value, MutableMapping | list):
        value = unwrap()  # a tomlkit scalar
    if isinstance(value, MutableMapping):
        return {str(k): plain(v, budget) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v, budget) for v in value]
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, dt.datetime):
        return dt.datetime.fromisoformat(value.isoformat())
    if isinstance(value, dt.date):
        return dt.date.fromisoformat(value.isoformat())
    if isinstance(value, dt.time):
        return dt.time.fromisoformat(value.isoformat())
    if type(value).__name__ == "ScalarBoolean":
        return bool(value)
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    inner = getattr(value, "value", MISSING)  # a tagged scalar: its text
    return str(value) if inner is MISSING else plain(inner, budget)


class MappingDoc:
    """A document of nested mappings edited in place; the formats fill in the hooks."""

    def __init__(self, body: str, trailing: str, data: MutableMapping[str, Any]) -> None:
        self.body = body  # the text as read, without mien's header
        self.trailing = trailing
        self.data = data
        self.dirty = False

    # hooks
    def _check(self, path: KeyPath, value: Any) -> None:
        """Refuse what the format cannot write faithfully."""

    def _table(self, parent: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        raise NotImplementedError

    def _store(self, parent: MutableMapping[str, Any], key: str, value: Any) -> None:
        parent[key] = value

    def _dump(self) -> str:
        raise NotImplementedError

    # the Doc protocol of formats
    def _node(self, path: KeyPath) -> Any:
        node: Any = self.data
        for part in path:
            if not isinstance(node, MutableMapping) or part not in node:
                return MISSING
            node = node[part]
        return node

    def get(self, path: KeyPath) -> Any:
        node = self._node(path)
        return node if node is MISSING else plain(node)

    def depth_existing(self, path: KeyPath) -> int:
        node: Any = self.data
        depth = 0
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, MutableMapping) else None
            if not isinstance(node, MutableMapping):
                break
            depth += 1
        return depth

    def set(self, path: KeyPath, value: Any) -> tuple[int, Any] | None:
        """Set ``path``; a scalar in the way is replaced by a table and returned as
        ``(depth, value)`` so that it can be put back."""
        current = self._node(path)
        if current is not MISSING:
            old = plain(current)
            if old == value and type(old) is type(value):
                return None  # already so: not a byte changes
        self._check(path, value)
        self.dirty = True
        displaced = None
        node = self.data
        for depth, part in enumerate(path[:-1], start=1):
            child = node.get(part, MISSING)
            if not isinstance(child, MutableMapping):
                if child is not MISSING and displaced is None:
                    displaced = (depth, plain(child))
                self._store(node, part, self._table(node))
                child = node[part]
            node = child
        self._store(node, path[-1], copy.deepcopy(value))
        return displaced

    def _remove(self, parent: MutableMapping[str, Any], key: str) -> None:
        del parent[key]

    def delete(self, path: KeyPath, keep: int) -> None:
        """Remove ``path``, then parent tables left empty below depth ``keep``."""
        parents: list[MutableMapping[str, Any]] = [self.data]
        for part in path[:-1]:
            child = parents[-1].get(part)
            if not isinstance(child, MutableMapping):
                return
            parents.append(child)
        if path[-1] not in parents[-1]:
            return
        self.dirty = True
        self._remove(parents[-1], path[-1])
        for depth in range(len(path) - 1, keep, -1):
            if parents[depth]:
                break
            self._remove(parents[depth - 1], path[depth - 1])

    def is_empty(self) -> bool:
        return not self.data

    def plain(self) -> dict[str, Any]:
        return dict(plain(self.data))

    def render(self, header: str | None) -> str:
        if not self.dirty:
            return (header or "") + self.body
        body = self._dump()
        body = body.rstrip("\n") + self.trailing if body.strip() else ""
        return (header or "") + body


# --- TOML ------------------------------------------------------------------------------


class TomlDoc(MappingDoc):
    """A TOML file edited with tomlkit. Paths are key tuples."""

    def __init__(self, text: str | None) -> None:
        import tomlkit
        from tomlkit.exceptions import TOMLKitError

        body, trailing = split_header(text or "")
        try:
            data = tomlkit.parse(body)
        except TOMLKitError as exc:
            raise TreeError(f"invalid TOML: {exc}") from None
        except RecursionError:
            raise TreeError("invalid TOML: nested too deeply") from None
        super().__init__(body, trailing, data)

    def _table(self, parent: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        import tomlkit
        from tomlkit.items import InlineTable

        return tomlkit.inline_table() if isinstance(parent, InlineTable) else tomlkit.table()

    def _store(self, parent: MutableMapping[str, Any], key: str, value: Any) -> None:
        try:
            parent[key] = value
        except (TypeError, ValueError) as exc:
            raise TreeError(f"cannot be written as TOML: {exc}") from None

    def _dump(self) -> str:
        import tomlkit

        return tomlkit.dumps(self.data)
