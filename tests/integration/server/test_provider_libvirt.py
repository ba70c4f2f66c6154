"""The libvirt provider against libvirt's own test driver (``test:///default``), whose
domains live in the process that connects: the server runs in this process (its ASGI app
under its lifespan), an agent's ``scale`` request and a persona's resource requirements
go through the API, the queue and the gate, and the test reads the domain back through the
server's own provider object."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

libvirt = pytest.importorskip(
    "libvirt",
    reason="libvirt-python is not installed: scripts/system-deps installs libvirt-dev and "
    "pkg-config so that pip can build it",
)

from mien.server.app import create_app  # noqa: E402
from mien.server.settings import Settings  # noqa: E402

API = "http://mien.test/api/v1"


async def _until(check: Any, what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _scenario(data: Path) -> dict[str, Any]:
    tokens: list[str] = []
    settings = Settings(
        data_dir=data,
        provider_poll_interval=0.05,
        provider_retry_base=0.1,
        provider_reconcile_interval=0.2,
    )
    app = create_app(settings, on_admin_token=lambda secret, _path: tokens.append(secret))
    state = app.state.mien
    out: dict[str, Any] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=API) as http:
            admin = {"Authorization": f"Bearer {tokens[0]}"}

            async def ok(method: str, path: str, **kw: Any) -> Any:
                answer = await http.request(method, path, **kw)
                assert answer.status_code < 300, answer.text
                return answer.json() if answer.content else None

            await ok(
                "POST",
                "/personas",
                headers=admin,
                json={"name": "vm", "trust_levels": {"resource_scaling": "medium"}},
            )
            await ok(
                "POST",
                "/bindings",
                headers=admin,
                json={"name": "kvm", "selector": {"hv": "kvm"}, "persona": "vm"},
            )
            enroll = await ok(
                "POST", "/tokens", headers=admin, json={"name": "e", "kind": "enroll"}
            )
            agent = await ok(
                "POST",
                "/enroll",
                headers={"Authorization": f"Bearer {enroll['token']}"},
                json={"instance_id": "vm-1", "tags": {"hv": "kvm"}},
            )
            await ok(
                "PUT",
                "/providers/kvm",
                headers=admin,
                json={
                    "driver": "libvirt",
                    "selector": {"hv": "kvm"},
                    "config": {"uri": "test:///default", "domains": {"vm-1": "test"}},
                },
            )
            events = [
                {
                    "seq": seq,
                    "ts": time.time(),
                    "kind": "adapt.action.requested",
                    "detail": {"persona": "vm", "rule": "r", "action": "scale", "params": params},
                }
                for seq, params in ((1, {"cpu": 1}), (2, {"memory": "1GiB"}))
            ]
            await ok(
                "POST",
                "/agent/telemetry",
                headers={"Authorization": f"Bearer {agent['token']}"},
                json={"events": events},
            )

            async def settled() -> Any:
                calls = (await ok("GET", "/instances/vm-1/provider-calls", headers=admin))["items"]
                done = [c for c in calls if c["status"] in ("succeeded", "failed")]
                return calls if len(done) == len(calls) == 2 else None

            out["calls"] = await _until(settled, "both resizes")
            dom = state.providers.driver("kvm").connection().lookupByName("test")
            out["after_scale"] = dom.info()

            # A persona that needs 2 vCPUs and 2 GiB: the provider is asked to resize.
            await ok(
                "PUT",
                "/personas/vm",
                headers=admin,
                json={
                    "name": "vm",
                    "trust_levels": {"resource_scaling": "medium"},
                    "resource_requirements": {"cpu": 2, "memory": "2GiB"},
                },
            )

            async def resized() -> Any:
                calls = (await ok("GET", "/instances/vm-1/provider-calls", headers=admin))["items"]
                return [
                    c
                    for c in calls
                    if c["idempotency_key"].startswith("persona-size:")
                    and c["status"] == "succeeded"
                ]

            out["persona_call"] = (await _until(resized, "the persona's resize"))[0]
            out["after_persona"] = dom.info()

            # A domain that does not exist: a final failure, not retried for ever.
            await ok(
                "PUT",
                "/providers/kvm",
                headers=admin,
                json={
                    "driver": "libvirt",
                    "selector": {"hv": "kvm"},
                    "config": {"uri": "test:///default"},
                },
            )
            events = [
                {
                    "seq": 3,
                    "ts": time.time(),
                    "kind": "adapt.action.requested",
                    "detail": {"action": "scale", "params": {"cpu": 2}},
                }
            ]
            await ok(
                "POST",
                "/agent/telemetry",
                headers={"Authorization": f"Bearer {agent['token']}"},
                json={"events": events},
            )

            async def failed() -> Any:
                calls = (await ok("GET", "/instances/vm-1/provider-calls", headers=admin))["items"]
                return [c for c in calls if c["status"] == "failed"]

            out["failed"] = (await _until(failed, "the unknown domain to fail"))[0]
    return out


def test_scale_requests_and_persona_sizes_resize_a_test_driver_domain(tmp_path: Path) -> None:
    out = asyncio.run(_scenario(tmp_path / "data"))
    by_key = {c["idempotency_key"]: c for c in out["calls"]}
    assert by_key["scale:vm-1:1"]["status"] == "succeeded"
    assert by_key["scale:vm-1:1"]["result"]["cpus"] == 1
    assert by_key["scale:vm-1:2"]["result"]["memory_mib"] == 1024
    _state, _max_kib, memory_kib, vcpus, _ = out["after_scale"]
    assert (vcpus, memory_kib) == (1, 1024 * 1024)
    assert out["persona_call"]["result"] == {"domain": "test", "cpus": 2, "memory_mib": 2048}
    _state, _max_kib, memory_kib, vcpus, _ = out["after_persona"]
    assert (vcpus, memory_kib) == (2, 2048 * 1024)
    failed = out["failed"]
    assert failed["attempts"] == 1
    assert "domain vm-1 on test:///default" in failed["last_error"]
