"""The no-op check keeps its own copy of what counts as a cron daemon (so it imports nothing
heavy); it must say the same as the schedules handler."""

from __future__ import annotations

from mien.agent import noop
from mien.agent.handlers import schedules


def test_cron_daemons_match_the_schedules_handler() -> None:
    assert noop.CRON_DAEMONS == schedules.CRON_DAEMONS


def test_the_key_depends_on_every_option() -> None:
    base = {"persona": "dev", "root": "/r", "user": "alice", "personas": ["/p"], "overlays": []}
    keys = {
        noop.invocation_key(**base),  # type: ignore[arg-type]
        noop.invocation_key(**{**base, "persona": "ops"}),  # type: ignore[arg-type]
        noop.invocation_key(**{**base, "root": "/s"}),  # type: ignore[arg-type]
        noop.invocation_key(**{**base, "user": None}),  # type: ignore[arg-type]
        noop.invocation_key(**{**base, "personas": ["/q"]}),  # type: ignore[arg-type]
        noop.invocation_key(**{**base, "overlays": ["/o"]}),  # type: ignore[arg-type]
    }
    assert len(keys) == 6
