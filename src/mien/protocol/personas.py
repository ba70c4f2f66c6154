"""Personas, their versions and diffs, and bindings (tag selector → persona)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from mien.protocol.base import (
    Name,
    Problem,
    RequestModel,
    TagKey,
    TagValue,
    WireModel,
)

# --- personas --------------------------------------------------------------------------


class PersonaVersion(WireModel):
    """One immutable version of a persona, with its canonical document."""

    name: str
    version: int
    content_hash: str
    etag: str = Field(description="send back in If-Match to update this version")
    created_at: datetime
    created_by: str
    default_persona: bool = False
    description: str | None = None
    extends: str | None = None
    latest: bool = True
    deleted: bool = False
    document: dict[str, Any]
    warnings: list[Problem] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list, description="what else this change did")


class PersonaSummary(WireModel):
    name: str
    latest_version: int
    content_hash: str
    etag: str
    default_persona: bool
    description: str | None = None
    extends: str | None = None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None


class DefaultPersona(WireModel):
    """The fleet's default persona after a change of it (``PUT|DELETE
    /personas/{name}/default``): what an instance with no activation and no matching
    binding runs."""

    persona: str | None = Field(description="the default now (null: none)")
    previous: str | None = Field(description="the default before the change (null: none)")


class VersionSummary(WireModel):
    name: str
    version: int
    content_hash: str
    created_at: datetime
    created_by: str


class DiffChange(WireModel):
    path: str
    op: Literal["added", "removed", "changed"]
    before: Any = None
    after: Any = None


class PersonaDiff(WireModel):
    name: str
    from_version: int
    to_version: int
    from_hash: str
    to_hash: str
    changes: list[DiffChange]
    unified: str = Field(description="unified diff of the canonical YAML")


# --- bindings --------------------------------------------------------------------------


SelectorValue = TagValue | Literal["*"] | list[TagValue]


BindingMode = Literal["replace", "add"]


class BindingIn(RequestModel):
    """A tag selector choosing a persona, with an optional override and a priority.

    ``selector`` maps tag keys to a value, a list of accepted values, or ``"*"`` (the tag
    is present); every key must match. An empty selector matches every instance.
    """

    name: Name
    selector: dict[TagKey, SelectorValue] = Field(default_factory=dict)
    persona: Name
    override: dict[str, Any] | None = Field(
        None, description="a persona overlay composed over the persona (null deletes a key)"
    )
    priority: int = Field(0, ge=-1000, le=1000, description="higher wins")
    description: str | None = Field(None, max_length=1000)
    mode: BindingMode = Field(
        "replace",
        description="replace: the binding chooses the instance's persona; add: its persona "
        "(with the override) is layered on top of the chosen one",
    )


class Binding(WireModel):
    name: str
    selector: dict[str, SelectorValue]
    persona: str
    override: dict[str, Any] | None = None
    priority: int
    description: str | None = None
    mode: BindingMode = "replace"
    version: int
    etag: str
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
