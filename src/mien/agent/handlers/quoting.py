"""Quoting values for the files handlers generate, and reading them back.

Values in a persona are literal: what you write is what the program gets. The one
exception is a variable extending its own previous value (``PATH: /opt/x/bin:$PATH``):
``$NAME`` or ``${NAME}`` for the variable's *own* name is kept as a reference, everything
else (``$``, quotes, backslashes, backticks) is escaped. Each writer has a reader that
undoes it, which is how a user's edit of a generated file becomes a customization.

Pure functions, used by the environment and schedules handlers and unit-tested alone.
"""

from __future__ import annotations

import re

from mien.agent.handlers.base import HandlerError


def _self_ref(name: str) -> re.Pattern[str]:
    return re.compile(rf"\$\{{{re.escape(name)}\}}|\${re.escape(name)}(?![A-Za-z0-9_])")


def split_self(name: str, value: str) -> list[str | None]:
    """``value`` cut at references to ``$name``; a reference is ``None``."""
    out: list[str | None] = []
    pos = 0
    for m in _self_ref(name).finditer(value):
        out.append(value[pos : m.start()])
        out.append(None)
        pos = m.end()
    out.append(value[pos:])
    return [p for p in out if p != ""]


# --- POSIX sh (profile.d) --------------------------------------------------------------


def sh_quote(text: str) -> str:
    """``text`` as one single-quoted sh word (nothing inside is special)."""
    return "'" + text.replace("'", "'\\''") + "'"


def sh_word(name: str, value: str) -> str:
    """The sh word for variable ``name``: literal, except references to itself."""
    parts = [f'"${{{name}}}"' if p is None else sh_quote(p) for p in split_self(name, value)]
    return "".join(parts) or "''"


_ASSIGN = re.compile(r"^[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)=")


def _sh_value(text: str, pos: int) -> tuple[str, int]:
    """Read one sh word at ``pos`` (quotes removed, expansions kept as text); return it and
    where it ends. Quoted parts may span lines."""
    out: list[str] = []
    n = len(text)
    while pos < n:
        c = text[pos]
        if c in " \t\n;&|#":
            break
        if c == "'":
            end = text.find("'", pos + 1)
            end = n if end < 0 else end
            out.append(text[pos + 1 : end])
            pos = end + 1
        elif c == '"':
            pos += 1
            while pos < n and text[pos] != '"':
                if text[pos] == "\\" and pos + 1 < n and text[pos + 1] in '$`"\\':
                    out.append(text[pos + 1])
                    pos += 2
                else:
                    out.append(text[pos])
                    pos += 1
            pos += 1
        elif c == "\\" and pos + 1 < n:
            out.append(text[pos + 1])
            pos += 2
        else:
            out.append(c)
            pos += 1
    return "".join(out), pos


def parse_sh_assignments(text: str, skip_between: tuple[str, str] | None = None) -> dict[str, str]:
    """Variables assigned by ``NAME=word`` / ``export NAME=word`` lines (last one wins).

    Lines between the ``skip_between`` marker comments are ignored (generated logic such
    as the PATH block, which is not a user value).
    """
    out: dict[str, str] = {}
    skipping = False
    pos = 0
    while pos < len(text):
        eol = text.find("\n", pos)
        eol = len(text) if eol < 0 else eol
        line = text[pos:eol]
        stripped = line.strip()
        if skip_between and stripped in skip_between:
            skipping = stripped == skip_between[0]
        elif not skipping:
            m = _ASSIGN.match(line)
            if m:
                value, end = _sh_value(text, pos + m.end())
                out[m.group(1)] = value
                eol = max(eol, end)
                nxt = text.find("\n", eol)
                eol = len(text) if nxt < 0 else nxt
        pos = eol + 1
    return out


# --- systemd environment.d -------------------------------------------------------------


def _envd_escape(text: str) -> str:
    # Inside double quotes the env-file parser unescapes \" \\ \` \$; then systemd expands
    # $VAR and ${VAR}, where "$$" stands for a literal "$".
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`").replace("$", "$$")


def envd_word(name: str, value: str, prefix: str = "") -> str:
    """The environment.d value for ``name`` (double-quoted), after a literal ``prefix``."""
    body = "".join(
        f"${{{name}}}" if p is None else _envd_escape(p) for p in split_self(name, value)
    )
    return f'"{_envd_escape(prefix)}{body}"'


def _unescape_dollars(raw: str) -> str:
    # Undo "$$" → "$"; keep references (${X}, $X) as text, as the persona writes them.
    return raw.replace("$$", "$")


def parse_envd(text: str) -> dict[str, str]:
    """Variables of an environment.d / EnvironmentFile= text (quotes and ``$$`` undone)."""
    out: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n:
            break
        if text[i] in "#;":
            i = text.find("\n", i)
            i = n if i < 0 else i
            continue
        eq = text.find("=", i)
        nl = text.find("\n", i)
        if eq < 0 or (0 <= nl < eq):
            i = n if nl < 0 else nl  # not an assignment: skip the line
            continue
        key = text[i:eq].strip()
        i = eq + 1
        value: list[str] = []
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == "'":
            end = text.find("'", i + 1)
            end = n if end < 0 else end
            value.append(text[i + 1 : end])
            i = end + 1
        elif i < n and text[i] == '"':
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n:
                    nxt = text[i + 1]
                    if nxt in '"\\`$':
                        value.append(nxt)
                    elif nxt != "\n":
                        value.append("\\" + nxt)
                    i += 2
                else:
                    value.append(text[i])
                    i += 1
            i += 1
        else:
            while i < n and text[i] != "\n":
                if text[i] == "\\" and i + 1 < n:
                    if text[i + 1] != "\n":
                        value.append(text[i + 1])
                    i += 2
                else:
                    value.append(text[i])
                    i += 1
            value = ["".join(value).rstrip()]
        nl = text.find("\n", i)
        i = n if nl < 0 else nl
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            out[key] = _unescape_dollars("".join(value))
    return out


# --- cron ------------------------------------------------------------------------------


def cron_command(command: str) -> str:
    """A command for a cron line: one line, ``%`` escaped (cron turns ``%`` into newlines)."""
    if "\n" in command or "\r" in command:
        raise HandlerError("a scheduled command must be one line (use ';' or '&&')")
    return command.replace("%", "\\%")


def cron_uncommand(text: str) -> str:
    return text.replace("\\%", "%")
