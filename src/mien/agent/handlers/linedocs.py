"""Line-preserving editors for INI and env (``KEY=VALUE``) files.

mien changes only the lines of the keys it manages: comments, blank lines, key order,
spacing and every key it does not manage stay byte for byte, which ``configparser`` (it
drops comments and rewrites spacing) cannot promise. Keys are case-sensitive, as GTK's and
systemd's readers are; a key given twice counts by its last occurrence, as they read it.

Pure (text in, text out); used by :mod:`mien.agent.handlers.formats`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from mien.agent.handlers.support import MARK


class _Missing:
    """A key that is not in the document (distinct from a key whose value is null)."""

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Final = _Missing()


class FormatError(ValueError):
    """The file's content is not valid in its format, or a value cannot be written in it
    (the message says where)."""


# What may never be written inside a key or a value of a line-based file: the characters
# that end a line for str.splitlines (mien's own reader) or for the programs reading these
# files, and the other C0/C1 controls and DEL (invisible, or terminal escapes in messages).
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_AND_TAB = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def control_char(text: str, *, tab: bool = True) -> str | None:
    """The first control character in ``text`` (tab allowed unless ``tab`` is False),
    described for a message; None when there is none."""
    m = (_CONTROL if tab else _CONTROL_AND_TAB).search(text)
    if m is None:
        return None
    return f"control character U+{ord(m.group()):04X}"


def shown(text: str) -> str:
    """``text`` for a one-line message: control characters as escapes, never raw."""
    return _CONTROL_AND_TAB.sub(lambda m: _ESCAPES.get(m.group(), f"\\u{ord(m.group()):04x}"), text)


def ini_name_problem(kind: str, name: str) -> str | None:
    """Why ``name`` cannot be written as an INI section or key (None: it can). It must read
    back as itself: one line, no surrounding blanks, no delimiter or bracket in the way."""
    bad = control_char(name, tab=False)
    if bad:
        return f"the {kind} holds a {bad}; ini files have one {kind} per line"
    if not name or name != name.strip():
        return f"an ini {kind} cannot be empty or start or end with blanks"
    if kind == "section" and "]" in name:
        return "an ini section cannot hold ']'"
    if kind == "key" and (any(c in name for c in "=:") or name[0] in "#;["):
        return "an ini key cannot hold '=' or ':' or start with '#', ';' or '['"
    return None


_SECTION = re.compile(r"^[ \t]*\[([^\]\r\n]+)\][ \t]*$")
_COMMENT = re.compile(r"^[ \t]*[#;]")
_INI_KEY = re.compile(r"^([ \t]*)([^ \t=:\r\n#;\[][^=:\r\n]*?)([ \t]*[=:][ \t]*)(.*?)[ \t\r]*$")
# An indented "key = value" is a key (git config indents every key with a tab), any other
# indented line continues the previous value (configparser's multi-line values).
_INDENTED_KEY = re.compile(r"^[ \t]+[A-Za-z0-9_.-]+[ \t]*=")


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _ending(lines: Sequence[str]) -> str:
    for line in lines:
        if line.endswith("\r\n"):
            return "\r\n"
    return "\n"


def _with_header(lines: list[str], header: str | None) -> str:
    body = list(lines)
    while body and body[0].startswith(f"# {MARK}"):
        body.pop(0)
    if header:
        return header + "".join(body)
    return "".join(body)


@dataclass
class _Entry:
    key: str
    start: int
    end: int  # exclusive; continuation lines included
    value: str
    indent: str  # leading whitespace as written
    delimiter: str  # " = " as written; both reused when the value changes


@dataclass
class _Section:
    name: str | None
    header: int  # index of the [name] line (-1 for the preamble)
    end: int  # exclusive
    entries: list[_Entry]


class IniDoc:
    """An INI file edited in place. Paths are ``(section, key)``."""

    def __init__(self, text: str = "", delimiter: str = " = ") -> None:
        self.lines = _lines(text)
        self.delimiter = delimiter

    def _scan(self) -> list[_Section]:
        sections = [_Section(None, -1, 0, [])]
        for i, line in enumerate(self.lines):
            m = _SECTION.match(line.rstrip("\r\n"))
            if m:
                sections[-1].end = i
                sections.append(_Section(m.group(1).strip(), i, i + 1, []))
                continue
            sections[-1].end = i + 1
            if not line.strip() or _COMMENT.match(line):
                continue
            current = sections[-1]
            indented = line[0] in " \t"
            if indented and not _INDENTED_KEY.match(line):
                if current.entries and current.entries[-1].end == i:
                    entry = current.entries[-1]  # continuation of a multi-line value
                    entry.end = i + 1
                    entry.value += "\n" + line.strip()
                continue
            k = _INI_KEY.match(line.rstrip("\r\n"))
            if k:
                current.entries.append(
                    _Entry(k.group(2).strip(), i, i + 1, k.group(4), k.group(1), k.group(3))
                )
        return sections

    def _find(self, section: str, key: str) -> _Entry | None:
        found = None
        for sec in self._scan():
            if sec.name == section:
                for entry in sec.entries:
                    if entry.key == key:
                        found = entry
        return found

    def get(self, path: Sequence[str]) -> object:
        entry = self._find(path[0], path[1])
        return MISSING if entry is None else entry.value

    def depth_existing(self, path: Sequence[str]) -> int:
        return int(any(s.name == path[0] for s in self._scan()))

    def _style(self, section: str) -> tuple[str, str]:
        """Indentation and delimiter for a new key: as the section's (or the file's) last
        key is written, else the default."""
        entries = [e for s in self._scan() for e in s.entries]
        ours = [e for s in self._scan() if s.name == section for e in s.entries]
        for entry in (ours or entries)[-1:]:
            return entry.indent, entry.delimiter
        return "", self.delimiter

    def set(self, path: Sequence[str], value: str) -> None:
        section, key = path[0], path[1]
        nl = _ending(self.lines)
        entry = self._find(section, key)
        if entry is not None:
            flat = value.replace("\n", " ")
            self.lines[entry.start : entry.end] = [
                f"{entry.indent}{entry.key}{entry.delimiter}{flat}{nl}"
            ]
            return
        indent, delimiter = self._style(section)
        line = f"{indent}{key}{delimiter}{value.replace(chr(10), ' ')}{nl}"
        target = [s for s in self._scan() if s.name == section]
        if target:
            sec = target[-1]
            at = sec.entries[-1].end if sec.entries else sec.header + 1
            self.lines.insert(at, line)
            return
        if self.lines and not self.lines[-1].endswith("\n"):
            self.lines[-1] += nl
        if self.lines and self.lines[-1].strip():
            self.lines.append(nl)
        self.lines += [f"[{section}]{nl}", line]

    def delete(self, path: Sequence[str], keep: int) -> None:
        section, key = path[0], path[1]
        entry = self._find(section, key)
        if entry is not None:
            del self.lines[entry.start : entry.end]
        if keep >= 1:
            return
        for sec in reversed(self._scan()):
            if sec.name != section:
                continue
            body = self.lines[sec.header + 1 : sec.end]
            if sec.entries or any(line.strip() for line in body):
                return
            start = sec.header
            if start > 0 and not self.lines[start - 1].strip():
                start -= 1  # the blank line mien put before the section
            del self.lines[start : sec.end]
            return

    def is_empty(self) -> bool:
        return not any(
            line.strip() and not line.startswith(f"# {MARK}") and not _SECTION.match(line.strip())
            for line in self.lines
        ) and not any(s.entries for s in self._scan())

    def render(self, header: str | None) -> str:
        return _with_header(self.lines, header)


# --- env files -------------------------------------------------------------------------

_ENV_LINE = re.compile(
    r"^([ \t]*(?:export[ \t]+)?)([A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*(.*?)[\r]?$"
)
_BARE = re.compile(r"^[A-Za-z0-9_./:@%+,=^-]+$")


def env_quote(value: str) -> str:
    """A value for an env file: bare when safe, else double-quoted with escapes."""
    if _BARE.match(value):
        return value
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("$", "\\$")
        .replace("`", "\\`")
        .replace("\n", "\\n")
    )
    return f'"{escaped}"'


def env_unquote(raw: str) -> str:
    """The value of an env-file assignment's right-hand side."""
    raw = raw.strip()
    if raw.startswith("'"):
        end = raw.find("'", 1)
        return raw[1:] if end < 0 else raw[1:end]
    if raw.startswith('"'):
        out: list[str] = []
        i = 1
        while i < len(raw) and raw[i] != '"':
            if raw[i] == "\\" and i + 1 < len(raw):
                nxt = raw[i + 1]
                out.append("\n" if nxt == "n" else nxt)
                i += 2
            else:
                out.append(raw[i])
                i += 1
        return "".join(out)
    return re.sub(r"[ \t]+#.*$", "", raw)


class EnvDoc:
    """A ``KEY=VALUE`` file edited in place. Paths are ``(key,)``."""

    def __init__(self, text: str = "") -> None:
        self.lines = _lines(text)

    def _find(self, key: str) -> tuple[int, str] | None:
        found = None
        for i, line in enumerate(self.lines):
            if _COMMENT.match(line):
                continue
            m = _ENV_LINE.match(line.rstrip("\n"))
            if m and m.group(2) == key:
                found = (i, m.group(1))
        return found

    def get(self, path: Sequence[str]) -> object:
        found = self._find(path[0])
        if found is None:
            return MISSING
        m = _ENV_LINE.match(self.lines[found[0]].rstrip("\n"))
        assert m is not None
        return env_unquote(m.group(3))

    def depth_existing(self, path: Sequence[str]) -> int:
        return 0

    def set(self, path: Sequence[str], value: str) -> None:
        nl = _ending(self.lines)
        found = self._find(path[0])
        if found is not None:
            self.lines[found[0]] = f"{found[1]}{path[0]}={env_quote(value)}{nl}"
            return
        if self.lines and not self.lines[-1].endswith("\n"):
            self.lines[-1] += nl
        self.lines.append(f"{path[0]}={env_quote(value)}{nl}")

    def delete(self, path: Sequence[str], keep: int) -> None:
        found = self._find(path[0])
        if found is not None:
            del self.lines[found[0]]

    def is_empty(self) -> bool:
        return not any(line.strip() and not line.startswith(f"# {MARK}") for line in self.lines)

    def render(self, header: str | None) -> str:
        return _with_header(self.lines, header)
