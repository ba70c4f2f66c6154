"""Schedules, logging configuration and the settings store on a temp root."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from mien.agent.handlers.logging_config import PATH as LOGGING
from mien.agent.handlers.logging_config import LoggingHandler
from mien.agent.handlers.schedules import SchedulesHandler
from mien.agent.handlers.settings_store import PATH as SETTINGS
from mien.agent.handlers.settings_store import SettingsStoreHandler
from mien.spec.frequency import Frequency

from .conftest import install_program

UPDATE = "/etc/cron.d/mien-auto-update"
SCAN = "/etc/cron.d/mien-security-scan"


def test_cron_files(driver) -> None:  # type: ignore[no-untyped-def]
    install_program(driver.root, "/usr/sbin/lynis", "#!/bin/sh\n")
    result = driver.apply(
        SchedulesHandler(),
        {
            "behavioral_settings": {
                "auto_update_frequency": "daily",
                "security_scan_frequency": "weekly",
            }
        },
        name="developer",
    )
    update = driver.path(UPDATE)
    assert update.stat().st_mode & 0o777 == 0o644
    schedule = Frequency.parse("daily").to_cron(
        "developer.behavioral_settings.auto_update_frequency"
    )
    lines = update.read_text().splitlines()
    assert lines[1:3] == [
        "SHELL=/bin/sh",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ]
    assert lines[3].startswith(f"{schedule} root ")
    assert "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -y -qq upgrade" in lines[3]
    assert "lynis audit system --cronjob" in driver.path(SCAN).read_text()
    assert ">>/var/log/mien/security-scan.log 2>&1" in driver.path(SCAN).read_text()
    pending = [n for n in result.notes if n.status == "pending"]
    assert {n.setting for n in pending} == {
        "behavioral_settings.auto_update_frequency",
        "behavioral_settings.security_scan_frequency",
    }
    assert "fire when this root is the running system" in pending[0].message
    # The job line really runs under sh and logs (with the root's / as /).
    command = lines[3].split(" root ", 1)[1].replace("/var/log/mien", str(driver.root / "log"))
    command = command.replace(
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -y -qq upgrade",
        "echo updated",
    )
    subprocess.run(["sh", "-c", command], check=True)
    assert (driver.root / "log/auto-update.log").read_text().splitlines()[1] == "updated"
    # No frequency any more: the job goes.
    driver.apply(SchedulesHandler(), {"behavioral_settings": {"security_scan_frequency": "weekly"}})
    assert not update.exists()


def test_configured_command_and_captured_edits(driver) -> None:  # type: ignore[no-untyped-def]
    persona = {
        "behavioral_settings": {
            "auto_update_frequency": "every 6h",
            "auto_update_command": "my-update --all",
        }
    }
    driver.apply(SchedulesHandler(), persona)
    update = driver.path(UPDATE)
    assert "my-update --all;" in update.read_text()
    text = update.read_text().splitlines()
    job = text[3].split()
    text[3] = " ".join(["30", "2", "*", "*", "*", *job[5:]]).replace(
        "my-update --all", "my-update --security"
    )
    update.write_text("\n".join(text) + "\n")
    driver.apply(SchedulesHandler(), persona)
    assert sorted((c.key, c.value) for c in driver.captured) == [
        ("behavioral_settings.auto_update_command", "my-update --security"),
        ("behavioral_settings.auto_update_frequency", "30 2 * * *"),
    ]


def test_logging_document_configures_python(driver, tmp_path) -> None:  # type: ignore[no-untyped-def]
    driver.apply(LoggingHandler(), {"behavioral_settings": {"logging_level": "debug"}})
    path = driver.path(LOGGING)
    script = textwrap.dedent(
        f"""
        import logging, pathlib
        from mien.agent.handlers.logging_config import configure_from
        assert configure_from(pathlib.Path({str(path)!r}))
        logging.getLogger("mien.test").debug("seen at debug")
        print(logging.getLogger().level)
        assert not configure_from(pathlib.Path({str(tmp_path / "missing.json")!r}))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "10"
    assert "DEBUG mien.test: seen at debug" in out.stderr
    document = json.loads(path.read_text())
    document["root"]["level"] = "WARNING"
    path.write_text(json.dumps(document))
    driver.apply(LoggingHandler(), {"behavioral_settings": {"logging_level": "debug"}})
    assert [(c.key, c.value) for c in driver.captured] == [
        ("behavioral_settings.logging_level", "warning")
    ]


def test_unclaimed_settings_are_stored_not_applied(driver) -> None:  # type: ignore[no-untyped-def]
    persona = {
        "os_settings": {"theme": "dark", "font_size": 14},
        "application_settings": {"cdn_cache": True},
        "application_configuration": {
            "notes": {"values": {"a": 1}},
            "j": {"path": "/etc/j.json", "values": {}},
        },
        "resource_requirements": {"cpu": 2, "memory": "4GiB"},
        "decay_rate": 0.05,
        "learning_domains": ["metrics"],
        "restricted_commands": ["reboot"],
        "pre_activation_script": "true",
        "labels": {"team": "data"},
    }
    result = driver.apply(SettingsStoreHandler(), persona)
    stored = json.loads(driver.path(SETTINGS).read_text())
    assert stored["persona"] == "p"
    assert stored["settings"] == {
        "os_settings.font_size": 14,
        "application_settings.cdn_cache": True,
        "application_configuration.notes": {"values": {"a": 1}},
        "resource_requirements": {"cpu": 2, "memory": "4GiB"},
    }  # decay_rate and learning_domains are the adaptation handler's (pending on the agent)
    assert {n.setting for n in result.notes} == set(stored["settings"])
    assert {n.status for n in result.notes} == {"stored"}
