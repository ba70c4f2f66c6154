"""Shared pieces of the wire format: name patterns, the base classes, errors, pages."""

from __future__ import annotations

from typing import Annotated, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
"""Persona and binding names (the persona language's own rule)."""
INSTANCE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
"""Instance ids: a cloud VM id, a machine id, a host name or the server's ``i-…`` default."""
TAG_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$"
TAG_VALUE_PATTERN = r"^[A-Za-z0-9._:/@+-]{0,128}$"
COMMAND_PATTERN = r"^[^\s/\x00'\"`$\\]{1,255}$"

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
InstanceId = Annotated[str, StringConstraints(pattern=INSTANCE_ID_PATTERN)]
TagKey = Annotated[str, StringConstraints(pattern=TAG_KEY_PATTERN)]
TagValue = Annotated[str, StringConstraints(pattern=TAG_VALUE_PATTERN)]
Tags = dict[TagKey, TagValue]

Role = Literal["admin", "operator", "viewer", "user", "agent"]
ActivationStatus = Literal["pending", "applying", "applied", "failed", "superseded", "cancelled"]
ReportState = Literal["applying", "applied", "failed"]
DesiredSource = Literal["activation", "binding", "default", "none"]
CommandStatus = Literal["pending", "sent", "done", "expired"]


class WireModel(BaseModel):
    # Unknown fields are ignored so that an older client keeps working against a newer
    # server that added fields (the API only ever adds).
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class RequestModel(BaseModel):
    # Requests are strict: a misspelt field is an error, not silently ignored.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --- errors ----------------------------------------------------------------------------


class Problem(WireModel):
    """One thing wrong with a request, in the persona language's own terms."""

    path: str = Field(description="field path, e.g. os_settings.theme or query.wait")
    message: str
    source: str = ""
    line: int = 0
    column: int = 0
    severity: Literal["error", "warning"] = "error"
    text: str = Field("", description="the whole problem as FILE:LINE:COL: field.path: message")


class ErrorBody(WireModel):
    """Every error response: a sentence for people, a code for programs, and the problems."""

    detail: str
    code: str
    problems: list[Problem] = Field(default_factory=list)


T = TypeVar("T")


class Page(WireModel, Generic[T]):
    """One page of a collection; pass ``next`` back as ``after`` for the following one."""

    items: list[T]
    next: str | None = None
