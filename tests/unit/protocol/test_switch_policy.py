"""Who may switch to a persona (``access_controls.users``: names and ``group:`` entries),
the rule the agent's socket and the server's switch endpoint share."""

from __future__ import annotations

import pytest

from mien.protocol.switching import SwitchRequest, refusal


def doc(*users: str) -> dict[str, object]:
    return {"name": "p", "access_controls": {"users": list(users)}}


def test_a_listed_user_or_group_member_may_use_it() -> None:
    assert refusal(doc("alice"), "alice", []) is None
    assert refusal(doc("group:analysts"), "bob", ["staff", "analysts"]) is None


def test_others_are_told_why() -> None:
    why = refusal(doc("alice", "group:analysts"), "bob", ["staff"])
    assert why == "'bob' is not in its access_controls.users (alice, group:analysts)"
    # A group named like a user does not admit that user, nor a user named like a group.
    assert refusal(doc("group:alice"), "alice", []) is not None
    assert refusal(doc("analysts"), "bob", ["analysts"]) is not None


def test_a_persona_listing_nobody_is_for_root_or_an_operator() -> None:
    for document in ({"name": "p"}, doc(), {"access_controls": None}, None):
        assert "lists nobody" in str(refusal(document, "alice", ["alice"]))


def test_a_switch_request_names_a_plausible_user_only() -> None:
    ok = SwitchRequest.model_validate({"persona": "dev", "requested_by": {"user": "alice"}})
    assert ok.requested_by.groups == []
    for bad in ("root; rm", "../x", "", "A" * 40):
        with pytest.raises(ValueError):
            SwitchRequest.model_validate({"persona": "dev", "requested_by": {"user": bad}})
