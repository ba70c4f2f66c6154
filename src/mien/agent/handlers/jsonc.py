"""JSON with comments (JSONC), read and edited in place.

VS Code's ``settings.json`` and many other editors' files are JSON plus ``//`` and
``/* */`` comments and trailing commas. mien reads every JSON configuration file this way
and changes only the text of the keys it manages: a value is replaced where it stands, a
new member goes after the object's last one (in that member's indentation, with a trailing
comma when the object already uses them), a removed member takes its line and its comma
with it. Every other byte — comments, order, spacing, number spelling — stays, and adding
then removing a key gives back the text as it was.

Pure (text in, text out); used by :mod:`mien.agent.handlers.formats` as the ``json``
document. Strict JSON is JSONC without comments, so plain ``.json`` files are edited the
same way and stay strict: mien never writes a comment or a trailing comma of its own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from mien.agent.handlers.linedocs import MISSING, FormatError

MAX_DEPTH = 200  # deeper nesting is refused, not a RecursionError
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_LITERALS = {"true": True, "false": False, "null": None}


class JsoncError(FormatError):
    """Not JSON (with comments); the message says where."""


@dataclass
class _Node:
    start: int
    end: int
    value: Any  # the plain Python value (dicts, lists, scalars)
    members: list[_Member] | None = None  # objects only, in text order


@dataclass
class _Member:
    key: str
    start: int  # the key's opening quote
    node: _Node
    comma: int | None = None  # offset of the ',' after the value, if any
    extra: dict[str, Any] = field(default_factory=dict)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str, at: int | None = None) -> JsoncError:
        at = self.pos if at is None else at
        line = self.text.count("\n", 0, at) + 1
        column = at - (self.text.rfind("\n", 0, at) + 1) + 1
        return JsoncError(f"invalid JSON at line {line} column {column}: {what}")

    def skip(self) -> None:
        """Whitespace and comments."""
        text, n = self.text, len(self.text)
        while self.pos < n:
            c = text[self.pos]
            if c in " \t\r\n\ufeff":
                self.pos += 1
            elif text.startswith("//", self.pos):
                nl = text.find("\n", self.pos)
                self.pos = n if nl < 0 else nl
            elif text.startswith("/*", self.pos):
                end = text.find("*/", self.pos + 2)
                if end < 0:
                    raise self.fail("a /* comment is never closed")
                self.pos = end + 2
            else:
                return

    def document(self) -> _Node:
        self.skip()
        if self.pos >= len(self.text):
            raise self.fail("the file holds no value")
        node = self.value(0)
        self.skip()
        if self.pos < len(self.text):
            raise self.fail("extra data after the value")
        return node

    def value(self, depth: int) -> _Node:
        if depth > MAX_DEPTH:
            raise self.fail(f"nested more than {MAX_DEPTH} levels deep")
        text, start = self.text, self.pos
        c = text[start] if start < len(text) else ""
        if c == "{":
            return self.obj(depth)
        if c == "[":
            return self.array(depth)
        if c == '"':
            return _Node(start, *self.string())
        m = _NUMBER.match(text, start)
        if m:
            self.pos = m.end()
            return _Node(start, m.end(), json.loads(m.group()))
        for word, literal in _LITERALS.items():
            if text.startswith(word, start):
                self.pos = start + len(word)
                return _Node(start, self.pos, literal)
        raise self.fail("expected a value" if c else "the file ends where a value should be")

    def string(self) -> tuple[int, str]:
        try:
            value, end = json.decoder.scanstring(self.text, self.pos + 1)  # type: ignore[attr-defined]
        except json.JSONDecodeError as exc:
            raise self.fail(exc.msg, exc.pos) from None
        self.pos = end
        return end, value

    def obj(self, depth: int) -> _Node:
        start = self.pos
        self.pos += 1
        members: list[_Member] = []
        while True:
            self.skip()
            if self.text.startswith("}", self.pos):
                break
            if not self.text.startswith('"', self.pos):
                raise self.fail("expected a key in double quotes or '}'")
            key_start = self.pos
            _, key = self.string()
            self.skip()
            if not self.text.startswith(":", self.pos):
                raise self.fail("expected ':' after the key")
            self.pos += 1
            self.skip()
            member = _Member(key, key_start, self.value(depth + 1))
            members.append(member)
            self.skip()
            if self.text.startswith(",", self.pos):
                member.comma = self.pos
                self.pos += 1
            elif not self.text.startswith("}", self.pos):
                raise self.fail("expected ',' or '}'")
        self.pos += 1
        value = {m.key: m.node.value for m in members}  # the last of a repeated key wins
        return _Node(start, self.pos, value, members)

    def array(self, depth: int) -> _Node:
        start = self.pos
        self.pos += 1
        items: list[Any] = []
        while True:
            self.skip()
            if self.text.startswith("]", self.pos):
                break
            items.append(self.value(depth + 1).value)
            self.skip()
            if self.text.startswith(",", self.pos):
                self.pos += 1
            elif not self.text.startswith("]", self.pos):
                raise self.fail("expected ',' or ']'")
        self.pos += 1
        return _Node(start, self.pos, items)


def loads(text: str) -> Any:
    """The value of a JSONC text (comments and trailing commas allowed)."""
    return _Parser(text).document().value


def _line_start(text: str, at: int) -> int:
    return text.rfind("\n", 0, at) + 1


def _indent_unit(text: str) -> str:
    m = re.search(r"\n([ \t]+)\S", text)
    return m.group(1) if m else "  "


class JsoncDoc:
    """A JSON(C) document edited in place. Paths are key tuples through objects."""

    def __init__(self, text: str | None = None) -> None:
        self.text = text if text and text.strip() else ""
        self.root: _Node | None = None
        if self.text:
            self.root = _Parser(self.text).document()
            if not isinstance(self.root.value, dict):
                kind = type(self.root.value).__name__
                raise JsoncError(f"the top level is a {kind}, not a mapping of keys")
        self.unit = _indent_unit(self.text)

    def _edit(self, start: int, end: int, new: str, *more: tuple[int, int, str]) -> None:
        """Replace ``text[start:end]`` by ``new`` (and the ``more`` spans, which must not
        overlap it), then parse again."""
        text = self.text
        for a, b, piece in sorted([(start, end, new), *more], reverse=True):
            text = text[:a] + piece + text[b:]
        self.text = text
        self.root = _Parser(text).document()

    def _find(self, path: tuple[str, ...]) -> list[_Node]:
        """The nodes along ``path`` that exist (the root first)."""
        if self.root is None:
            return []
        nodes = [self.root]
        for key in path:
            members = nodes[-1].members
            found = [m for m in members or [] if m.key == key]
            if not found:
                break
            nodes.append(found[-1].node)
        return nodes

    def _member(self, obj: _Node, key: str) -> _Member:
        return [m for m in obj.members or [] if m.key == key][-1]

    def get(self, path: tuple[str, ...]) -> Any:
        nodes = self._find(path)
        return nodes[-1].value if len(nodes) == len(path) + 1 else MISSING

    def depth_existing(self, path: tuple[str, ...]) -> int:
        nodes = self._find(path[:-1])
        return sum(1 for n in nodes[1:] if n.members is not None) if nodes else 0

    def is_empty(self) -> bool:
        return self.root is None or not self.root.value

    def plain(self) -> dict[str, Any]:
        return {} if self.root is None else dict(self.root.value)

    def _one_line(self, node: _Node) -> bool:
        return "\n" not in self.text[node.start : node.end]

    def _dump(self, value: Any, indent: str, one_line: bool = False) -> str:
        if one_line:  # written like the object it goes into: {"a": 1, "b": {"c": 2}}
            return json.dumps(value, ensure_ascii=False)
        text = json.dumps(value, indent=self.unit, ensure_ascii=False)
        return text.replace("\n", "\n" + indent)

    def set(self, path: tuple[str, ...], value: Any) -> tuple[int, Any] | None:
        """Set ``path``; a non-object in the way is replaced by an object and returned as
        ``(depth, value)`` so that it can be put back."""
        if self.root is None:
            nested: Any = value
            for key in reversed(path):
                nested = {key: nested}
            self.text = json.dumps(nested, indent=self.unit, ensure_ascii=False) + "\n"
            self.root = _Parser(self.text).document()
            return None
        nodes = self._find(path)
        depth = len(nodes) - 1  # keys of the path that exist
        displaced = None
        for at in range(1, len(nodes)):
            if at < len(path) and nodes[at].members is None:
                displaced, depth = (at, nodes[at].value), at - 1  # a value in the way
                break
        rest: Any = value
        for key in reversed(path[depth + 1 :]):
            rest = {key: rest}
        parent = nodes[depth]
        if depth == len(path) or displaced is not None:
            target = nodes[-1] if displaced is None else nodes[displaced[0]]
            if displaced is None and target.value == value and type(target.value) is type(value):
                return None  # already so: not a byte changes
            indent = re.match(r"[ \t]*", self.text[_line_start(self.text, target.start) :])
            assert indent is not None
            one_line = self._one_line(nodes[-2] if displaced is None else nodes[displaced[0] - 1])
            self._edit(target.start, target.end, self._dump(rest, indent.group(), one_line))
            return displaced
        self._insert(parent, path[depth], rest)
        return None

    def _insert(self, obj: _Node, key: str, value: Any) -> None:
        assert obj.members is not None
        text = self.text
        body = f"{json.dumps(key, ensure_ascii=False)}: "
        if not obj.members:
            base = re.match(r"[ \t]*", text[_line_start(text, obj.start) :])
            assert base is not None
            inner = base.group() + self.unit
            new = "{\n" + inner + body + self._dump(value, inner) + "\n" + base.group() + "}"
            self._edit(obj.start, obj.end, new)
            return
        last = obj.members[-1]
        trailing = last.comma is not None
        after = last.comma + 1 if last.comma is not None else last.node.end
        comma = "" if trailing else ","
        if "\n" not in text[obj.start : obj.end]:  # all on one line: {"a": 1}
            new = f"{comma} {body}{self._dump(value, '', True)}{',' if trailing else ''}"
            self._edit(after, after, new)
            return
        indent = text[_line_start(text, last.start) : last.start]
        if indent.strip():  # the last member shares its line with something else
            indent = re.match(r"[ \t]*", indent).group() + self.unit  # type: ignore[union-attr]
        # After the last member's line (and a comment on it), before the newline.
        eol = text.find("\n", after)
        close = obj.end - 1
        at = close if eol < 0 or eol > close else eol
        if at == close:  # the closing brace is on the last member's line
            new_line = f"\n{indent}{body}{self._dump(value, indent)}{',' if trailing else ''}\n"
            new_line += re.match(r"[ \t]*", text[_line_start(text, obj.start) :]).group()  # type: ignore[union-attr]
        else:
            new_line = f"\n{indent}{body}{self._dump(value, indent)}{',' if trailing else ''}"
        if at == last.node.end:
            self._edit(at, at, comma + new_line)
        else:
            self._edit(at, at, new_line, (last.node.end, last.node.end, comma))

    def delete(self, path: tuple[str, ...], keep: int) -> None:
        """Remove ``path``, then objects left empty below depth ``keep``."""
        nodes = self._find(path)
        if len(nodes) != len(path) + 1 or nodes[-2].members is None:
            return
        self._remove(nodes[-2], path[-1])
        for depth in range(len(path) - 1, keep, -1):
            nodes = self._find(path[:depth])
            if len(nodes) != depth + 1 or nodes[-1].members != []:
                break
            self._remove(nodes[-2], path[depth - 1])

    def _remove(self, obj: _Node, key: str) -> None:
        assert obj.members is not None
        text = self.text
        member = self._member(obj, key)
        index = obj.members.index(member)
        if len(obj.members) == 1 and not re.search(r"/[/*]", text[obj.start : obj.end]):
            self._edit(obj.start, obj.end, "{}")
            return
        end = member.comma + 1 if member.comma is not None else member.node.end
        start = member.start
        line_start = _line_start(text, start)
        own_line = not text[line_start:start].strip()
        eol = text.find("\n", end)
        tail = text[end : len(text) if eol < 0 else eol]
        if own_line and (not tail.strip() or tail.strip().startswith("//")) and eol >= 0:
            start, end = line_start, eol + 1  # the whole line goes (with its comment)
        else:
            while end < len(text) and text[end] in " \t":
                end += 1
        previous = obj.members[index - 1] if index > 0 else None
        if member.comma is None and previous is not None and previous.comma is not None:
            # The last member goes: the comma before it would now trail.
            if start != line_start:
                self._edit(previous.node.end, end, "")  # inline: from the value before
            else:
                self._edit(start, end, "", (previous.comma, previous.comma + 1, ""))
            return
        self._edit(start, end, "")

    def render(self, header: str | None) -> str:
        return self.text
