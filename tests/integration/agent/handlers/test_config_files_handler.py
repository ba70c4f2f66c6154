"""The config_files handler on a temp root: merged files keep the user's keys, switches
put mien's keys back key by key, files mien created disappear when released, and user
edits become customizations."""

from __future__ import annotations

import json
import os
import tomllib

import pytest
import yaml

from mien.agent.engine import EngineError
from mien.agent.handlers.config_files import ConfigFilesHandler

JUPYTER = "/home/alice/.jupyter/jupyter_server_config.json"


def app(path: str, **fields):  # type: ignore[no-untyped-def]
    return {"application_configuration": {"jupyter": {"path": path, **fields}}}


def test_merge_into_the_users_file_and_release_on_switch(driver) -> None:  # type: ignore[no-untyped-def]
    handler = ConfigFilesHandler()
    host = driver.path(JUPYTER)
    host.parent.mkdir(parents=True)
    original = '{\n    "ServerApp": {"token": "secret"},\n    "mine": 1\n}\n'
    host.write_text(original)
    driver.apply(
        handler,
        app("{home}/.jupyter/jupyter_server_config.json", values={"ServerApp": {"port": 8888}}),
    )
    data = json.loads(host.read_text())
    assert data == {"ServerApp": {"token": "secret", "port": 8888}, "mine": 1}
    # Another persona without the app: mien's key goes, the user's stay.
    result = driver.apply(handler, {})
    spec = result.files[0]
    assert spec.meta.get("released") is True
    assert json.loads(host.read_text()) == {"ServerApp": {"token": "secret"}, "mine": 1}
    # The released file is held as it is from now on, whatever the user does to it.
    host.write_text('{"rewritten": true}\n')
    again = driver.apply(handler, {})
    assert again.files[0].desired is not None
    assert again.files[0].desired.content == b'{"rewritten": true}\n'


def test_file_mien_created_goes_away_with_the_persona(driver) -> None:  # type: ignore[no-untyped-def]
    handler = ConfigFilesHandler()
    driver.apply(handler, app("/etc/app/settings.yaml", values={"a": {"b": 1}, "c": [1, 2]}))
    host = driver.path("/etc/app/settings.yaml")
    text = host.read_text()
    assert text.startswith("# Managed by mien (persona p).")
    assert yaml.safe_load(text) == {"a": {"b": 1}, "c": [1, 2]}
    result = driver.apply(handler, {})
    assert [(f.path, f.desired) for f in result.files] == [("/etc/app/settings.yaml", None)]
    assert not host.exists()


def test_user_edits_of_managed_keys_become_customizations(driver) -> None:  # type: ignore[no-untyped-def]
    handler = ConfigFilesHandler()
    persona = app(JUPYTER, values={"ServerApp": {"port": 8888, "open_browser": False}})
    driver.apply(handler, persona)
    host = driver.path(JUPYTER)
    data = json.loads(host.read_text())
    data["ServerApp"]["port"] = 9999
    data["extra"] = "mine"  # not managed: kept, not captured
    host.write_text(json.dumps(data))
    driver.apply(handler, persona)
    assert [(c.key, c.value) for c in driver.captured] == [
        ("application_configuration.jupyter.values.ServerApp.port", 9999)
    ]
    assert json.loads(host.read_text())["extra"] == "mine"


def test_home_files_belong_to_the_user(driver) -> None:  # type: ignore[no-untyped-def]
    result = driver.apply(ConfigFilesHandler(), app("{home}/.config/x.toml", values={"a": 1}))
    desired = result.files[0].desired
    assert desired is not None and (desired.uid, desired.gid, desired.mode) == (1000, 1000, 0o644)
    if os.geteuid() == 0:
        assert driver.path("/home/alice/.config/x.toml").stat().st_uid == 1000
    assert tomllib.loads(driver.path("/home/alice/.config/x.toml").read_text()) == {"a": 1}


def test_mode_and_owner(driver) -> None:  # type: ignore[no-untyped-def]
    result = driver.plan(
        ConfigFilesHandler(),
        app("/etc/secret.env", values={"TOKEN": "x"}, mode="0600", owner="bob"),
    )
    desired = result.files[0].desired
    assert desired is not None and (desired.mode, desired.uid, desired.gid) == (0o600, 1001, 1001)
    with pytest.raises(EngineError, match=r"config_files: .*owner: there is no user 'carol'"):
        driver.plan(ConfigFilesHandler(), app("/etc/x.json", values={}, owner="carol"))


def test_ini_and_env_files_keep_comments(driver) -> None:  # type: ignore[no-untyped-def]
    ini = driver.path("/etc/tool.ini")
    ini.write_text("; site settings\n[core]\nname = box\n")
    env = driver.path("/etc/tool.env")
    env.write_text("# secrets live elsewhere\nMODE=prod\n")
    handler = ConfigFilesHandler()
    persona = {
        "application_configuration": {
            "tool": {"path": "/etc/tool.ini", "values": {"core": {"debug": True}}},
            "toolenv": {"path": "/etc/tool.env", "values": {"LEVEL": 3}},
        }
    }
    driver.apply(handler, persona)
    assert ini.read_text().endswith("; site settings\n[core]\nname = box\ndebug = true\n")
    assert env.read_text().endswith("# secrets live elsewhere\nMODE=prod\nLEVEL=3\n")
    ini.write_text(ini.read_text().replace("debug = true", "debug = false"))
    driver.apply(handler, {})
    assert [(c.key, c.value) for c in driver.captured] == [
        ("application_configuration.tool.values.core.debug", False)
    ]
    assert ini.read_text() == "; site settings\n[core]\nname = box\n"
    assert env.read_text() == "# secrets live elsewhere\nMODE=prod\n"


def test_text_files_are_whole_and_never_a_value(driver) -> None:  # type: ignore[no-untyped-def]
    handler = ConfigFilesHandler()
    persona = {"application_configuration": {"motd": {"path": "/etc/motd", "content": "Hello\n"}}}
    result = driver.apply(handler, persona)
    assert result.files[0].capture_as == "application_configuration.motd.content"
    driver.path("/etc/motd").write_text("Hello, edited\n")
    driver.apply(handler, persona)
    # Not a customization another persona's `motd` could carry into another file: the
    # engine keeps the edited file whole for its path and owner (test_customization_scope).
    assert driver.captured == []


def test_broken_file_and_conflicts_are_refused_clearly(driver) -> None:  # type: ignore[no-untyped-def]
    driver.path("/etc/app.json").write_text('{"a": 1,,}')  # a trailing comma is JSONC, two are not
    with pytest.raises(
        EngineError,
        match=r"config_files: /etc/app.json \(application_configuration.jupyter\): invalid JSON at line 1",
    ):
        driver.plan(ConfigFilesHandler(), app("/etc/app.json", values={"b": 1}))
    both = {
        "application_configuration": {
            "a": {"path": "/etc/same.json", "values": {}},
            "b": {"path": "/etc/same.json", "values": {}},
        }
    }
    with pytest.raises(EngineError, match=r"config_files: .*both write /etc/same\.json"):
        driver.plan(ConfigFilesHandler(), both)


def test_entries_without_path_are_not_files(driver) -> None:  # type: ignore[no-untyped-def]
    result = driver.plan(
        ConfigFilesHandler(), {"application_configuration": {"x": {"values": {"a": 1}}}}
    )
    assert result.files == []
