"""The fleet policy language: one document an operator pushes to the server to bound what
every persona may do.

A policy has two lists, each entry scoped by a tag selector (the same selectors bindings
use: a value, a list of values, or ``*`` for "the tag is set"; an empty selector matches
every instance):

* ``trust`` — the highest trust level each risk category may have on the instances the
  selector matches (the categories and levels of a persona's ``trust_levels``). A persona
  cannot grant more than the fleet allows: the server lowers its levels before the agent
  sees it.
* ``switching`` — who (``users``, server ``groups``) may switch the instances the selector
  matches to which ``personas`` (``*``: any). Without a ``switching`` list the personas'
  own ``access_controls`` decide alone.

``noncompliance_window`` is how far back refused actions and refused commands make an
instance noncompliant.

This module only reads and validates: :func:`parse_policy` gives a :class:`PolicyDocument`
or raises :class:`~mien.spec.errors.SpecError` with ``FILE:LINE:COL: field.path: message``
problems, as persona documents do. Applying a policy is the server's business
(:mod:`mien.server.policy`). Used by the server's policy routes and ``mien policy check``.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mien.spec.actions import Level, Risk
from mien.spec.document import problems_from
from mien.spec.errors import Problem, SpecError
from mien.spec.source import MAX_BYTES, SourceMap, load_bytes
from mien.spec.values import Duration

TAG_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$")
TAG_VALUE = re.compile(r"^[A-Za-z0-9._:/@+-]{0,128}$")
USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}\$?$")
GROUP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
PERSONA = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
MAX_ENTRIES = 1000

DEFAULT_WINDOW = Duration(86400.0)
MIN_WINDOW, MAX_WINDOW = 1.0, 366 * 86400.0


def _selector(value: dict[str, Any]) -> dict[str, Any]:
    for key, wanted in value.items():
        if not TAG_KEY.match(key):
            raise ValueError(f"{key!r} is not a tag key")
        items = wanted if isinstance(wanted, list) else [wanted]
        if isinstance(wanted, list) and not wanted:
            raise ValueError(f"{key}: an empty list matches nothing; list values or use '*'")
        for item in items:
            if not isinstance(item, str) or (item != "*" and not TAG_VALUE.match(item)):
                raise ValueError(f"{key}: {item!r} is not a tag value (or '*')")
            if item == "*" and isinstance(wanted, list):
                raise ValueError(f"{key}: '*' stands alone, not in a list")
    return value


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


Selector = dict[str, str | list[str]]


class TrustCap(_Closed):
    """``{selector: {env: prod}, max: {process_control: none}}``."""

    selector: Selector = Field(default_factory=dict)
    max: dict[Risk, Level] = Field(min_length=1)
    description: str | None = None

    _check = field_validator("selector")(_selector)


class SwitchRule(_Closed):
    """``{selector: {...}, users: [alice], groups: [dev], personas: [web, '*']}``."""

    selector: Selector = Field(default_factory=dict)
    users: list[str] = Field(default_factory=list, max_length=MAX_ENTRIES)
    groups: list[str] = Field(default_factory=list, max_length=MAX_ENTRIES)
    personas: list[str] = Field(min_length=1, max_length=MAX_ENTRIES)
    description: str | None = None

    _check = field_validator("selector")(_selector)

    @field_validator("users")
    @classmethod
    def _users(cls, value: list[str]) -> list[str]:
        for user in value:
            if user != "*" and not USER.match(user):
                raise ValueError(f"{user!r} is not a user name (or '*' for anyone)")
        return value

    @field_validator("groups")
    @classmethod
    def _groups(cls, value: list[str]) -> list[str]:
        for group in value:
            if not GROUP.match(group):
                raise ValueError(f"{group!r} is not a group name")
        return value

    @field_validator("personas")
    @classmethod
    def _personas(cls, value: list[str]) -> list[str]:
        for name in value:
            if name != "*" and not PERSONA.match(name):
                raise ValueError(f"{name!r} is not a persona name (or '*' for any)")
        return value


class Policy(_Closed):
    """A fleet policy document."""

    description: str | None = None
    trust: list[TrustCap] = Field(default_factory=list, max_length=MAX_ENTRIES)
    switching: list[SwitchRule] | None = Field(default=None, max_length=MAX_ENTRIES)
    noncompliance_window: Duration = DEFAULT_WINDOW

    @field_validator("noncompliance_window")
    @classmethod
    def _window(cls, value: Duration) -> Duration:
        if not MIN_WINDOW <= value.seconds <= MAX_WINDOW:
            raise ValueError("must be between 1s and 366d")
        return value

    def canonical(self) -> dict[str, Any]:
        """The stored form: plain JSON data, defaults spelt out, nothing else."""
        out: dict[str, Any] = {}
        if self.description is not None:
            out["description"] = self.description
        out["trust"] = [_entry(t.model_dump(exclude_none=True)) for t in self.trust]
        if self.switching is not None:
            out["switching"] = [_entry(s.model_dump(exclude_none=True)) for s in self.switching]
        out["noncompliance_window"] = str(self.noncompliance_window)
        return out


def _entry(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


_FIELDS = sorted({*Policy.model_fields, *TrustCap.model_fields, *SwitchRule.model_fields})


def _hinted(problem: Problem) -> Problem:
    """An unknown field's hint taken from the policy's own fields (the shared message
    suggests persona fields)."""
    if not problem.message.startswith("unknown field") or not problem.path:
        return problem
    hint = difflib.get_close_matches(str(problem.path[-1]), _FIELDS, 1)
    message = "unknown field" + (f"; did you mean {hint[0]!r}?" if hint else "")
    return dataclasses.replace(problem, message=message)


@dataclass(frozen=True)
class PolicyDocument:
    """A validated policy, with where each part was written."""

    source: str
    policy: Policy
    where: SourceMap | None

    @property
    def data(self) -> dict[str, Any]:
        return self.policy.canonical()


def parse_policy(text: str | bytes, source: str = "<input>") -> PolicyDocument:
    """Parse and validate policy text (YAML or JSON); :class:`SpecError` names every
    problem with its file, line, column and field."""
    raw = text.encode() if isinstance(text, str) else text
    if not raw.strip():
        raise SpecError(
            [
                Problem(
                    source, 1, 1, (), "empty document: expected a fleet policy (trust:, switching:)"
                )
            ]
        )
    json_format = True if source.endswith(".json") else None
    loaded = load_bytes(raw, source, json_format=json_format)
    data = loaded.data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(
            [Problem(source, 1, 1, (), "a policy is a mapping (trust:, switching:, ...)")]
        )
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise SpecError([_hinted(p) for p in problems_from(exc, loaded.where, data)]) from None
    return PolicyDocument(source, policy, loaded.where)


def from_stored(data: dict[str, Any]) -> Policy:
    """A stored (canonical, already validated) policy as the model."""
    return Policy.model_validate(data)


def load_policy_file(path: str | Path) -> PolicyDocument:
    """Read and validate one policy file."""
    p = Path(path)
    name = str(path)
    try:
        with p.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise SpecError([Problem(name, 0, 0, (), "no such file")]) from None
    except IsADirectoryError:
        raise SpecError([Problem(name, 0, 0, (), "is a directory, not a policy file")]) from None
    except OSError as exc:
        raise SpecError([Problem(name, 0, 0, (), exc.strerror or str(exc))]) from None
    return parse_policy(raw, name)
