"""Where the fleet commands find their server and token, as a process: flags over the
environment over the config file, profiles, ``mien config``, and every way of getting it
wrong (a clear message, exit 2 for configuration, 1 for an unreachable or refusing
server, never a traceback)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cli_harness import Cli
from server_harness import ServerProcess, free_port

NO_ENV = {"MIEN_SERVER": "", "MIEN_TOKEN": ""}


def config_file(cli: Cli, text: str) -> Path:
    path = cli.config_dir / "mien" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
    return path


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def test_flags_beat_environment_beat_file(cli: Cli, server: ServerProcess) -> None:
    admin = server.admin_token
    config_file(cli, f'server = "{server.url}"\ntoken = "{admin}"\n')
    from_file = cli("persona", "list", token=None, env=NO_ENV)
    assert from_file.returncode == 0, from_file.out

    env_token = cli(
        "persona", "list", token="mien_a_bogus_but_long_enough", env={"MIEN_SERVER": ""}
    )
    assert env_token.returncode == 1
    assert f"the server at {server.url} refused the token from MIEN_TOKEN" in env_token.stderr

    flag_token = cli("persona", "list", "--token", admin, token="mien_a_bogus_but_long_enough")
    assert flag_token.returncode == 0, flag_token.out

    dead = dead_url()
    flag_server = cli("persona", "list", "--server", dead)
    assert flag_server.returncode == 1
    assert f"cannot reach the mien server at {dead} (from --server)" in flag_server.stderr

    env_server = cli("persona", "list", env={"MIEN_SERVER": dead})
    assert f"at {dead} (from MIEN_SERVER)" in env_server.stderr


def test_the_files_token_is_not_sent_to_another_server(cli: Cli, server: ServerProcess) -> None:
    dead = dead_url()
    config_file(cli, f'server = "{dead}"\ntoken = "{server.admin_token}"\n')
    result = cli("persona", "list", token=None, env={"MIEN_SERVER": server.url})
    assert result.returncode == 2
    assert "no token given" in result.stderr and "is for another server" in result.stderr
    # Another spelling of the same server is the same server.
    config_file(
        cli, f'server = "{server.url.removeprefix("http://")}/"\ntoken = "{server.admin_token}"\n'
    )
    same = cli("persona", "list", token=None, env={"MIEN_SERVER": server.url + "/api/v1"})
    assert same.returncode == 0, same.out


def test_missing_server_or_token_says_the_three_ways(cli: Cli, server: ServerProcess) -> None:
    path = cli.config_dir / "mien" / "config.toml"
    no_server = cli("instance", "list", token=None, env=NO_ENV)
    assert no_server.returncode == 2
    for part in ("no server given", "--server URL", "MIEN_SERVER", f'server = "URL" in {path}'):
        assert part in no_server.stderr
    no_token = cli("instance", "list", token=None)
    assert no_token.returncode == 2
    for part in ("no token given", "--token TOKEN", "MIEN_TOKEN", f'token = "TOKEN" in {path}'):
        assert part in no_token.stderr


def test_profiles(cli: Cli, server: ServerProcess) -> None:
    config_file(
        cli,
        f'server = "{dead_url()}"\n\n[profiles.lab]\nserver = "{server.url}"\n'
        f'token = "{server.admin_token}"\n',
    )
    assert cli("persona", "list", "--profile", "lab", token=None, env=NO_ENV).returncode == 0
    by_env = cli("persona", "list", token=None, env={**NO_ENV, "MIEN_PROFILE": "lab"})
    assert by_env.returncode == 0, by_env.out
    unknown = cli("persona", "list", "--profile", "prod", token=None, env=NO_ENV)
    assert unknown.returncode == 2
    assert "--profile names profile 'prod', which" in unknown.stderr and "(profiles: lab)" in (
        unknown.stderr
    )


def test_config_set_show_unset(cli: Cli, server: ServerProcess) -> None:
    admin = server.admin_token
    assert cli("config", "set", "server", server.url, env=NO_ENV).returncode == 0
    set_token = cli("config", "set", "token", admin, env=NO_ENV)
    assert set_token.returncode == 0 and admin not in set_token.out
    path = cli.config_dir / "mien" / "config.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == f'server = "{server.url}"\ntoken = "{admin}"\n'

    shown = cli("config", "show", "--check", token=None, env=NO_ENV)
    assert shown.returncode == 0, shown.out
    assert admin not in shown.out and admin[-4:] in shown.stdout
    assert f"{server.url}: token 'admin', role admin" in shown.stderr
    as_json = json.loads(cli("config", "show", "-o", "json", token=None, env=NO_ENV).stdout)
    assert as_json["settings"]["server"] == {"value": server.url, "from": str(path)}

    env_wins = json.loads(cli("config", "show", "-o", "json").stdout)
    assert env_wins["settings"]["token"]["from"] == "MIEN_TOKEN"

    assert cli("config", "set", "--profile", "lab", "insecure", "yes").returncode == 0
    assert "[profiles.lab]\ninsecure = true\n" in path.read_text()
    assert cli("config", "set", "insecure", "maybe").returncode == 2
    assert cli("config", "set", "colour", "blue").returncode == 2
    assert cli("config", "unset", "token").returncode == 0
    assert "token" not in path.read_text().split("[profiles")[0]
    assert cli("config", "unset", "token").returncode == 1


def test_broken_config_files(cli: Cli) -> None:
    path = config_file(cli, 'server = "http://x"\ntoken = \n')
    bad = cli("persona", "list", token=None, env=NO_ENV)
    assert bad.returncode == 2 and str(path) in bad.stderr and "line 2" in bad.stderr
    config_file(cli, 'server = "http://x"\ntokn = "abc"\n')
    typo = cli("persona", "list", token=None, env=NO_ENV)
    assert typo.returncode == 2 and "tokn: unknown setting" in typo.stderr
    config_file(cli, "insecure = 1\n")
    wrong = cli("persona", "list", token=None, env=NO_ENV)
    assert wrong.returncode == 2 and "insecure: must be true or false" in wrong.stderr
    path.unlink()
    bad_env = cli("persona", "list", env={"MIEN_INSECURE": "perhaps"})
    assert bad_env.returncode == 2 and "MIEN_INSECURE='perhaps'" in bad_env.stderr


def test_config_location_and_permissions(cli: Cli, server: ServerProcess, tmp_path: Path) -> None:
    elsewhere = tmp_path / "other.toml"
    elsewhere.write_text(f'server = "{server.url}"\ntoken = "{server.admin_token}"\n')
    elsewhere.chmod(0o644)
    result = cli("persona", "list", token=None, env={**NO_ENV, "MIEN_CONFIG": str(elsewhere)})
    assert result.returncode == 0
    assert f"{elsewhere} holds a token and others can read it: chmod 600" in result.stderr
    # Without XDG_CONFIG_HOME the file is ~/.config/mien/config.toml.
    home_config = cli.home / ".config" / "mien" / "config.toml"
    home_config.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(elsewhere, home_config)
    home_config.chmod(0o600)
    plain = cli("persona", "list", token=None, env={**NO_ENV, "XDG_CONFIG_HOME": ""})
    assert plain.returncode == 0 and "others can read" not in plain.stderr


def test_tls_needs_the_ca(cli: Cli, tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    tls = ServerProcess(tmp_path / "data", tls=(cert, key)).start()
    try:
        tls_cli = Cli(tls, tmp_path / "home")
        untrusted = tls_cli("persona", "list")
        assert untrusted.returncode == 1
        assert f"cannot reach the mien server at {tls.url}" in untrusted.stderr
        assert "--ca-cert FILE" in untrusted.stderr
        assert tls_cli("persona", "list", "--ca-cert", cert).returncode == 0
        assert tls_cli("persona", "list", env={"MIEN_CA_CERT": str(cert)}).returncode == 0
        assert tls_cli("persona", "list", "--insecure").returncode == 0
        missing = tls_cli("persona", "list", "--ca-cert", tmp_path / "nope.pem")
        assert missing.returncode == 2 and "nope.pem: no such file" in missing.stderr
        plain = tls_cli("persona", "list", env={"MIEN_SERVER": f"http://127.0.0.1:{tls.port}"})
        assert plain.returncode == 1 and "cannot reach" in plain.stderr
    finally:
        tls.stop()


def test_not_a_mien_server(cli: Cli, tmp_path: Path) -> None:
    """Something else answering on the port: said so, not a parse error."""
    port = free_port()
    web = subprocess.Popen(
        ["python3", "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )
    try:
        from server_harness import wait_until

        def up() -> bool:
            import socket

            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_until(up, what="http.server listening")
        result = cli("persona", "list", env={"MIEN_SERVER": f"http://127.0.0.1:{port}"})
        assert result.returncode == 1
        assert "HTTP 404" in result.stderr or "not found" in result.stderr.lower()
    finally:
        web.terminate()
        web.wait(10)
