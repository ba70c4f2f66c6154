"""Providers on the wire: a declaration as the API shows it (never its secret) and one
provider call with its outcome. Used by the provider routes and the CLI."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from mien.protocol.base import WireModel


class ProviderView(WireModel):
    name: str
    driver: str
    selector: dict[str, str | list[str]]
    config: dict[str, Any]
    has_secret: bool = Field(description="a secret is stored; it is never returned")
    description: str | None = None
    version: int
    updated_at: datetime
    updated_by: str


class ProviderCall(WireModel):
    id: str
    idempotency_key: str
    provider: str
    instance: str
    kind: str
    params: dict[str, Any]
    reason: str
    status: str = Field(description="pending, failing, succeeded, failed or refused")
    attempts: int
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    result: dict[str, Any] | None = None
    created_at: datetime
    finished_at: datetime | None = None
