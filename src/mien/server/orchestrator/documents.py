"""Fleet rule documents: what ``mien fleet-rule push FILE`` sends, read and validated.

One document is one fleet rule: a tag ``selector``, a ``when`` condition over aggregates
of the instances it matches (CEL, compiled in the fleet environment of
:mod:`mien.rules.fleet`), the same ``for`` / ``clear_when`` / ``clear_for`` /
``keep_firing_for`` / ``cooldown`` as a persona's rules, and ``then``: the actions the
orchestrator takes when it fires (:data:`ACTIONS`). Every problem is reported as
``FILE:LINE:COL: field: message`` (the persona language's own problem format), a condition
that does not compile at its line and column inside the file.

Used by the fleet-rule routes (:mod:`mien.server.api.fleet_rules`) and the evaluation loop,
which rebuilds the rule from the stored data.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from mien.protocol.base import Name, TagKey, TagValue
from mien.protocol.personas import SelectorValue
from mien.rules.fleet import FleetRule, FleetRuleSource
from mien.spec.conditions import ConditionError
from mien.spec.document import problems_from
from mien.spec.errors import Problem, SpecError
from mien.spec.source import SourceMap, load_bytes
from mien.spec.values import Duration

MAX_BYTES = 64 * 1024
MetricName = Annotated[str, Field(min_length=1, max_length=200)]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Bind(_Closed):
    """Bind ``persona`` to the rule's selector (or ``selector``) as binding ``binding``
    (default ``fleet-RULE``); resolving deletes the binding."""

    persona: Name
    binding: Name | None = None
    selector: dict[TagKey, SelectorValue] | None = None
    priority: int = Field(100, ge=-1000, le=1000)


class Unbind(_Closed):
    """Delete binding ``binding`` while the rule fires; resolving restores it as it was."""

    binding: Name


class Activate(_Closed):
    """Activate ``persona`` on the ``worst`` matching instances by metric ``by`` (highest
    values first, or lowest with ``order: lowest``); resolving clears those activations."""

    persona: Name
    worst: int = Field(ge=1, le=10_000)
    by: MetricName
    order: Literal["highest", "lowest"] = "highest"


class CallProvider(_Closed):
    """Ask provider ``provider`` for ``kind`` (``call`` or ``resize``) with ``params``,
    once per instance: the ``worst`` by ``by`` when given, else every matching one."""

    provider: Name
    kind: Literal["call", "resize"] = "call"
    params: dict[str, Any] = Field(default_factory=dict)
    worst: int | None = Field(None, ge=1, le=10_000)
    by: MetricName | None = None
    order: Literal["highest", "lowest"] = "highest"

    @model_validator(mode="after")
    def _worst_needs_by(self) -> CallProvider:
        if (self.worst is None) != (self.by is None):
            raise ValueError("`worst` and `by` go together")
        return self


ACTIONS = ("bind", "unbind", "set_tags", "remove_tags", "activate", "call_provider")


class Action(_Closed):
    """Exactly one of the action keys."""

    bind: Bind | None = None
    unbind: Unbind | None = None
    set_tags: dict[TagKey, TagValue] | None = Field(None, min_length=1, max_length=64)
    remove_tags: list[TagKey] | None = Field(None, min_length=1, max_length=64)
    activate: Activate | None = None
    call_provider: CallProvider | None = None

    @model_validator(mode="after")
    def _one(self) -> Action:
        given = [k for k in ACTIONS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "an action is exactly one of: " + ", ".join(ACTIONS) + f" (got {len(given)})"
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ACTIONS if getattr(self, k) is not None)


def _compiles(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        rule = FleetRule(FleetRuleSource("check", value))
    except ConditionError as exc:
        raise PydanticCustomError(
            "cel", "{message}", {"message": exc.message, "line": exc.line, "column": exc.column}
        ) from None
    assert rule.compiled.when is not None
    whole = rule.compiled.when.wholes()
    if whole:
        raise ValueError(
            f'read {", ".join(whole)} by name (avg.cpu_percent, avg["x"]): '
            "the orchestrator loads only the metrics a rule names"
        )
    return value


class FleetRuleDoc(_Closed):
    """One fleet rule as written."""

    name: Name
    description: str | None = Field(None, max_length=1000)
    selector: dict[TagKey, SelectorValue] = Field(default_factory=dict)
    when: str = Field(min_length=1, max_length=4000)
    for_: Duration | None = Field(None, alias="for")
    clear_when: str | None = Field(None, min_length=1, max_length=4000)
    clear_for: Duration | None = None
    keep_firing_for: Duration | None = None
    cooldown: Duration | None = None
    fresh: Duration = Field(
        Duration(120.0), description="values older than this are left out of the aggregates"
    )
    then: list[Action] = Field(min_length=1, max_length=32)

    @field_validator("when", "clear_when")
    @classmethod
    def _condition(cls, value: str | None) -> str | None:
        return _compiles(value)

    def source(self) -> FleetRuleSource:
        def s(d: Duration | None) -> float:
            return d.seconds if d is not None else 0.0

        return FleetRuleSource(
            self.name,
            self.when,
            self.clear_when,
            s(self.for_),
            s(self.clear_for),
            s(self.keep_firing_for),
            s(self.cooldown),
        )


@dataclass(frozen=True)
class Parsed:
    doc: FleetRuleDoc
    data: dict[str, Any]
    text: str


def parse(raw: bytes, source: str = "<input>") -> Parsed:
    """Read and validate one fleet rule document (YAML or JSON); raises SpecError naming
    every problem with its line."""
    if len(raw) > MAX_BYTES:
        raise SpecError([Problem(source, 0, 0, (), f"larger than {MAX_BYTES} bytes")])
    loaded = load_bytes(raw, source)
    data = loaded.data
    if not isinstance(data, dict):
        raise SpecError([Problem(source, 1, 1, (), "a fleet rule is a mapping (name, when…)")])
    return Parsed(validate(data, loaded.where), data, loaded.text)


def validate(data: dict[str, Any], where: SourceMap) -> FleetRuleDoc:
    try:
        return FleetRuleDoc.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_hinted(p) for p in problems_from(exc, where, data)) from None


def _field_names() -> list[str]:
    names: set[str] = set()
    for model in (FleetRuleDoc, Action, Bind, Unbind, Activate, CallProvider):
        names.update(info.alias or name for name, info in model.model_fields.items())
    return sorted(names)


def _hinted(p: Problem) -> Problem:
    """An unknown field's hint from the fleet rule's fields, not the persona's."""
    if not p.message.startswith("unknown field") or not p.path:
        return p
    hint = difflib.get_close_matches(str(p.path[-1]), _field_names(), 1)
    message = "unknown field" + (f"; did you mean {hint[0]!r}?" if hint else "")
    return Problem(p.source, p.line, p.column, p.path, message, p.severity)


def load_stored(data: dict[str, Any]) -> FleetRuleDoc:
    """A stored document (validated when pushed) as the model again."""
    return FleetRuleDoc.model_validate(data)


__all__ = ["ACTIONS", "Action", "FleetRuleDoc", "Parsed", "load_stored", "parse"]
