"""How the fleet commands judge and show what the server answered: an instance's state,
a rollout's progress, push order, problem positions and remote exit statuses. Only agent
reports count as applied; a failure reported before watching began does not end a
rollout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mien.cli.common import CommandFailed
from mien.cli.fleet.instance_status import effect_text
from mien.cli.fleet.instances import applied_text, desired_text, state_text, sync_sentence
from mien.cli.fleet.push import parents_first, problem_lines
from mien.cli.fleet.remote import _exit_status
from mien.cli.fleet.rollout import Ticker, classify, watch_rollout
from mien.protocol import CommandRecord, Instance, Problem
from mien.protocol.status import effect_of

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WANT = "sha256:" + "a" * 64
OLD = "sha256:" + "b" * 64


def instance(
    iid: str = "vm-1",
    *,
    state: str | None = None,
    hash: str | None = None,
    connected: bool = True,
    error: str | None = None,
    at: datetime | None = None,
    desired_error: str | None = None,
    want: str | None = WANT,
    source: str = "binding",
) -> Instance:
    applied: dict[str, Any] = {"state": state, "hash": hash, "error": error, "at": at}
    if state:
        applied.update(persona="web", version=1)
    in_sync = want is None or (state == "applied" and hash == want)
    return Instance.model_validate(
        {
            "id": iid,
            "tags": {"role": "web"},
            "enrolled_at": T0,
            "enrolled_by": "enroll:e",
            "connected": connected,
            "desired": {
                "source": source if want else "none",
                "persona": "web" if want else None,
                "version": 2 if want else None,
                "hash": want,
                "bindings": ["web"],
                "error": desired_error,
            },
            "applied": applied,
            "in_sync": in_sync and not desired_error,
        }
    )


@pytest.mark.parametrize(
    ("kw", "text"),
    [
        ({"state": "applied", "hash": WANT}, "in sync"),
        ({"want": None}, "nothing desired"),
        ({"state": "applied", "hash": OLD}, "out of date"),
        ({"state": "applying", "hash": OLD}, "applying"),
        ({"state": "failed", "hash": OLD, "error": "boom"}, "failed"),
        ({}, "never reported"),
        ({"connected": False}, "never reported (offline)"),
        ({"desired_error": "persona 'x' is gone"}, "error: cannot compose"),
    ],
)
def test_state_text(kw: dict[str, Any], text: str) -> None:
    assert state_text(instance(**kw)) == text


def test_desired_and_applied_are_shown_apart() -> None:
    inst = instance(state="failed", hash=OLD, error="boom")
    assert desired_text(inst.desired) == "web v2 (binding web)"
    assert applied_text(inst.applied) == "web v1"
    assert "agent reported a failure" in sync_sentence(inst)
    assert applied_text(instance().applied) == "-"
    assert desired_text(instance(want=None).desired) == "-"
    assert "has never reported. It is offline." in sync_sentence(instance(connected=False))


def test_applied_but_partly_in_effect_is_not_called_in_sync() -> None:
    settings = [{"status": "applied"}] * 10 + [{"status": "stored"}] * 3 + [{"status": "failed"}]
    inst = instance(state="applied", hash=WANT).model_copy(update={"effect": effect_of(settings)})
    assert inst.in_sync  # the content is applied: a rollout is done with it
    assert state_text(inst) == "partly in effect"
    assert effect_text(inst.effect) == "10/14 (3 stored, 1 failed)"
    assert sync_sentence(inst) == (
        "NOT in sync: the agent applied the desired content, but it is partly in effect: "
        "10 of 14 settings applied; 3 stored, not applied; 1 failed."
    )
    full = inst.model_copy(update={"effect": effect_of([{"status": "applied"}] * 3)})
    assert state_text(full) == "in sync" and effect_text(full.effect) == "3/3"
    assert "all 3 settings applied" in sync_sentence(full)
    none = inst.model_copy(update={"effect": effect_of([{"status": "pending"}])})
    assert state_text(none) == "not in effect" and effect_text(none.effect) == "0/1 (1 pending)"
    assert state_text(instance(state="applied", hash=WANT)) == "in sync"  # effect unknown
    assert effect_text(instance(state="applied", hash=WANT).effect) == "-"


def test_classify_a_rollout() -> None:
    state = classify(
        [
            instance("a", state="applied", hash=WANT),
            instance("b", state="applying", hash=OLD),
            instance("c", state="failed", hash=OLD, error="disk full", at=T0),
            instance("d", connected=False),
            instance("e", desired_error="cannot compose"),
        ]
    )
    assert state.applied == ["a"] and state.applying == ["b"] and state.waiting == ["d"]
    assert state.failed == {
        "c": "disk full",
        "e": "the server cannot compose its persona: cannot compose",
    }
    assert state.offline == ["d"] and not state.done
    assert state.line() == "1 of 5 applied, 2 failed, 1 applying, 1 waiting, 1 of them offline"


def test_a_failure_from_before_the_watch_waits_for_a_new_report() -> None:
    stale = instance("c", state="failed", hash=OLD, error="old failure", at=T0)
    assert classify([stale], {"c": T0}).waiting == ["c"]
    fresh = instance("c", state="failed", hash=OLD, error="new", at=T0 + timedelta(seconds=5))
    assert classify([fresh], {"c": T0}).failed == {"c": "new"}
    assert classify([], {}).done  # nothing to wait for


def test_a_failure_reported_after_the_change_counts_even_before_the_first_poll() -> None:
    # A fast agent failed the new state before the command's first look: that failure is
    # the rollout's, not an old one to wait out (it made `bind add --wait` time out).
    failed = instance(
        "c", state="failed", hash=OLD, error="disk full", at=T0 + timedelta(seconds=1)
    )
    state = watch_rollout(None, "t", lambda: [failed], timeout=0.2, since=T0)  # type: ignore[arg-type]
    assert state.failed == {"c": "disk full"} and state.done
    older = instance("c", state="failed", hash=OLD, error="old", at=T0 - timedelta(seconds=1))
    state = watch_rollout(None, "t", lambda: [older], timeout=0.2, since=T0)  # type: ignore[arg-type]
    assert state.waiting == ["c"] and not state.done


def test_an_answer_that_does_not_show_the_change_yet_is_waiting() -> None:
    synced = instance("a", state="applied", hash=WANT)
    assert classify([synced], current=lambda i: False).waiting == ["a"]
    assert classify([synced], current=lambda i: True).applied == ["a"]


def test_ticker_backs_off_to_a_second_and_expires() -> None:
    now = [100.0]
    ticker = Ticker(3.0, clock=lambda: now[0])
    assert not ticker.expired() and ticker.elapsed() == 0
    now[0] = 103.0
    assert ticker.expired() and ticker.elapsed() == 3.0


def test_parents_are_pushed_first() -> None:
    files = [
        (Path("c.yaml"), "child", "mid"),
        (Path("m.yaml"), "mid", "base"),
        (Path("b.yaml"), "base", None),
        (Path("x.yaml"), None, None),
        (Path("o.yaml"), "other", "not-pushed"),
    ]
    order = [files[i][1] for i in parents_first(files)]
    assert order == ["base", "mid", "child", None, "other"]
    loop = [(Path("a.yaml"), "a", "b"), (Path("b.yaml"), "b", "a")]
    assert sorted(parents_first(loop)) == [0, 1]  # a cycle is left for the server to refuse


def test_problem_lines_use_the_path_the_user_gave() -> None:
    problem = Problem(
        path="os_settings.theme",
        message="must be a valid string",
        source="web.yaml",
        line=2,
        column=22,
        text="web.yaml:2:22: os_settings.theme: must be a valid string",
    )
    other = Problem(path="name", message="required", text="")
    assert problem_lines([problem, other], Path("personas/web.yaml")) == [
        "personas/web.yaml:2:22: os_settings.theme: must be a valid string",
        "name: required",
    ]


def record(**kw: Any) -> CommandRecord:
    base = {
        "id": "c-1",
        "instance_id": "vm-1",
        "command": "uptime",
        "args": [],
        "timeout": 60,
        "status": "done",
        "created_at": T0,
        "created_by": "admin",
    }
    return CommandRecord.model_validate({**base, **kw})


@pytest.mark.parametrize(
    ("kw", "status"),
    [
        ({"exit_status": 0}, 0),
        ({"exit_status": 3}, 3),
        ({"exit_status": 126, "refused": True}, 126),
        ({"exit_status": -9}, 137),
        ({"exit_status": None}, 1),
        ({"status": "sent"}, 124),
        ({"status": "pending"}, 124),
    ],
)
def test_remote_exit_status(kw: dict[str, Any], status: int) -> None:
    assert _exit_status(record(**kw), "uptime", 30) == status


def test_an_expired_command_is_an_error() -> None:
    with pytest.raises(CommandFailed, match="expired before the agent picked it up"):
        _exit_status(record(status="expired"), "uptime", 30)
