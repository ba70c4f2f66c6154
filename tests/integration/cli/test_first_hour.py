"""What a new user trips on in the first hour, through the real ``mien`` command: read-only
commands that create nothing, ``mien exec`` usage, completion scripts, help text, tables at
80 columns, the API page without internet access, and a server whose port is taken."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import httpx
import pytest
from server_harness import ServerProcess

from tests.support import install_zsh, make_machine, run_mien, snapshot

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "personas"


def test_read_only_commands_create_nothing_on_a_fresh_root(tmp_path: Path) -> None:
    root = install_zsh(make_machine(tmp_path / "root"))
    before = snapshot(root, include_state=True)
    plan = run_mien("plan", EXAMPLES / "persona_developer.yml", "--root", root, "--user", "alice")
    assert plan.returncode == 0, plan.stderr
    assert "create" in plan.stdout
    for args in (["status"], ["history"], ["customize", "list"]):
        run = run_mien(*args, "--root", root)
        assert run.returncode == 0, (args, run.stderr)
    assert snapshot(root, include_state=True) == before
    assert not (root / "var").exists()


def test_exec_without_a_command_says_so(tmp_path: Path) -> None:
    for args in (["exec"], ["exec", "--root", str(tmp_path)], ["exec", "--"]):
        run = run_mien(*args)
        assert run.returncode == 2, args
        assert run.stderr.startswith("mien: no command given"), run.stderr
        assert "Usage" not in run.stderr


def test_exec_rejects_an_unknown_option_instead_of_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    run = run_mien("exec", "--root", tmp_path, "--user", "dev", "--", "touch", marker)
    assert run.returncode == 2
    assert "No such option: --user" in run.stderr
    assert not marker.exists()
    # Options after the command still belong to the command.
    ok = run_mien("exec", "--root", tmp_path, "sh", "-c", f"touch {marker}")
    assert ok.returncode == 0, ok.stderr
    assert marker.exists()


@pytest.mark.parametrize(
    ("shell", "mark"),
    [("zsh", "#compdef mien"), ("fish", "complete --command mien"), ("bash", "complete -o")],
)
def test_show_completion_prints_the_script_of_the_shell_named(shell: str, mark: str) -> None:
    for args in (["--show-completion", shell], [f"--show-completion={shell}"]):
        run = run_mien(*args, env={"SHELL": "/bin/bash"})
        assert run.returncode == 0, run.stderr
        assert mark in run.stdout, run.stdout[:200]


def test_show_completion_refuses_an_unknown_shell() -> None:
    run = run_mien("--show-completion", "tcsh")
    assert run.returncode == 2
    assert "unknown shell 'tcsh'" in run.stderr


def test_help_shows_no_value_for_flags() -> None:
    run = run_mien("apply", "--help", env={"COLUMNS": "100"})
    assert run.returncode == 0
    assert "<bool>" not in run.stdout and "<str>" not in run.stdout
    options = [line.strip("│ ") for line in run.stdout.splitlines() if line.startswith("│ --")]
    yes = next(line for line in options if line.startswith("--yes"))
    assert "bool" not in yes.lower()
    root = next(line for line in options if line.startswith("--root"))
    assert "PATH" in root


def test_tables_at_80_columns_keep_every_key_whole(tmp_path: Path) -> None:
    root = install_zsh(make_machine(tmp_path / "root"))
    applied = run_mien(
        "apply", EXAMPLES / "persona_developer.yml", "--root", root, "--user", "alice", "--yes"
    )
    assert applied.returncode == 0, applied.stderr
    key = "application_configuration.vscode.values.editor.fontSize"
    assert run_mien("customize", "set", key, "14", "--root", root).returncode == 0
    narrow = {"COLUMNS": "80"}
    listing = run_mien("customize", "list", "--root", root, env=narrow)
    history = run_mien("history", "--root", root, env=narrow)
    for run in (listing, history):
        assert run.returncode == 0, run.stderr
        assert "…" not in run.stdout, run.stdout
        assert all(len(line) <= 80 for line in run.stdout.splitlines()), run.stdout
    assert key in listing.stdout
    # The time of each entry is whole, and the customized key can be read back in full.
    what = "".join(
        line.split("│")[2].strip() for line in history.stdout.splitlines() if "│" in line
    )
    assert f"customize{key}" in what, history.stdout
    assert history.stdout.count(":") >= 4


def test_api_docs_page_needs_no_internet(server: ServerProcess) -> None:
    page = httpx.get(f"{server.url}/api/v1/docs", timeout=10)
    assert page.status_code == 200
    assert "cdn" not in page.text.lower()
    assert "https://" not in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"):
        url = f"{server.url}/api/v1/docs/assets/{asset}"
        assert f"/api/v1/docs/assets/{asset}" in page.text
        got = httpx.get(url, timeout=10)
        assert got.status_code == 200 and len(got.content) > 500, asset
    assert httpx.get(f"{server.url}/api/v1/docs/assets/..%2Fdocs_ui.py").status_code == 404


def test_server_on_a_taken_port_says_so(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        run = run_mien(
            "server",
            "--data",
            tmp_path / "data",
            "--host",
            "127.0.0.1",
            "--port",
            port,
            timeout=60,
        )
    assert run.returncode == 1, run.stderr
    assert f"port {port} on 127.0.0.1 is in use" in run.stderr
    assert "serving" not in run.stderr


def test_audit_at_80_columns_shows_every_detail_whole(server: ServerProcess) -> None:
    env = {"MIEN_SERVER": server.url, "MIEN_TOKEN": server.admin_token}
    made = run_mien("token", "create", "--role", "viewer", "--name", "a-rather-long-name", env=env)
    assert made.returncode == 0, made.stderr
    records = json.loads(run_mien("audit", "--output", "json", env=env).stdout)
    ids = [r["detail"]["token_id"] for r in records if "token_id" in r.get("detail", {})]
    assert ids
    shown = run_mien("audit", env={**env, "COLUMNS": "80"})
    assert shown.returncode == 0, shown.stderr
    assert "…" not in shown.stdout
    flat = re.sub(r"[\s│┃]", "", shown.stdout)
    for token_id in ids:
        assert f"token_id={token_id}" in flat, shown.stdout
