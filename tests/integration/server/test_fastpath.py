"""The agent endpoints' lean path (long-poll and report) answers exactly as the
application routes do: the desired state, 204 when nothing changed, reports stored and
acknowledged, the same errors, and what it cannot judge at a glance goes to the
application (a 422 naming the parameter or field)."""

from __future__ import annotations

import httpx
from server_harness import ServerProcess

from mien.client import Client

PATH = "/api/v1/agent/desired"
REPORT = "/api/v1/agent/report"


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


def test_reports_are_stored_and_refused_like_the_route(
    server: ServerProcess, admin: Client
) -> None:
    token = _agent(server, admin, "rp-1")
    auth = {"Authorization": f"Bearer {token}"}
    history = [{"at": "2026-01-01T00:00:00Z", "persona": "p", "hash": "sha256:aa", "extra": 1}]
    with httpx.Client(base_url=server.url, timeout=30) as http:
        good = {"state": "applied", "hash": "sha256:aa", "persona": "p", "version": 3}
        r = http.post(REPORT, json={**good, "history": history}, headers=auth)
        assert r.status_code == 200, r.text
        assert r.json() == {"recorded": True, "activation": None}
        shown = admin.get_instance("rp-1")
        assert shown.applied is not None and shown.applied.hash == "sha256:aa"
        assert shown.applied.version == 3

        for body, field in (
            ({"state": "done"}, "state"),
            ({**good, "version": "three"}, "version"),
            ({**good, "history": [{"at": "2026-01-01T00:00:00Z", "n": 2**70}]}, "history"),
        ):
            r = http.post(REPORT, json=body, headers=auth)
            assert r.status_code == 422, (body, r.text)
            assert field in r.text, r.text
        r = http.post(
            REPORT, content=b"{not json", headers={**auth, "content-type": "application/json"}
        )
        assert r.status_code in (400, 422), r.text

        r = http.post(REPORT, json=good)
        assert r.status_code == 401 and r.json()["code"] == "unauthorized"
        r = http.post(REPORT, json=good, headers={"Authorization": f"Bearer {server.admin_token}"})
        assert r.status_code == 403 and "needs 'agent'" in r.json()["detail"]
        r = http.post(REPORT, json={**good, "activation_id": "not-mine"}, headers=auth)
        assert r.status_code == 404 and "not one of this instance's" in r.json()["detail"]
