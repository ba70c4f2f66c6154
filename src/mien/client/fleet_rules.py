"""The orchestrator's operations (``/fleet-rules``, ``/orchestrator``) as
:class:`~mien.client._http.Call` values; ``mien fleet-rule`` sends them."""

from __future__ import annotations

from pathlib import Path

from mien.client._http import API, Call, document_body, model, nothing, segment
from mien.protocol import Page
from mien.protocol.fleet_rules import FleetRule, FleetRuleDetail, OrchestratorStatus


def push(path: Path) -> Call[FleetRuleDetail]:
    body, kind = document_body(path)
    return Call(
        "POST",
        f"{API}/fleet-rules",
        model(FleetRuleDetail),
        params={"source": path.name},
        content=body,
        headers={"Content-Type": kind},
    )


def list_rules() -> Call[Page[FleetRule]]:
    return Call("GET", f"{API}/fleet-rules", model(Page[FleetRule]))


def get(name: str) -> Call[FleetRuleDetail]:
    return Call("GET", f"{API}/fleet-rules/{segment(name)}", model(FleetRuleDetail))


def delete(name: str) -> Call[None]:
    return Call("DELETE", f"{API}/fleet-rules/{segment(name)}", nothing)


def status() -> Call[OrchestratorStatus]:
    return Call("GET", f"{API}/orchestrator", model(OrchestratorStatus))
