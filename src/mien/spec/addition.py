"""How a persona *added* on top of another joins its lists with the ones below it.

Used by :func:`mien.spec.compose.compose` for layers of kind ``addition`` (the server's
add-bindings: a persona layered over the chosen one). Everything else an added persona
sets composes as an overlay does (maps merge, later wins); a list would replace the one
below, which is wrong for lists that *accumulate* what several personas declare:

* named lists are appended by name — ``adaptation_rules`` and ``external_data_sources``;
  the same name on both sides is a clash the caller refuses (a rule cannot silently
  replace another one, nor run twice), unless the two are identical: the same rule
  reached twice (both personas extend one baseline) is kept once;
* sets are united, below first, without repeats — ``restricted_commands``,
  ``learning_domains`` (the grants the added rules need) and ``required_applications``.

Pure functions over plain data: the caller keeps the trail and words the problems.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JOINED_BY_NAME = {"adaptation_rules": "rule", "external_data_sources": "data source"}
UNITED = ("restricted_commands", "learning_domains", "required_applications")
ADDED_FIELDS = (*JOINED_BY_NAME, *UNITED)


@dataclass(frozen=True)
class Clash:
    """An item of the added list whose name an item below already has."""

    above: int  # index in the added list
    below: int  # index in the list below
    name: str


@dataclass(frozen=True)
class Joined:
    """The joined list and which of its items came from the added layer."""

    value: list[Any]
    added: list[int] = field(default_factory=list)  # indices in ``value``
    clashes: list[Clash] = field(default_factory=list)


def _name(item: Any) -> str | None:
    name = item.get("name") if isinstance(item, dict) else None
    return name if isinstance(name, str) and name else None


def join(key: str, below: Any, above: list[Any]) -> Joined:
    """Join the added list ``above`` onto ``below`` for the persona field ``key``."""
    base = list(below) if isinstance(below, list) else []
    value = list(base)
    added: list[int] = []
    clashes: list[Clash] = []
    if key in JOINED_BY_NAME:
        names = {n: i for i, n in enumerate(_name(x) for x in base) if n is not None}
        for i, item in enumerate(above):
            name = _name(item)
            if name is not None and name in names:
                if value[names[name]] != item:
                    clashes.append(Clash(i, names[name], name))
                continue
            if name is not None:
                names[name] = len(value)
            added.append(len(value))
            value.append(item)
    else:
        for item in above:
            if item not in value:
                added.append(len(value))
                value.append(item)
    return Joined(value, added, clashes)
