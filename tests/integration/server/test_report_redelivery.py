"""Reports are delivered at least once, so the server must take one again without harm: the
same report re-sent (its first answer was lost) changes nothing and is audited once."""

from __future__ import annotations

from server_harness import ServerProcess

from mien.client import AgentClient, Client


def test_a_report_sent_twice_is_recorded_once(server: ServerProcess, admin: Client) -> None:
    admin.create_persona({"name": "twice", "environment_variables": {"A": "1"}})
    token = admin.create_token("twice", kind="enroll", uses=1).token
    with AgentClient(server.url) as api:
        enrolled = api.enroll(token, hostname="twice-host")
    iid = enrolled.instance_id
    activation = admin.activate(iid, "twice")
    with AgentClient(server.url, enrolled.token) as api:
        desired = api.desired(None, wait=0)
        assert desired is not None and desired.activation_id == activation.id
        report = {
            "activation_id": activation.id,
            "hash": desired.hash,
            "persona": "twice",
            "version": desired.version,
            "history": [],
        }
        api.report("applying", **{**report, "hash": None, "persona": None, "version": None})
        first = api.report("applied", **report)
        again = api.report("applied", **report)
    assert first.activation and again.activation
    assert first.activation.status == again.activation.status == "applied"
    assert again.activation.updated_at == first.activation.updated_at
    assert admin.active_persona(iid).in_sync
    applied = [r for r in admin.audit(instance=iid) if r.action == "instance.applied"]
    assert len(applied) == 1, applied
