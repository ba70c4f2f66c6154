"""What ``mien explain`` says: a key's value, which document set it and what it overrode.

Pure functions over a :class:`~mien.spec.layers.Resolved` persona, used by the ``explain``
command in :mod:`mien.cli.language.commands` (which imports this module only when it runs, so the
persona language is not loaded for other commands) and by its unit tests.
"""

from __future__ import annotations

import difflib
import json
import re
from typing import Any

from mien.cli.common import plural
from mien.spec.canonical import to_yaml
from mien.spec.errors import format_path
from mien.spec.keys import parse_key
from mien.spec.layers import DELETED, Resolved, lookup
from mien.spec.models import TOP_LEVEL_FIELDS


def key_path(text: str, data: Any) -> tuple[str | int, ...]:
    """``adaptation_rules[0].when`` → ``("adaptation_rules", 0, "when")``; list indexes
    become ints where ``data`` has a list, other parts stay strings."""
    text = re.sub(r"\[(-?\d+)\]", r".\1", text.strip())
    parts = parse_key(text.lstrip("."))
    out: list[str | int] = []
    node = data
    for part in parts:
        if isinstance(node, list) and part.lstrip("-").isdigit():
            out.append(int(part))
            index = int(part)
            node = node[index] if -len(node) <= index < len(node) else None
        else:
            out.append(part)
            node = node.get(part) if isinstance(node, dict) else None
    return tuple(out)


def _short(value: Any) -> str:
    """A value on one line, for "overrode ... (old value)"."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\n", "\\n")
    return text if len(text) <= 60 else text[:57] + "..."


def display_key(path: tuple[str | int, ...]) -> str:
    """A key path as users write it: ``a[0].b``, with parts that contain dots quoted."""
    return format_path([f'"{p}"' if isinstance(p, str) and "." in p else p for p in path])


def explain_report(resolved: Resolved, path: tuple[str | int, ...]) -> dict[str, Any] | None:
    """What ``explain`` prints, as data: the value and its origins grouped by key path.

    ``None`` when no document sets ``path`` and the language has no default for it.
    """
    value, origins = resolved.explain(path)
    if value is DELETED and all(len(o.path) < len(path) for o in origins):
        origins = []  # e.g. an index past the end of a list: nothing there to explain
    default = False
    if value is DELETED and not origins:
        full = resolved.persona.model_dump(mode="json", by_alias=True)
        value = lookup(full, path)
        if value is DELETED or value is None:  # None: an optional setting nobody set
            return None
        default = True
    groups: dict[tuple[str | int, ...], list[Any]] = {}
    for origin in origins:
        groups.setdefault(tuple(origin.path), []).append(origin)
    keys = []
    for key, items in groups.items():
        last, earlier = items[-1], items[:-1]
        # A key set as part of a larger value (lists replace whole) sits at the same path
        # inside the layer that set that value: point there, not at the whole value.
        part_of = len(key) < len(path)

        def at(origin: Any, part_of: bool = part_of) -> str:
            return str(origin.layer.position(path) if part_of else origin.describe())

        keys.append(
            {
                "key": display_key(key),
                "part_of": display_key(key) if part_of else None,
                "deleted": last.value is DELETED,
                "set_by": at(last),
                "overrode": [
                    {
                        "at": at(o),
                        "value": None if old is DELETED else old,
                        "deleted": o.value is DELETED,
                        "absent": old is DELETED and o.value is not DELETED,
                    }
                    for o in reversed(earlier)
                    for old in [lookup(o.value, path[len(key) :]) if part_of else o.value]
                ],
            }
        )
    return {
        "key": display_key(path),
        "value": None if value is DELETED else value,
        "deleted": value is DELETED,
        "default": default,
        "origins": keys,
    }


def explain_lines(report: dict[str, Any]) -> list[str]:
    """The report for people: the value, then "set by" / "overrode" lines."""
    key = report["key"]
    lines: list[str] = []
    if report["deleted"]:
        lines.append(f"{key}: (deleted)")
    else:
        lines.extend(to_yaml({key: report["value"]}).rstrip("\n").splitlines())
    if report["default"]:
        lines.append("not set by any document: this is the language's default")
    for item in report["origins"]:
        who = "" if item["key"] == key or item["part_of"] else f"{item['key']} "
        part = f" (with all of {item['part_of']})" if item["part_of"] else ""
        verb = "deleted by" if item["deleted"] else "set by"
        lines.append(f"{who}{verb} {item['set_by']}{part}")
        for old in item["overrode"]:
            was = (
                "deleted" if old["deleted"] else "absent" if old["absent"] else _short(old["value"])
            )
            lines.append(f"{who}overrode {old['at']} ({was})")
    return lines


def unknown_key(resolved: Resolved, path: tuple[str | int, ...]) -> str:
    head = str(path[0])
    if head not in TOP_LEVEL_FIELDS:
        hint = difflib.get_close_matches(head, TOP_LEVEL_FIELDS, 1)
        extra = (
            f"; did you mean {hint[0]!r}?" if hint else f" (fields: {', '.join(TOP_LEVEL_FIELDS)})"
        )
        return f"{head!r} is not a persona field{extra}"
    for cut in range(len(path) - 1, 0, -1):
        parent = lookup(resolved.data, path[:cut])
        where = display_key(path[:cut])
        if isinstance(parent, dict) and parent:
            return f"{display_key(path)} is not set ({where} has {', '.join(map(str, parent))})"
        if isinstance(parent, list):
            return f"{display_key(path)} is not set ({where} has {plural(len(parent), 'item')})"
    return f"{display_key(path)} is not set by any document"
