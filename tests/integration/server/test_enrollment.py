"""Enrollments arriving together are group-committed, yet each is judged on its own: a
token's uses are never overspent, a taken id is refused, and the others enroll."""

from __future__ import annotations

import asyncio
import collections

import httpx
from server_harness import ServerProcess

from mien.client import Client


async def _enroll_all(url: str, token: str, ids: list[str]) -> list[httpx.Response]:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as api:
        return await asyncio.gather(
            *(api.post("/api/v1/enroll", json={"instance_id": i, "tags": {"k": "v"}}) for i in ids)
        )


def test_a_burst_of_enrollments_spends_exactly_the_uses_and_refuses_taken_ids(
    server: ServerProcess, admin: Client
) -> None:
    enroll = admin.create_token("burst", kind="enroll", uses=30, tags={"site": "lab"})
    # 40 distinct ids plus 5 repeated ones, all at once, for 30 uses.
    ids = [f"burst-{i:02d}" for i in range(40)] + [f"burst-{i:02d}" for i in range(5)]
    answers = asyncio.run(_enroll_all(server.url, enroll.token, ids))
    codes = collections.Counter(r.status_code for r in answers)
    assert codes[201] == 30, codes
    assert set(codes) <= {201, 401, 409}, [r.text for r in answers if r.status_code >= 500]
    assert all("no uses left" in r.json()["detail"] for r in answers if r.status_code == 401)
    assert all("already enrolled" in r.json()["detail"] for r in answers if r.status_code == 409)

    enrolled = {r.json()["instance_id"]: r.json() for r in answers if r.status_code == 201}
    assert len(enrolled) == 30  # one id is never enrolled twice
    assert all(e["tags"] == {"k": "v", "site": "lab"} for e in enrolled.values())
    assert {i.id for i in admin.list_instances()} == set(enrolled)
    token = next(t for t in admin.list_tokens() if t.name == "burst")
    assert token.uses_left == 0
    audited = list(admin.audit(action="instance.enroll"))
    assert sorted(r.instance_id or "" for r in audited) == sorted(enrolled)
    assert admin.audit_verify().ok

    # Each new credential works, and names its own instance.
    for instance_id, answer in list(enrolled.items())[:3]:
        with Client(server.url, answer["token"]) as agent:
            assert agent.whoami().instance_id == instance_id
