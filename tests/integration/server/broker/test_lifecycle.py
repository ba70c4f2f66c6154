"""A lease's life: the queue's order, preemption, TTL expiry, a host that stops
reporting, identity (403 with an audit record) and bad input."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from broker_support import GiB, app_persona, host, ledger, mien, user
from server_harness import ServerProcess

from mien.client import Client, Conflict, Forbidden, InvalidDocument, NotFound
from mien.client import broker as ops


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def quick(tmp_path: Path) -> Iterator[ServerProcess]:
    env = {"MIEN_SERVER_SANDBOX_HOST_TIMEOUT": "2", "MIEN_SERVER_BROKER_INTERVAL": "0.3"}
    proc = ServerProcess(tmp_path / "q", env=env).start()
    yield proc
    assert proc.stop() == 0, proc.log()
    assert "Traceback" not in proc.log(), proc.log()


def test_ttl_expiry_frees_the_lease_and_tells_its_host(quick: ServerProcess) -> None:
    with quick.client() as admin:
        admin.create_persona(app_persona("short"))
        h = host(admin, quick, "sbx")
        h.offer(cpu=1)
        with user(admin, quick, "gus") as gus:
            lease = gus.send(ops.request_lease("short", ttl=5))
            queued = gus.send(ops.request_lease("short", ttl=60))
            assert (lease.state, queued.state) == ("provisioning", "queued")
            work = h.client.send(ops.work())
            assert [x.id for x in work.provision] == [lease.id]
            h.client.send(ops.report_lease(lease.id, "ready"))
            renewed = gus.send(ops.renew_lease(lease.id))
            assert renewed.expires_at > lease.expires_at
            deadline = time.monotonic() + 15
            while gus.send(ops.get_lease(lease.id)).state != "expired":
                assert time.monotonic() < deadline, "the lease never expired"
                h.offer(cpu=1)  # the host stays alive meanwhile
                time.sleep(0.3)
            assert "not renewed for 5s" in (gus.send(ops.get_lease(lease.id)).reason or "")
            h.offer(cpu=1)
            assert lease.id in h.client.send(ops.work()).destroy
            # Its room went to the queued lease.
            assert gus.send(ops.get_lease(queued.id)).state == "provisioning"
            with pytest.raises(Conflict, match="cannot be renewed"):
                gus.send(ops.renew_lease(lease.id))
        h.client.close()


def test_a_silent_host_moves_provisioning_leases_and_fails_ready_ones(quick: ServerProcess) -> None:
    with quick.client() as admin:
        admin.create_persona(app_persona("app"))
        dead = host(admin, quick, "sbx-dead")
        dead.offer(cpu=2)
        with user(admin, quick, "hana") as hana:
            ready = hana.send(ops.request_lease("app"))
            building = hana.send(ops.request_lease("app"))
            assert ready.host == building.host == "sbx-dead"
            dead.client.send(ops.work())
            dead.client.send(ops.report_lease(ready.id, "ready"))
            spare = host(admin, quick, "sbx-spare")
            spare.offer(cpu=1, memory=GiB)
            # sbx-dead stops offering; sbx-spare keeps going.
            deadline = time.monotonic() + 15
            while hana.send(ops.get_lease(ready.id)).state == "ready":
                assert time.monotonic() < deadline, "the silent host was never noticed"
                spare.offer(cpu=1, memory=GiB)
                time.sleep(0.3)
            failed = hana.send(ops.get_lease(ready.id))
            assert failed.state == "failed" and "sbx-dead stopped reporting" in (
                failed.reason or ""
            )
            moved = hana.send(ops.get_lease(building.id))
            assert moved.state == "provisioning" and moved.host == "sbx-spare", moved
        books = ledger(admin)
        assert books["sbx-dead"]["alive"] is False and books["sbx-dead"]["used_cpu"] == 0
        assert books["sbx-spare"]["used_cpu"] == 1
        dead.client.close()
        spare.client.close()


def test_only_listed_users_and_groups_may_ask_and_refusals_are_audited(
    server: ServerProcess, admin: Client
) -> None:
    admin.create_persona(
        app_persona("private", access_controls={"users": ["ivy", "group:finance"]})
    )
    h = host(admin, server, "sbx")
    h.offer(cpu=8)
    jack_token = admin.create_token("jack", role="user").token
    with user(admin, server, "ivy") as ivy, Client(server.url, jack_token) as jack:
        mine = ivy.send(ops.request_lease("private"))
        with pytest.raises(Forbidden, match="'jack' is not among the users of persona 'private'"):
            jack.send(ops.request_lease("private"))
        denied = list(admin.audit(action="lease.denied"))
        assert [(r.actor, r.persona, r.detail["wanted"]) for r in denied] == [
            ("jack", "private", "request")
        ]
        # A group admits its members (mien group add, an admin's).
        added = mien(server, server.admin_token, "group", "add", "finance", "jack")
        assert added.returncode == 0 and "group finance: jack" in added.stderr, added
        assert jack.send(ops.request_lease("private")).state == "provisioning"
        # Someone else's lease: 403, audited; nothing changes.
        for call in (
            ops.release_lease(mine.id),
            ops.get_lease(mine.id),
            ops.run(mine.id, ["id"], 5, 0),
        ):
            with pytest.raises(Forbidden, match="belongs to 'ivy'"):
                jack.send(call)
        assert ivy.send(ops.get_lease(mine.id)).state == "provisioning"
        assert len(list(admin.audit(action="lease.denied"))) == 4
        # Groups are an admin's to change.
        with pytest.raises(Forbidden):
            jack.send(ops.add_members("finance", ["jack2"]))
        listed = mien(server, server.admin_token, "group", "list", "--output", "json")
        assert json.loads(listed.stdout) == [{"name": "finance", "members": ["jack"]}]
        refused = mien(server, jack_token, "group", "add", "finance", "mallory")
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        mine_listed = mien(server, jack_token, "app", "list", "--output", "json")
        assert [x["holder"] for x in json.loads(mine_listed.stdout)] == ["jack"]
        admin.send(ops.remove_member("finance", "jack"))
        with pytest.raises(Forbidden):
            jack.send(ops.request_lease("private"))
    # An agent token is not a person.
    with pytest.raises(Forbidden):
        h.client.send(ops.request_lease("private"))
    h.client.close()


def test_bad_input_is_refused_clearly_and_changes_nothing(
    server: ServerProcess, admin: Client
) -> None:
    admin.create_persona(app_persona("ok"))
    h = host(admin, server, "sbx")
    h.offer(cpu=1)
    with user(admin, server, "kim") as kim:
        with pytest.raises(NotFound, match="persona 'nope' not found"):
            kim.send(ops.request_lease("nope"))
        with pytest.raises(InvalidDocument, match="priority"):
            kim.send(ops.request_lease("ok", priority=5000))
        with pytest.raises(InvalidDocument, match="ttl"):
            kim.send(ops.request_lease("ok", ttl=1))
        r = kim._http.post("/api/v1/broker/leases", json={"persona": "ok", "colour": "red"})
        assert r.status_code == 422 and "colour" in r.text
        with pytest.raises(NotFound):
            kim.send(ops.get_lease("00000000-0000-0000-0000-000000000000"))
        lease = kim.send(ops.request_lease("ok"))
        with pytest.raises(Conflict, match="not ready yet"):
            kim.send(ops.run(lease.id, ["true"], 5, 0))
        with pytest.raises(InvalidDocument):
            kim.send(ops.run(lease.id, [], 5, 0))
        assert [x.id for x in kim.send(ops.list_leases()).items] == [lease.id]
    # A host's report about a lease that is not its own: 404.
    other = host(admin, server, "sbx-2")
    other.offer(cpu=1)
    with pytest.raises(NotFound):
        other.client.send(ops.report_lease(lease.id, "ready"))
    r = httpx.post(
        f"{server.url}/api/v1/broker/host/offer",
        json={"cpu": -1, "memory": 1, "storage": 0},
        headers={"Authorization": f"Bearer {server.admin_token}"},
    )
    assert r.status_code in (403, 422)
    h.client.close()
    other.client.close()
