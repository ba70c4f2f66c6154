"""What an operator declares about a provider: its driver, the instances it serves (a tag
selector, as bindings use), the driver's settings and its secret.

A declaration arrives as a document (``mien provider push FILE``, ``PUT
/api/v1/providers/{name}``), is checked here against the driver's own settings model, and
is stored whole; the secret is never given back. Used by the provider routes, the queue
(to build a driver for a call) and the CLI's documentation test.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

DRIVERS = ("webhook", "libvirt")
_URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$")


class WebhookConfig(BaseModel):
    """``webhook``: where to POST and how long to wait for the answer."""

    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, Field(max_length=2000)]
    timeout: Annotated[float, Field(gt=0, le=90)] = 10.0
    """Seconds one attempt may take (connect, send, answer); at most 90, so an attempt
    always ends within its claim on the call (:class:`mien.server.providers.queue.Timing`)."""

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not _URL.match(value):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value


class LibvirtConfig(BaseModel):
    """``libvirt``: the hypervisor connection and how instances name their domains."""

    model_config = ConfigDict(extra="forbid")

    uri: Annotated[str, Field(min_length=1, max_length=500)] = "qemu:///system"
    domains: dict[str, Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=dict
    )
    """Instance id → domain name, for instances whose domain is not named like them."""
    timeout: Annotated[float, Field(gt=0, le=90)] = 30.0


CONFIGS: dict[str, type[BaseModel]] = {"webhook": WebhookConfig, "libvirt": LibvirtConfig}
NEEDS_SECRET = {"webhook"}


class ProviderDocument(BaseModel):
    """The body of ``PUT /providers/{name}`` (and of ``mien provider push``)."""

    model_config = ConfigDict(extra="forbid")

    driver: Literal["webhook", "libvirt"]
    selector: dict[Annotated[str, Field(min_length=1, max_length=63)], str | list[str]] = Field(
        default_factory=dict
    )
    """The instances this provider serves: every key must match (``*``: the tag is set).
    Empty serves every instance."""
    config: dict[str, Any] = Field(default_factory=dict)
    secret: Annotated[str, Field(min_length=16, max_length=4096)] | None = None
    """The HMAC key of a ``webhook`` (at least 16 characters). Left out on an update,
    the stored one is kept."""
    description: Annotated[str, Field(max_length=2000)] | None = None


def check_config(driver: str, config: dict[str, Any]) -> dict[str, Any]:
    """The driver's settings with defaults filled in; ValidationError names the field."""
    return CONFIGS[driver].model_validate(config).model_dump()
