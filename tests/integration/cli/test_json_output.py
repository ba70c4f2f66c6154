"""``--output json`` on the commands that change something, and errors as one JSON object
on stderr (``code``, ``message``, ``details``) with the usual exit status."""

from __future__ import annotations

import json
from pathlib import Path

from server_harness import ServerProcess

from tests.support import EXAMPLES, install_zsh, make_machine, run_mien


def json_error(run: object) -> dict[str, object]:
    stderr = run.stderr  # type: ignore[attr-defined]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    error = json.loads(lines[0])
    assert set(error) == {"code", "message", "details"}, error
    assert error["details"]["exit_status"] == run.returncode  # type: ignore[attr-defined,index]
    return error


def test_local_changes_print_json_and_errors_are_json(tmp_path: Path) -> None:
    root = install_zsh(make_machine(tmp_path / "root"))
    developer = EXAMPLES / "persona_developer.yml"
    run = run_mien("apply", developer, "--root", root, "--user", "alice", "--yes")
    assert run.returncode == 0, run.stderr
    custom = run_mien("customize", "set", "os_settings.theme", "light", "--root", root, "-o")
    assert custom.returncode == 2  # -o is --overlay here: it needs a value
    custom = run_mien(
        "customize", "set", "os_settings.theme", "light", "--root", root, "--output", "json"
    )
    assert custom.returncode == 0, custom.stderr
    data = json.loads(custom.stdout)
    assert data["key"] == "os_settings.theme" and data["applied"]["history"] == 2
    unset = run_mien("customize", "unset", "os_settings.theme", "--root", root, "--output=json")
    assert json.loads(unset.stdout)["removed"] is True
    back = run_mien("rollback", "--root", root, "--to", "1", "--yes", "--output", "json")
    assert back.returncode == 0, back.stderr
    assert json.loads(back.stdout)["history"] == 4

    missing = run_mien("rollback", "--root", root, "--to", "99", "--yes", "--output", "json")
    assert missing.returncode == 1 and missing.stdout == ""
    error = json_error(missing)
    assert error["code"] == "failed" and "99" in str(error["message"])

    usage = run_mien("apply", "--root", root, "--output", "json")
    assert usage.returncode == 2
    assert json_error(usage)["code"] == "usage"
    unknown = run_mien("history", "--root", root, "--bogus", "--output", "json")
    assert json_error(unknown)["message"] == "No such option: --bogus"
    not_a_dir = run_mien("status", "--root", tmp_path / "nowhere", "--output", "json")
    assert "not a directory" in str(json_error(not_a_dir)["message"])
    # Without --output json, errors stay one line for people.
    plain = run_mien("rollback", "--root", root, "--to", "99", "--yes")
    assert plain.stderr.startswith("mien: ") and not plain.stderr.startswith("{")


def test_fleet_changes_print_json_and_refusals_are_json(server: ServerProcess) -> None:
    env = {"MIEN_SERVER": server.url, "MIEN_TOKEN": server.admin_token}
    made = run_mien("token", "create", "--role", "viewer", "--name", "j1", "-o", "json", env=env)
    token_id = json.loads(made.stdout)["id"]
    revoked = run_mien("token", "revoke", "j1", "--output", "json", env=env)
    assert json.loads(revoked.stdout) == {"revoked": token_id}

    gone = run_mien("bind", "rm", "no-such-binding", "--output", "json", env=env)
    assert gone.returncode == 1
    error = json_error(gone)
    assert error["details"]["http_status"] == 404  # type: ignore[index]
    assert error["details"]["server"] == server.url  # type: ignore[index]
    nobody = run_mien("persona", "delete", "nobody", "-o", "json", env=env)
    assert json_error(nobody)["details"]["http_status"] == 404  # type: ignore[index]

    bad = run_mien("instance", "delete", "x", "--output", "json", env={**env, "MIEN_TOKEN": "no"})
    assert bad.returncode == 1
    assert json_error(bad)["details"]["http_status"] == 401  # type: ignore[index]


def test_refused_documents_are_in_the_json_not_as_text(
    server: ServerProcess, tmp_path: Path
) -> None:
    env = {"MIEN_SERVER": server.url, "MIEN_TOKEN": server.admin_token}
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nos_settings: {theme: 5}\n")
    pushed = run_mien("persona", "push", bad, "--output", "json", env=env)
    assert pushed.returncode == 1
    [result] = json.loads(pushed.stdout)
    assert any("os_settings.theme" in line for line in result["problems"]), result
    assert json_error(pushed)["code"] == "failed"  # the only line on stderr
    checked = run_mien("validate", bad, "--output", "json")
    assert checked.returncode == 1 and checked.stderr == ""
    assert json.loads(checked.stdout)["summary"] == "1 problem in 1 file"


def test_config_set_prints_json(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / ".config")}
    run = run_mien("config", "set", "token", "mien_a_secretsecret", "--output", "json", env=env)
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["key"] == "token" and "secretsecret" not in run.stdout
    unset = run_mien("config", "unset", "server", "--output", "json", env=env)
    assert unset.returncode == 1
    assert "no server to remove" in str(json_error(unset)["message"])
