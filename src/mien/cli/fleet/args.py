"""Parsing the fleet commands' arguments: tags and selectors (``KEY=VALUE``), durations
(``5m``) and times (``2026-03-01``, ``2h`` ago).

Pure functions used by the ``mien persona|instance|bind|audit|token`` commands and
unit-tested on their own; durations are read as the persona language reads them. A bad argument fails with the option's name and exit status 2.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from mien.cli.common import fail
from mien.spec.values import Duration

TAG_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$")
TAG_VALUE = re.compile(r"^[A-Za-z0-9._:/@+-]{0,128}$")
COMMAND_NAME = re.compile(r"^[^\s/\x00'\"`$\\]{1,255}$")


def parse_pairs(values: Sequence[str], option: str) -> dict[str, str]:
    """``["role=web", "region=eu"]`` as a dict; a bad item fails naming ``option`` (exit 2)."""
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            fail(f"{option} {item!r}: write KEY=VALUE, e.g. {option} role=web", 2)
        check_tag(key, value, option)
        if key in out and out[key] != value:
            fail(f"{option} {key}: given twice ({out[key]!r} and {value!r})", 2)
        out[key] = value
    return out


def check_tag(key: str, value: str | None, option: str) -> None:
    if not TAG_KEY.match(key):
        fail(
            f"{option} {key!r}: a tag key is 1-63 letters, digits, '.', '_', '/' or '-', "
            "starting with a letter or digit",
            2,
        )
    if value is not None and not TAG_VALUE.match(value):
        fail(
            f"{option} {key}={value!r}: a tag value is up to 128 letters, digits or "
            "'._:/@+-' (no spaces or commas)",
            2,
        )


def parse_selector(values: Sequence[str]) -> dict[str, str | list[str]]:
    """``--selector`` items: ``KEY=VALUE``, ``KEY=V1,V2`` (any of them) or ``KEY=*`` (the
    tag is present). Every key must match; a key given twice is an error."""
    out: dict[str, str | list[str]] = {}
    for item in values:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            fail(f"--selector {item!r}: write KEY=VALUE, KEY=V1,V2 or KEY=*", 2)
        if key in out:
            fail(f"--selector {key}: given twice; list several values as {key}=V1,V2", 2)
        if value == "*":
            check_tag(key, None, "--selector")
            out[key] = "*"
            continue
        choices = [v.strip() for v in value.split(",")]
        if len(choices) > 1 and any(not c for c in choices):
            fail(f"--selector {item!r}: an empty value in the list", 2)
        for choice in choices:
            check_tag(key, choice, "--selector")
        out[key] = choices if len(choices) > 1 else choices[0]
    return out


def parse_tag_changes(set_values: Sequence[str], remove: Sequence[str]) -> dict[str, str | None]:
    """``instance tag`` arguments: ``KEY=VALUE`` sets, ``-k KEY`` removes (``None``)."""
    changes: dict[str, str | None] = dict(parse_pairs(set_values, "tag"))
    for key in remove:
        key = key.strip()
        check_tag(key, None, "--remove")
        if key in changes:
            fail(f"tag {key}: both set and removed", 2)
        changes[key] = None
    if not changes:
        fail("give KEY=VALUE to set a tag or -k KEY to remove one", 2)
    return changes


_NUMBER = re.compile(r"^\d+(?:\.\d+)?$")


def parse_duration(text: str, option: str) -> float:
    """A duration in the persona language's syntax (``30s``, ``5m``, ``2h``, ``90d``,
    ``1h30m``, ``5 minutes``) → seconds; exit 2 naming ``option`` if it is not one.

    A bare number is refused as the language refuses it: ``--expires 90`` reads as days
    to one person and as seconds to another."""
    value = text.strip()
    if _NUMBER.match(value):
        fail(f"{option} {text!r}: give a unit, e.g. {value}d, {value}h, {value}m or {value}s", 2)
    try:
        total = Duration.parse(value).seconds
    except ValueError:
        fail(f"{option} {text!r}: write a duration such as 30s, 5m, 2h, 1d or 1h30m", 2)
    if total <= 0:
        fail(f"{option} {text!r}: must be more than zero", 2)
    return total


def _is_span(text: str) -> bool:
    try:
        Duration.parse(text)
    except ValueError:
        return False
    return True


def parse_time(text: str, option: str, now: datetime | None = None) -> datetime:
    """An absolute time (ISO 8601; no zone means local time) or a span before ``now``
    (``30m``, ``2h``, ``7d``)."""
    now = now or datetime.now(UTC)
    value = text.strip()
    if _is_span(value):
        return now - timedelta(seconds=parse_duration(value, option))
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        fail(
            f"{option} {text!r}: write a time (2026-03-01, 2026-03-01T14:00, …Z) or a span "
            "before now (30m, 2h, 7d)",
            2,
        )
    if when.tzinfo is None:
        when = when.astimezone()  # the user's local time zone
    return when
