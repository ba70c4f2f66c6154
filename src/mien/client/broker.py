"""The broker's calls: the user side (``mien app``, ``mien group``) and the sandbox host
side (:mod:`mien.agent.sandbox_host`). Each is a :class:`~mien.client._http.Call`, sent by
:meth:`mien.client.Client.send` (any token) — the host sends them with its agent token."""

from __future__ import annotations

from typing import Any

from mien.client._http import API, Call, model, nothing
from mien.protocol import Page
from mien.protocol.broker import Group, HostWork, Lease, RunRecord

B = f"{API}/broker"


def request_lease(
    persona: str, priority: int | None = None, ttl: float | None = None
) -> Call[Lease]:
    body: dict[str, Any] = {"persona": persona}
    if priority is not None:
        body["priority"] = priority
    if ttl is not None:
        body["ttl"] = ttl
    return Call("POST", f"{B}/leases", model(Lease), json=body)


def list_leases(*, everyone: bool = False, ended: bool = False) -> Call[Page[Lease]]:
    params = {"all": everyone or None, "ended": ended or None}
    return Call("GET", f"{B}/leases", model(Page[Lease]), params=params)


def get_lease(lease_id: str) -> Call[Lease]:
    return Call("GET", f"{B}/leases/{lease_id}", model(Lease))


def renew_lease(lease_id: str) -> Call[Lease]:
    return Call("POST", f"{B}/leases/{lease_id}/renew", model(Lease))


def release_lease(lease_id: str) -> Call[Lease]:
    return Call("POST", f"{B}/leases/{lease_id}/release", model(Lease))


def run(lease_id: str, argv: list[str], timeout: float, wait: float) -> Call[RunRecord]:
    return Call(
        "POST",
        f"{B}/leases/{lease_id}/runs",
        model(RunRecord),
        params={"wait": wait},
        json={"argv": argv, "timeout": timeout},
        timeout=wait + 30,
    )


def get_run(lease_id: str, run_id: str, wait: float) -> Call[RunRecord]:
    return Call(
        "GET",
        f"{B}/leases/{lease_id}/runs/{run_id}",
        model(RunRecord),
        params={"wait": wait},
        timeout=wait + 30,
    )


def list_groups() -> Call[Page[Group]]:
    return Call("GET", f"{B}/groups", model(Page[Group]))


def add_members(group: str, users: list[str]) -> Call[Group]:
    return Call("POST", f"{B}/groups/{group}/members", model(Group), json={"users": users})


def remove_member(group: str, user: str) -> Call[Group]:
    return Call("DELETE", f"{B}/groups/{group}/members/{user}", model(Group))


def delete_group(group: str) -> Call[None]:
    return Call("DELETE", f"{B}/groups/{group}", nothing)


# --- the sandbox host's side -----------------------------------------------------------


def offer(cpu: float, memory: int, storage: int, driver: str | None) -> Call[None]:
    body = {"cpu": cpu, "memory": memory, "storage": storage, "driver": driver}
    return Call("POST", f"{B}/host/offer", nothing, json=body)


def work() -> Call[HostWork]:
    return Call("GET", f"{B}/host/work", model(HostWork))


def report_lease(lease_id: str, state: str, reason: str | None = None) -> Call[None]:
    return Call(
        "POST", f"{B}/host/leases/{lease_id}", nothing, json={"state": state, "reason": reason}
    )


def report_usage(
    lease_id: str,
    cpu_seconds: float,
    peak_memory: int,
    processes: list[list[str]],
    oom_killed: bool | None = None,
) -> Call[None]:
    body: dict[str, Any] = {
        "cpu_seconds": cpu_seconds,
        "peak_memory": peak_memory,
        "processes": processes,
    }
    if oom_killed is not None:
        body["oom_killed"] = oom_killed
    return Call("POST", f"{B}/host/leases/{lease_id}/usage", nothing, json=body)


def run_result(
    run_id: str, exit_status: int | None, stdout: str, stderr: str, error: str | None
) -> Call[None]:
    body = {"exit_status": exit_status, "stdout": stdout, "stderr": stderr, "error": error}
    return Call("POST", f"{B}/host/runs/{run_id}/result", nothing, json=body)
