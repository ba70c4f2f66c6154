"""Values a persona cannot hold: integers beyond 64 bits and strings that are not text.

A JSON ``"\\ud800"`` escape gives Python a lone UTF-16 surrogate, which no file, database
or HTTP answer can encode; an integer of thousands of digits cannot even be printed (Python
refuses to convert one past 4,300 digits) and no other tool reads one past 64 bits. The
reader (:mod:`mien.spec.source`) refuses both where they are written, naming the field, so
``mien validate``, ``mien apply`` and the server say the same thing instead of failing
later with a traceback. The server also checks the JSON bodies of its API with
:func:`load_json` and :func:`bad_values`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from mien.spec.errors import FieldPath

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
_MAX_DIGITS = len(str(INT_MAX))
_SURROGATE = re.compile("[\ud800-\udfff]")
# A backslash pair first, so that ``\\ud800`` (an escaped backslash, then text) is no escape.
_ESCAPE = re.compile(r"\\\\|\\u[dD][89a-fA-F][0-9a-fA-F]{2}|\\U0000[dD][89a-fA-F][0-9a-fA-F]{2}")


class OutOfRange(ValueError):
    """An integer literal beyond 64 bits (the message says so)."""


def int_problem(literal: str) -> str | None:
    """Why the integer ``literal`` (decimal, ``0x``/``0o``, signed) cannot be held, or None."""
    digits = literal.lstrip("+-")
    if digits[:2].lower() not in ("0x", "0o") and len(digits.lstrip("0")) > _MAX_DIGITS:
        # Refused before converting: Python's own conversion fails past 4,300 digits.
        return f"an integer of {len(digits):,} digits is out of range (at most 64 bits)"
    value = int(literal, 0) if digits[:2].lower() in ("0x", "0o") else int(literal)
    if not INT_MIN <= value <= INT_MAX:
        return f"integer out of range (at most 64 bits: {INT_MIN} to {INT_MAX})"
    return None


def text_problem(text: str) -> str | None:
    """Why ``text`` is not text (a lone UTF-16 surrogate in it), or None."""
    found = _SURROGATE.search(text)
    if found is None:
        return None
    code = f"\\u{ord(found.group()):04x}"
    return (
        f"{code} is half of a UTF-16 surrogate pair, not a character: write the character "
        "itself (or \\U0001F600 for one beyond \\uFFFF)"
    )


def mask_surrogate_escapes(text: str) -> str:
    """``text`` with every surrogate escape replaced by a valid one of the same length, so
    a parser that refuses them still reports where every value is."""

    def swap(m: re.Match[str]) -> str:
        s = m.group()
        if s == "\\\\":
            return s
        return "\\u0041" if s[1] == "u" else "\\U00000041"

    return _ESCAPE.sub(swap, text)


@dataclass(frozen=True, slots=True)
class BadInt:
    """What :func:`load_json` puts where an out-of-range integer was, to be reported."""

    message: str


def _json_int(literal: str) -> int | BadInt:
    problem = int_problem(literal)
    return BadInt(problem) if problem else int(literal)


def load_json(text: str | bytes) -> Any:
    """:func:`json.loads`, with integers past 64 bits left as :class:`BadInt` markers
    (found by :func:`bad_values`) instead of a conversion that fails or never ends."""
    return json.loads(text, parse_int=_json_int)


def bad_values(data: Any) -> list[tuple[FieldPath, str]]:
    """Every :class:`BadInt` marker, and every key or string that is not text, by path in
    document order."""
    out: list[tuple[FieldPath, str]] = []
    stack: list[tuple[FieldPath, Any]] = [((), data)]
    while stack:
        path, value = stack.pop()
        problem: str | None = None
        if isinstance(value, BadInt):
            problem = value.message
        elif isinstance(value, str):
            problem = text_problem(value)
        elif isinstance(value, dict):
            children: list[tuple[FieldPath, Any]] = []
            for key, item in value.items():
                key_problem = text_problem(key) if isinstance(key, str) else None
                if key_problem:
                    out.append(((*path, ascii(key)[1:-1]), key_problem))
                else:
                    children.append(((*path, key), item))
            stack.extend(reversed(children))
        elif isinstance(value, list):
            stack.extend(reversed([((*path, i), item) for i, item in enumerate(value)]))
        if problem:
            out.append((path, problem))
    return out
