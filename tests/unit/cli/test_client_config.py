"""Where the fleet commands find their server and token: the pure rules of
:mod:`mien.cli.fleet.config` (precedence, profiles, the token tied to its server, the
messages), without files or processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mien.cli.fleet import config
from mien.cli.fleet.config import ConfigError, collect, parse_config, resolve

PATH = Path("/home/alice/.config/mien/config.toml")
FILE = {"server": "https://prod:8470", "token": "mien_a_file_token_0001", "profiles": {}}
NO_FLAGS: dict[str, Any] = {}


@pytest.mark.parametrize(
    ("flags", "env", "data", "server", "token", "origins"),
    [
        (NO_FLAGS, {}, FILE, "https://prod:8470", "mien_a_file_token_0001", (str(PATH), str(PATH))),
        (
            NO_FLAGS,
            {"MIEN_TOKEN": "env-token"},
            FILE,
            "https://prod:8470",
            "env-token",
            (str(PATH), "MIEN_TOKEN"),
        ),
        (
            {"token": "flag-token"},
            {"MIEN_TOKEN": "env-token"},
            FILE,
            "https://prod:8470",
            "flag-token",
            (str(PATH), "--token"),
        ),
        (
            {"server": "https://x", "token": "t"},
            {"MIEN_SERVER": "https://y", "MIEN_TOKEN": "u"},
            FILE,
            "https://x",
            "t",
            ("--server", "--token"),
        ),
        (
            NO_FLAGS,
            {"MIEN_SERVER": "https://y", "MIEN_TOKEN": "u"},
            None,
            "https://y",
            "u",
            ("MIEN_SERVER", "MIEN_TOKEN"),
        ),
    ],
)
def test_flags_beat_environment_beat_file(
    flags: dict[str, Any],
    env: dict[str, str],
    data: dict[str, Any] | None,
    server: str,
    token: str,
    origins: tuple[str, str],
) -> None:
    conn = resolve(flags, env, data, PATH)
    assert (conn.server, conn.token) == (server, token)
    assert (conn.origin("server"), conn.origin("token")) == origins


def test_the_files_token_stays_with_the_files_server() -> None:
    with pytest.raises(ConfigError, match="is for another server than https://other"):
        resolve({"server": "https://other"}, {}, FILE, PATH)
    # The same server spelled differently is the same server.
    conn = resolve(
        {}, {"MIEN_SERVER": "prod:8470/api/v1/"}, {**FILE, "server": "http://PROD:8470"}, PATH
    )
    assert conn.token == "mien_a_file_token_0001"
    # ... and a token given explicitly goes where it is told.
    assert resolve({"server": "https://other"}, {"MIEN_TOKEN": "t"}, FILE, PATH).token == "t"


def test_ca_and_insecure_follow_the_files_server() -> None:
    data = {**FILE, "ca_cert": "/etc/mien/ca.pem", "insecure": False}
    assert resolve({}, {}, data, PATH).verify() == "/etc/mien/ca.pem"
    foreign = resolve({"server": "https://lab", "token": "t"}, {}, data, PATH)
    assert foreign.ca_cert is None and foreign.verify() is True
    env = resolve({}, {"MIEN_INSECURE": "yes"}, data, PATH)
    assert env.insecure and env.verify() is False
    with pytest.raises(ConfigError, match="MIEN_INSECURE='sometimes'"):
        resolve({}, {"MIEN_INSECURE": "sometimes"}, data, PATH)


def test_profiles() -> None:
    data = parse_config(
        'server = "https://prod"\ntoken = "prod-token"\n\n'
        '[profiles.staging]\nserver = "https://staging"\ntoken = "staging-token"\n\n'
        '[profiles.prod-readonly]\ntoken = "viewer-token"\n',
        str(PATH),
    )
    staging = resolve({}, {}, data, PATH, "staging")
    assert (staging.server, staging.token, staging.profile) == (
        "https://staging",
        "staging-token",
        "staging",
    )
    assert staging.origin("token") == f"{PATH} [profiles.staging]"
    # A profile without a server speaks to the top level's, with its own token.
    readonly = resolve({}, {"MIEN_PROFILE": "prod-readonly"}, data, PATH)
    assert (readonly.server, readonly.token) == ("https://prod", "viewer-token")
    with pytest.raises(ConfigError, match=r"profile 'dev', .*\(profiles: prod-readonly, staging\)"):
        resolve({}, {}, data, PATH, "dev")
    with pytest.raises(ConfigError, match=r"MIEN_PROFILE names profile 'x', but .* does not exist"):
        resolve({}, {"MIEN_PROFILE": "x"}, None, PATH)


def test_a_profile_does_not_lend_the_top_levels_token_to_its_server() -> None:
    data = parse_config(
        'server = "https://prod"\ntoken = "prod-token"\n[profiles.lab]\nserver = "https://lab"\n',
        str(PATH),
    )
    with pytest.raises(ConfigError, match="no token given"):
        resolve({}, {}, data, PATH, "lab")


def test_missing_settings_name_the_three_ways() -> None:
    with pytest.raises(ConfigError) as server:
        resolve({}, {}, None, PATH)
    text = str(server.value)
    assert "no server given" in text and "--server URL" in text and "MIEN_SERVER" in text
    assert f'server = "URL" in {PATH}' in text and "mien config set server URL" in text
    with pytest.raises(ConfigError) as token:
        resolve({}, {"MIEN_SERVER": "https://x"}, None, PATH)
    assert "--token TOKEN" in str(token.value) and "MIEN_TOKEN" in str(token.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("server = ", "not valid TOML"),
        ('sever = "x"', "sever: unknown setting"),
        ("token = 12", "token: must be a string"),
        ('insecure = "no"', "insecure: must be true or false"),
        ('profiles = "x"', "profiles: must be a table"),
        ("[profiles.a]\ncolour = 1", "profiles.a.colour: unknown setting"),
    ],
)
def test_bad_files_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_config(text, str(PATH))
    assert str(caught.value).startswith(f"{PATH}: ")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"MIEN_CONFIG": "/etc/mien/cli.toml"}, Path("/etc/mien/cli.toml")),
        ({"XDG_CONFIG_HOME": "/xdg"}, Path("/xdg/mien/config.toml")),
        ({"XDG_CONFIG_HOME": "relative/ignored"}, Path("/home/bob/.config/mien/config.toml")),
        ({}, Path("/home/bob/.config/mien/config.toml")),
    ],
)
def test_config_path(env: dict[str, str], expected: Path) -> None:
    assert config.config_path(env, home=Path("/home/bob")) == expected


def test_set_and_unset_keep_everything_else() -> None:
    data = {"server": "https://a", "profiles": {"lab": {"server": "https://lab"}}}
    updated = config.set_value(data, "insecure", "true", "lab")
    assert updated["profiles"]["lab"] == {"server": "https://lab", "insecure": True}
    assert data["profiles"] == {"lab": {"server": "https://lab"}}  # not modified in place
    top = config.set_value(updated, "token", "t")
    assert top["token"] == "t" and top["profiles"]["lab"]["insecure"] is True
    removed, found = config.unset_value(top, "insecure", "lab")
    assert found and removed["profiles"]["lab"] == {"server": "https://lab"}
    assert config.unset_value(top, "ca_cert") == (top, False)
    with pytest.raises(ConfigError, match="colour: unknown setting"):
        config.set_value(data, "colour", "blue")


def test_collect_reports_without_requiring() -> None:
    values, origins, profile = collect({}, {"MIEN_TOKEN": "t"}, None, PATH)
    assert values == {"token": "t"} and origins == {"token": "MIEN_TOKEN"} and profile is None


@pytest.mark.parametrize(
    ("token", "shown"),
    [
        (None, "(none)"),
        ("short", "****"),
        ("mien_a_QkeERg1aMlh8ZsR0ksxGGviYaaPs36wXotrJi3mTk", "mien_a_…3mTk"),
        ("some-other-long-secret-value", "…alue"),
    ],
)
def test_mask(token: str | None, shown: str) -> None:
    assert config.mask(token) == shown
