"""Helpers of the broker's tests: people (user tokens), sandbox hosts that offer capacity
with their agent tokens, and application personas with resource requirements."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
from server_harness import ServerProcess

from mien.client import AgentClient, Client
from mien.client import broker as ops

GiB = 1024**3
MiB = 1024**2


def app_persona(
    name: str, *, cpu: float = 1, memory: str = "100MiB", **extra: Any
) -> dict[str, Any]:
    req: dict[str, Any] = {"cpu": cpu, "memory": memory}
    req.update(extra.pop("requirements", {}))
    return {"name": name, "resource_requirements": req, **extra}


def user(admin: Client, server: ServerProcess, name: str) -> Client:
    token = admin.create_token(name, role="user").token
    return Client(server.url, token)


@dataclass
class Host:
    instance_id: str
    client: Client

    def offer(self, cpu: float, memory: int = 64 * GiB, storage: int = 100 * GiB) -> None:
        self.client.send(ops.offer(cpu, memory, storage, "test"))


def host(admin: Client, server: ServerProcess, iid: str) -> Host:
    enroll = admin.create_token(f"e-{iid}", kind="enroll").token
    with AgentClient(server.url) as anon:
        token = anon.enroll(enroll, instance_id=iid).token
    return Host(iid, Client(server.url, token))


async def burst(url: str, token: str, persona: str, n: int) -> list[dict[str, Any]]:
    """``n`` lease requests sent at once over separate connections."""
    async with httpx.AsyncClient(
        base_url=url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
        limits=httpx.Limits(max_connections=n),
    ) as http:
        answers = await asyncio.gather(
            *(http.post("/api/v1/broker/leases", json={"persona": persona}) for _ in range(n))
        )
    for a in answers:
        assert a.status_code == 201, a.text
    return [a.json() for a in answers]


def ledger(admin: Client) -> dict[str, dict[str, Any]]:
    r = admin._http.get("/api/v1/broker/hosts")
    r.raise_for_status()
    return {h["instance_id"]: h for h in r.json()["items"]}


def mien(server: ServerProcess, token: str, *args: str, stdin: str | None = None) -> Any:
    """``mien ARGS`` as a separate process against ``server`` with ``token``."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "MIEN_SERVER": server.url, "MIEN_TOKEN": token, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "mien.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=600,
        check=False,
    )
