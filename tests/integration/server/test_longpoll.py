"""The long-poll's lean path answers exactly as the application route does: the desired
state, 204 when nothing changed, the same errors, and what it cannot judge at a glance
goes to the application (a 422 naming the parameter)."""

from __future__ import annotations

import httpx
from server_harness import ServerProcess

from mien.client import Client

PATH = "/api/v1/agent/desired"


def _agent(server: ServerProcess, admin: Client, instance_id: str) -> str:
    enroll = admin.create_token(f"e-{instance_id}", kind="enroll").token
    r = httpx.post(
        f"{server.url}/api/v1/enroll",
        headers={"Authorization": f"Bearer {enroll}"},
        json={"instance_id": instance_id},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def test_long_poll_answers_waits_and_refuses_like_the_route(
    server: ServerProcess, admin: Client
) -> None:
    admin.create_persona({"name": "base", "environment_variables": {"V": "1"}})
    token = _agent(server, admin, "lp-1")
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        first = http.get(PATH, params={"wait": 0}, headers=auth)
        assert first.status_code == 200, first.text
        assert first.headers["content-type"] == "application/json"
        state = first.json()["state"]
        same = http.get(PATH, params={"wait": 0.2, "known": state}, headers=auth)
        assert same.status_code == 204 and same.content == b""
        # Changed meanwhile: answered at once.
        assert http.get(PATH, params={"known": "other"}, headers=auth).json()["state"] == state

        # Bad parameters reach the application, whose 422 names them.
        for params, field in (
            ({"wait": "soon"}, "wait"),
            ({"wait": "-1"}, "wait"),
            ({"wait": "nan"}, "wait"),
            ({"known": "x" * 65}, "known"),
        ):
            r = http.get(PATH, params=params, headers=auth)
            assert r.status_code == 422, (params, r.text)
            assert field in r.text, r.text

        # The same refusals as every other endpoint, in the usual error shape.
        r = http.get(PATH, params={"wait": 0})
        assert r.status_code == 401 and r.json()["code"] == "unauthorized"
        assert r.headers["www-authenticate"].startswith("Bearer")
        r = http.get(PATH, params={"wait": 0}, headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401 and "unknown token" in r.json()["detail"]
        r = http.get(
            PATH, params={"wait": 0}, headers={"Authorization": f"Bearer {server.admin_token}"}
        )
        assert r.status_code == 403 and "needs 'agent'" in r.json()["detail"]

        admin.delete_instance("lp-1")
        r = http.get(PATH, params={"wait": 0}, headers=auth)
        assert r.status_code == 401 and "revoked" in r.json()["detail"]

        metrics = http.get("/metrics").text
        assert f'route="{PATH}",status="204"' in metrics
