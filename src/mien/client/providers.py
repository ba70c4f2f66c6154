"""The provider calls of the API (``mien provider``, ``mien instance show``): declarations
and the calls made for an instance. Each is a :class:`~mien.client._http.Call`, sent by
:meth:`mien.client.Client.send`."""

from __future__ import annotations

from typing import Any

from mien.client._http import API, Call, model, nothing, segment
from mien.protocol import Page
from mien.protocol.providers import ProviderCall, ProviderView


def list_providers() -> Call[Page[ProviderView]]:
    return Call("GET", f"{API}/providers", model(Page[ProviderView]))


def get_provider(name: str) -> Call[ProviderView]:
    return Call("GET", f"{API}/providers/{segment(name)}", model(ProviderView))


def put_provider(name: str, document: dict[str, Any]) -> Call[ProviderView]:
    return Call("PUT", f"{API}/providers/{segment(name)}", model(ProviderView), json=document)


def delete_provider(name: str) -> Call[None]:
    return Call("DELETE", f"{API}/providers/{segment(name)}", nothing)


def instance_calls(instance_id: str, limit: int = 100) -> Call[Page[ProviderCall]]:
    path = f"{API}/instances/{segment(instance_id)}/provider-calls"
    return Call("GET", path, model(Page[ProviderCall]), params={"limit": limit})
