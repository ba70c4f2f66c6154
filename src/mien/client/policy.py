"""The fleet policy's calls (``/api/v1/policy``), sent by :meth:`mien.client.Client.send`:
read the policy in force, push a new version (conditional with ``if_match``), list and read
versions. Used by ``mien policy``."""

from __future__ import annotations

from typing import Any

from mien.client._http import API, Call, document_body, model
from mien.protocol import Page, PolicyVersion, PolicyVersionSummary

P = f"{API}/policy"


def get_policy() -> Call[PolicyVersion]:
    return Call("GET", P, model(PolicyVersion))


def put_policy(
    document: Any, if_match: str | None = None, source: str | None = None
) -> Call[PolicyVersion]:
    """Push ``document`` (a path, text, bytes or mapping) as the next version."""
    body, kind = document_body(document)
    headers = {"Content-Type": kind}
    if if_match:
        headers["If-Match"] = if_match
    return Call(
        "PUT", P, model(PolicyVersion), params={"source": source}, content=body, headers=headers
    )


def versions() -> Call[Page[PolicyVersionSummary]]:
    return Call("GET", f"{P}/versions", model(Page[PolicyVersionSummary]))


def get_version(version: int) -> Call[PolicyVersion]:
    return Call("GET", f"{P}/versions/{version}", model(PolicyVersion))
