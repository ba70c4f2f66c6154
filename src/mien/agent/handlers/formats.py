"""Configuration formats and the key-by-key merge that lets mien share a file with its user.

A structured file (json, yaml, toml, ini, env) is never overwritten whole: mien sets the
keys the persona manages, keeps every other key, and remembers for each key it set the
*pristine* value (what was there before mien first set it, or that it was absent), how
much of the key's parent structure already existed, and what it wrote. So:

* when a key stops being managed (persona switch), it is put back to its pristine value,
  or removed along with the parent tables mien created for it;
* when the user edits a managed key, comparing with what mien wrote finds the change,
  which becomes a customization (:func:`changed_keys`).

Every format is edited in place, so the user's comments, key order and spacing survive
and only the managed keys' text changes: JSON as JSONC (comments and trailing commas
allowed, :mod:`.jsonc`), YAML and TOML through round-trip parsers (:mod:`.yamldoc`, :mod:`.treedocs`), INI
and env files line by line (:mod:`.linedocs`). Pure: text in, text out, no I/O. Used by
the config_files, theme and browser_extensions handlers.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from mien.agent.handlers.jsonc import JsoncDoc
from mien.agent.handlers.linedocs import (
    MISSING,
    EnvDoc,
    IniDoc,
    control_char,
    ini_name_problem,
    shown,
)
from mien.agent.handlers.linedocs import FormatError as _FormatError
from mien.agent.handlers.treedocs import TomlDoc
from mien.agent.handlers.yamldoc import YamlDoc
from mien.spec.keys import format_key, parse_key

KeyPath = tuple[str, ...]
FormatError = _FormatError  # what every format's reader and writer raise
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
FORMATS = ("json", "yaml", "toml", "ini", "env", "text")


class Doc(Protocol):
    """A parsed file that keys can be read, set and deleted in."""

    def get(self, path: KeyPath) -> Any: ...
    def set(self, path: KeyPath, value: Any) -> Any: ...
    def delete(self, path: KeyPath, keep: int) -> None: ...
    def depth_existing(self, path: KeyPath) -> int: ...
    def is_empty(self) -> bool: ...
    def render(self, header: str | None) -> str: ...


def load(fmt: str, text: str | None, *, delimiter: str = " = ") -> Doc:
    """Parse ``text`` (None: the file does not exist yet) as ``fmt``."""
    if fmt == "ini":
        return IniDoc(text or "", delimiter)
    if fmt == "env":
        return EnvDoc(text or "")
    if fmt == "json":
        return JsoncDoc(text)
    if fmt == "yaml":
        return YamlDoc(text)
    if fmt == "toml":
        return TomlDoc(text)
    raise FormatError(f"{fmt!r} is not a structured format")


def comment_prefix(fmt: str) -> str | None:
    """How a comment line starts in ``fmt`` (None: the format has no comments)."""
    return "#" if fmt in ("yaml", "toml", "ini", "env") else None


# --- values ----------------------------------------------------------------------------


def flatten(fmt: str, values: Mapping[str, Any]) -> dict[KeyPath, Any]:
    """The persona's ``values`` as leaf key paths (ini: ``(section, key)``; env: ``(key,)``)."""
    out: dict[KeyPath, Any] = {}
    if fmt == "env":
        for key in values:
            if not _ENV_NAME.fullmatch(str(key)):
                raise FormatError(
                    f"{shown(str(key))!r}: an env file's keys are names (letters, digits, _; "
                    "not starting with a digit)"
                )
        return {(str(k),): v for k, v in values.items()}
    if fmt == "ini":
        for section, body in values.items():
            if not isinstance(body, Mapping):
                raise FormatError(f"ini values are sections of keys: {section!r} is not a mapping")
            problem = ini_name_problem("section", str(section))
            if problem:
                raise FormatError(f"{shown(str(section))}: {problem}")
            for key, value in body.items():
                path = (str(section), str(key))
                problem = ini_name_problem("key", str(key))
                if problem:
                    raise FormatError(f"{shown(format_key(path))}: {problem}")
                out[path] = value
        return out

    def walk(node: Mapping[str, Any], prefix: KeyPath) -> None:
        for key, value in node.items():
            here = (*prefix, str(key))
            if isinstance(value, Mapping) and value:
                walk(value, here)
            else:
                out[here] = value

    walk(values, ())
    return out


def to_format(fmt: str, value: Any, path: KeyPath) -> Any:
    """A persona value as the format stores it (ini and env hold text)."""
    if fmt not in ("ini", "env"):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        text = str(value)
        # env values are quoted and a newline escaped; an ini value is the rest of its line.
        bad = control_char(text.replace("\n", "") if fmt == "env" else text)
        if bad:
            raise FormatError(
                f"{shown(format_key(path))}: the value holds a {bad}; {fmt} files hold "
                "one-line values" + ("" if fmt == "ini" else " (a newline is written as \\n)")
            )
        return text
    raise FormatError(f"{format_key(path)}: {fmt} files hold plain values, not {value!r}")


def from_format(fmt: str, text: Any, like: Any) -> Any:
    """A value read from the file, typed like what mien wrote (ini/env hold only text)."""
    if fmt not in ("ini", "env") or not isinstance(text, str):
        return text
    low = text.strip().lower()
    if isinstance(like, bool) and low in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        return low in ("true", "1", "yes", "on")
    if isinstance(like, int) and not isinstance(like, bool) and re.fullmatch(r"[-+]?\d+", low):
        return int(low)
    if isinstance(like, float) and re.fullmatch(r"[-+]?\d+(\.\d*)?([eE][-+]?\d+)?", low):
        return float(low)
    return text


_TAG = "$mien"


def encode(value: Any) -> Any:
    """A value as JSON for handler meta (dates and times from YAML/TOML are tagged)."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return {_TAG: type(value).__name__, "iso": value.isoformat()}
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {_TAG, "iso"}:
            iso = str(value["iso"])
            if value[_TAG] == "datetime":
                return dt.datetime.fromisoformat(iso)
            if value[_TAG] == "date":
                return dt.date.fromisoformat(iso)
            return dt.time.fromisoformat(iso)
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


# --- managed keys ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyState:
    """What mien knows about one key it manages in a shared file."""

    written: Any  # the persona's value mien set
    pristine: Any = MISSING  # the value before mien first set it (MISSING: absent)
    kept: int = 0  # how many of the key's parent tables existed before mien
    displaced: tuple[int, Any] | None = None  # a scalar mien replaced by a table

    def to_meta(self) -> dict[str, Any]:
        out: dict[str, Any] = {"written": encode(self.written), "kept": self.kept}
        if self.pristine is not MISSING:
            out["pristine"] = encode(self.pristine)
        if self.displaced is not None:
            out["displaced"] = [self.displaced[0], encode(self.displaced[1])]
        return out

    @classmethod
    def from_meta(cls, data: Mapping[str, Any]) -> KeyState:
        displaced = data.get("displaced")
        return cls(
            decode(data.get("written")),
            decode(data["pristine"]) if "pristine" in data else MISSING,
            int(data.get("kept", 0)),
            (int(displaced[0]), decode(displaced[1])) if displaced else None,
        )


def keys_to_meta(states: Mapping[KeyPath, KeyState]) -> dict[str, Any]:
    return {format_key(path): st.to_meta() for path, st in states.items()}


def keys_from_meta(meta: Mapping[str, Any] | None) -> dict[KeyPath, KeyState]:
    return {parse_key(k): KeyState.from_meta(v) for k, v in (meta or {}).items()}


def _shared(a: KeyPath, b: KeyPath) -> int:
    n = 0
    for x, y in zip(a[:-1], b[:-1], strict=False):
        if x != y:
            break
        n += 1
    return n


def restore(doc: Doc, path: KeyPath, state: KeyState) -> None:
    """Put one key back as it was before mien set it."""
    if state.pristine is MISSING:
        doc.delete(path, state.kept)
    else:
        doc.set(path, state.pristine)
    if state.displaced is not None:
        depth, value = state.displaced
        if doc.get(path[:depth]) is MISSING:
            doc.set(path[:depth], value)


def merge(
    fmt: str,
    doc: Doc,
    desired: Mapping[KeyPath, Any],
    previous: Mapping[KeyPath, KeyState],
) -> dict[KeyPath, KeyState]:
    """Make ``doc`` hold ``desired`` (persona values by key path) and put back the keys of
    ``previous`` that are no longer desired. Returns the new state of every managed key."""
    for path in sorted((p for p in previous if p not in desired), key=len, reverse=True):
        restore(doc, path, previous[path])
    states: dict[KeyPath, KeyState] = {}
    for path, value in desired.items():
        stored = to_format(fmt, value, path)
        old = previous.get(path)
        if old is not None:
            doc.set(path, stored)
            states[path] = replace(old, written=value)
            continue
        pristine = doc.get(path)
        kept = doc.depth_existing(path)
        # A parent table another managed key made is mien's, not the user's.
        for other, st in (*previous.items(), *states.items()):
            if other in desired and st.kept < _shared(other, path):
                kept = min(kept, st.kept)
        displaced = doc.set(path, stored)
        states[path] = KeyState(
            value, pristine, kept, displaced if isinstance(displaced, tuple) else None
        )
    return states


def unmerge(doc: Doc, previous: Mapping[KeyPath, KeyState]) -> None:
    """Take every managed key out of ``doc`` (the file stops being managed)."""
    for path in sorted(previous, key=len, reverse=True):
        restore(doc, path, previous[path])


def changed_keys(
    fmt: str, doc: Doc, states: Mapping[KeyPath, KeyState]
) -> Iterable[tuple[KeyPath, Any]]:
    """Managed keys whose value in ``doc`` differs from what mien wrote: ``(path, value)``,
    value ``None`` when the user removed the key."""
    for path, st in states.items():
        current = doc.get(path)
        if current is MISSING:
            yield path, None
            continue
        if fmt in ("ini", "env"):
            if current != to_format(fmt, st.written, path):
                yield path, from_format(fmt, current, st.written)
        elif current != st.written:
            yield path, current
