"""YAML files edited in place with ``ruamel.yaml``'s round-trip mode.

What mien adds to ruamel: it writes with the file's own indentation, never wraps a long
line, moves the comment lines that close a mapping below a key it appends (ruamel would
put the new key after them, under the comment meant for the next key) and back when it
removes that key, and refuses the Unicode line breaks ruamel cannot quote.

Pure (text in, text out; ruamel is imported on first use). Used by
:mod:`mien.agent.handlers.formats` through :class:`YamlDoc`.
"""

from __future__ import annotations

import copy
import io
import re
from collections.abc import MutableMapping
from typing import Any

from mien.agent.handlers.treedocs import KeyPath, MappingDoc, TreeError, plain, split_header


def _yaml_indents(text: str) -> tuple[int, int]:
    """The file's mapping indent and sequence dash offset (the first of each found)."""
    mapping = offset = None
    parent = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(line.lstrip(" "))
        if parent is not None and indent > parent:
            if stripped == "-" or stripped.startswith("- "):
                offset = indent - parent if offset is None else offset
            elif mapping is None:
                mapping = indent - parent
        body = re.sub(r"\s+#.*$", "", stripped)
        parent = indent if body.endswith(":") else None
        if mapping is not None and offset is not None:
            break
    return mapping or 2, offset or 0


def _yaml() -> Any:
    from ruamel.yaml import YAML

    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 1 << 30  # never fold a user's long line
    y.default_flow_style = False
    return y


def _last(node: Any) -> tuple[Any, Any] | None:
    """The (container, key) of the last item in ``node`` (a commented map or sequence)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(node, CommentedMap) and node:
        return node, next(reversed(node))
    if isinstance(node, CommentedSeq) and node:
        return node, len(node) - 1
    return None


def _slot(container: Any) -> int:
    from ruamel.yaml.comments import CommentedSeq

    return 0 if isinstance(container, CommentedSeq) else 2


def _detach_tail(node: Any) -> Any:
    """Take the comment lines that follow ``node``'s last item (the deepest one holding
    some) off that item, leaving a comment on the item's own line where it is. Returns
    them as a comment token (None: there are none)."""
    found = None
    step = _last(node)
    while step is not None:
        container, key = step
        entry = container.ca.items.get(key)
        token = entry[_slot(container)] if entry and len(entry) > _slot(container) else None
        if token is not None and token.value.partition("\n")[2]:
            found = (container, key, token)
        step = _last(container[key])
    if found is None:
        return None
    container, key, token = found
    own, _, rest = token.value.partition("\n")
    moved = copy.copy(token)
    moved.value = "\n" + rest
    if own.strip():
        token.value = own + "\n"
    else:
        container.ca.items[key][_slot(container)] = None
    return moved


def _attach_tail(node: Any, moved: Any) -> None:
    """Put the comment lines taken by :func:`_detach_tail` after ``node``'s last item."""
    if moved is None:
        return
    step, deepest = _last(node), None
    while step is not None:
        deepest = step
        step = _last(step[0][step[1]])
    if deepest is None:
        return
    container, key = deepest
    slot = _slot(container)
    entry = container.ca.items.setdefault(key, [None, None, None, None])
    if entry[slot] is None:
        entry[slot] = moved
    else:
        entry[slot].value = entry[slot].value.rstrip("\n") + moved.value


_YAML_BREAKS = re.compile("[\x85\u2028\u2029]")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, MutableMapping | dict):
        return [s for k, v in value.items() for s in (str(k), *_strings(v))]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


def _commented(value: Any) -> Any:
    """``value`` as ruamel's own containers, which can carry the comments that follow them."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(value, dict):
        return CommentedMap((k, _commented(v)) for k, v in value.items())
    if isinstance(value, list):
        return CommentedSeq(_commented(v) for v in value)
    return value


class YamlDoc(MappingDoc):
    """A YAML file edited with ruamel.yaml's round-trip mode. Paths are key tuples."""

    def __init__(self, text: str | None) -> None:
        from ruamel.yaml.comments import CommentedMap

        body, trailing = split_header(text or "")
        self.yaml = _yaml()
        mapping, offset = _yaml_indents(body)
        self.yaml.indent(mapping=mapping, sequence=offset + 2, offset=offset)
        data: Any = None
        if body.strip():
            try:
                data = self.yaml.load(body)
            except RecursionError:
                raise TreeError("invalid YAML: nested too deeply") from None
            except Exception as exc:  # ruamel's errors share no base but YAMLError/ValueError
                raise TreeError(_yaml_problem(exc)) from None
        self.prefix = ""
        if data is None:
            # Nothing but comments (or nothing): they stay, keys go below them.
            self.prefix = body if body.endswith("\n") or not body else body + "\n"
            data = CommentedMap()
        if not isinstance(data, CommentedMap):
            raise TreeError(f"the top level is a {_kind(data)}, not a mapping of keys")
        super().__init__(body, trailing, data)

    def _check(self, path: KeyPath, value: Any) -> None:
        # ruamel writes these inside quotes as line breaks, which a reader folds into a
        # space: the value would not read back as itself.
        for text in (*path, *_strings(value)):
            m = _YAML_BREAKS.search(text)
            if m:
                raise TreeError(
                    f"{'.'.join(path)}: holds a control character U+{ord(m.group()):04X} "
                    "that YAML cannot keep"
                )

    def _table(self, parent: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        from ruamel.yaml.comments import CommentedMap

        return CommentedMap()

    def _store(self, parent: MutableMapping[str, Any], key: str, value: Any) -> None:
        parent[key] = _commented(value)

    def set(self, path: KeyPath, value: Any) -> tuple[int, Any] | None:
        tails = self._detach_tails(path)
        try:
            return super().set(path, value)
        finally:
            self._attach_tails(path, tails)

    def delete(self, path: KeyPath, keep: int) -> None:
        tails = self._detach_tails(path)
        try:
            super().delete(path, keep)
        finally:
            self._attach_tails(path, tails)

    def _detach_tails(self, path: KeyPath) -> list[tuple[int, Any]]:
        """The comment lines closing each mapping along ``path`` (deepest first)."""
        from ruamel.yaml.comments import CommentedMap

        tails = []
        for depth in range(len(path) - 1, -1, -1):
            node = self._node(path[:depth])
            if isinstance(node, CommentedMap):
                moved = _detach_tail(node)
                if moved is not None:
                    tails.append((depth, moved))
        return tails

    def _attach_tails(self, path: KeyPath, tails: list[tuple[int, Any]]) -> None:
        """Put them back at the end of the same mappings (or of the nearest one left)."""
        from ruamel.yaml.comments import CommentedMap

        for depth, moved in tails:
            node = self._node(path[:depth])
            while depth > 0 and not (isinstance(node, CommentedMap) and node):
                depth -= 1
                node = self._node(path[:depth])
            if node:
                _attach_tail(node, moved)
            else:  # no key left to hold them: the lines stay, as the file's text
                self.prefix += moved.value.lstrip("\n")

    def _dump(self) -> str:
        out = io.StringIO()
        if not self.data:  # no key left: the comments before the first one stay
            before = getattr(getattr(self.data, "ca", None), "comment", None) or [None, None]
            lines = "".join(t.value for t in (before[1] or []) if t is not None)
            return lines + self.prefix
        try:
            self.yaml.dump(self.data, out)
        except Exception as exc:
            raise TreeError(f"cannot be written as YAML: {exc}") from None
        return self.prefix + out.getvalue()


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    return type(plain(value)).__name__


def _yaml_problem(exc: Exception) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"invalid YAML{where}: {problem}"
