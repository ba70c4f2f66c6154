"""``mien events`` in words: a transition reads ``from → to; why``, an action by its
message, times as clock times; nothing recorded is dropped but the raw epoch and the
redundant parameters."""

from __future__ import annotations

from types import SimpleNamespace

from mien.cli.machine.adapt import _line


def _record(event: str, **detail: object) -> SimpleNamespace:
    return SimpleNamespace(ts=1_796_186_271.0, event=event, detail=detail)


def test_a_transition_reads_from_to_and_why() -> None:
    line = _line(
        _record(
            "adapt.rule.pending",
            rule="hot",
            from_="inactive",
            to="pending",
            at=1_796_186_271.6,
            why="`when` holds",
            truth="true",
        )
    )
    assert "rule.pending" in line and " hot " in line
    assert line.endswith("inactive → pending; `when` holds")
    assert "1796186271" not in line and "truth" not in line


def test_an_unknown_truth_is_kept() -> None:
    line = _line(
        _record("adapt.rule.pending", rule="r", from_="pending", to="pending", truth="unknown")
    )
    assert "truth=unknown" in line


def test_an_action_reads_by_its_message_with_clock_times() -> None:
    line = _line(
        _record(
            "adapt.action.applied",
            rule="hot",
            action="set_setting",
            params={"key": "k", "value": "v"},
            message="k = 'v'",
            until=1_796_186_331.0,
            attempt=1,
            change=3,
        )
    )
    assert "hot set_setting  k = 'v'; " in line
    assert "change=3" in line and "until=" in line
    assert "params" not in line and "attempt" not in line
    assert "1796186331" not in line
