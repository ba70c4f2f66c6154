"""A setting's outcome is a closed type: bare strings and mismatched reasons are refused,
and one setting never shows two outcomes."""

from __future__ import annotations

import pytest

from mien.agent.handlers.base import Note
from mien.protocol.outcomes import Outcome, Reason, SettingOutcome, from_stored, settle


def test_a_bare_string_is_not_an_outcome() -> None:
    with pytest.raises(TypeError, match="not an Outcome"):
        Note("os_settings.theme", "applied", "dark")  # type: ignore[arg-type]


def test_a_reason_must_fit_its_outcome() -> None:
    with pytest.raises(ValueError, match="cannot have reason"):
        Note("os_settings.theme", Outcome.APPLIED, "dark", Reason.NOT_INSTALLED)
    assert Note("x", Outcome.PENDING, "m", Reason.NOT_INSTALLED).reason is Reason.NOT_INSTALLED
    assert Note("x", Outcome.STORED, "m").reason is Reason.NO_EFFECT


def test_one_outcome_per_setting_the_worst_wins() -> None:
    items = [
        Note("ide", Outcome.APPLIED, "1 present").outcome(),
        Note("theme", Outcome.APPLIED, "dark").outcome(),
        Note("ide", Outcome.PENDING, "code not installed", Reason.NOT_INSTALLED).outcome(),
    ]
    settled = settle(items)
    assert [(o.setting, o.status, o.reason) for o in settled] == [
        ("ide", Outcome.PENDING, Reason.NOT_INSTALLED),
        ("theme", Outcome.APPLIED, Reason.IN_EFFECT),
    ]
    assert settled[0].message == "1 present; code not installed"


def test_history_written_before_outcomes_had_reasons_still_reads() -> None:
    old = {"setting": "x", "status": "error", "message": "boom"}
    assert from_stored(old) == SettingOutcome(
        setting="x", status=Outcome.FAILED, reason=Reason.ERROR, message="boom"
    )
    assert from_stored({"setting": "y", "status": "pending", "message": ""}).reason is (
        Reason.NEEDS_CONFIGURATION
    )
