"""``behavioral_settings.logging_level`` sets the system's logging where the machine has
journald or rsyslog, is pending where it has neither, and sets ``mien agent run``'s own
level."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from mien.agent.handlers.logging_config import JOURNALD, RSYSLOG, LoggingHandler


def level(value: str) -> dict[str, object]:
    return {"behavioral_settings": {"logging_level": value}}


def notes(result) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(n.status, n.message) for n in result.notes]


def test_journald_keeps_the_level_and_above(driver) -> None:  # type: ignore[no-untyped-def]
    conf = driver.path("/etc/systemd/journald.conf")
    conf.parent.mkdir(parents=True)
    conf.write_text("[Journal]\n")
    result = driver.apply(LoggingHandler(), level("error"))
    dropin = driver.path(JOURNALD).read_text()
    assert "[Journal]\nMaxLevelStore=err\n" in dropin
    assert not driver.path(RSYSLOG).exists()
    assert [s for s, _ in notes(result)] == ["applied"]
    assert "journald" in notes(result)[0][1]
    driver.apply(LoggingHandler(), level("debug"))
    assert "MaxLevelStore=debug" in driver.path(JOURNALD).read_text()


def test_rsyslog_drops_what_is_below_the_level(driver) -> None:  # type: ignore[no-untyped-def]
    driver.path("/etc").mkdir(exist_ok=True)
    driver.path("/etc/rsyslog.conf").write_text("$IncludeConfig /etc/rsyslog.d/*.conf\n")
    result = driver.apply(LoggingHandler(), level("warning"))
    assert "if $syslogseverity > 4 then stop\n" in driver.path(RSYSLOG).read_text()
    assert not driver.path(JOURNALD).exists()
    assert "rsyslog" in notes(result)[0][1]


def test_neither_is_pending_and_writes_no_system_file(driver) -> None:  # type: ignore[no-untyped-def]
    result = driver.apply(LoggingHandler(), level("info"))
    assert [s for s, _ in notes(result)] == ["pending"]
    assert "no journald or rsyslog" in notes(result)[0][1]
    assert result.notes[0].reason == "not-installed"
    assert not driver.path(JOURNALD).exists() and not driver.path(RSYSLOG).exists()


def test_the_agent_logs_at_the_persona_level(driver, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from mien.cli.fleet.agent import _logger
        log = _logger(Path({str(driver.root)!r}))
        log.info("routine line")
        log.warning("warning line")
        """
    )

    def run() -> str:
        out = subprocess.run(
            [sys.executable, "-c", script], check=False, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        return out.stderr

    default = run()  # no persona level yet: info
    assert "routine line" in default and "warning line" in default
    driver.apply(LoggingHandler(), level("warning"))
    quiet = run()
    assert "routine line" not in quiet and "warning line" in quiet
