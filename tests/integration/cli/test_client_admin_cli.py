"""``mien audit [verify]`` and ``mien token`` as processes against a real server: filters,
tamper detection on the real SQLite database, tokens made, used, refused and revoked."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cli_harness import Cli
from server_harness import ServerProcess

from mien.client import Client


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server of its own: these tests break its audit chain."""
    proc = ServerProcess(tmp_path / "data").start()
    yield proc
    proc.stop()


def test_audit_filters(cli: Cli, admin: Client, tmp_path: Path) -> None:
    (tmp_path / "aud.yaml").write_text("name: aud\nos_settings: {theme: dark}\n")
    assert cli("persona", "push", tmp_path / "aud.yaml").returncode == 0
    operator = admin.create_token("auditor-op", role="operator").token
    (tmp_path / "aud.yaml").write_text("name: aud\nos_settings: {theme: light}\n")
    assert cli("persona", "push", tmp_path / "aud.yaml", token=operator).returncode == 0

    records = json.loads(cli("audit", "--persona", "aud", "-o", "json").stdout)
    assert [(r["actor"], r["action"]) for r in records] == [
        ("admin", "persona.create"),
        ("auditor-op", "persona.update"),
    ]
    mine = json.loads(cli("audit", "--actor", "auditor-op", "-o", "json").stdout)
    assert [r["action"] for r in mine] == ["persona.update"]
    assert json.loads(cli("audit", "--action", "persona.upd", "--persona", "aud",
                          "-o", "json").stdout)[0]["detail"]["version"] == 2  # fmt: skip
    assert json.loads(cli("audit", "--since", "2999-01-01", "-o", "json").stdout) == []
    recent = json.loads(cli("audit", "--since", "10m", "--persona", "aud", "-o", "json").stdout)
    assert len(recent) == 2

    table = cli("audit", "--persona", "aud", "--limit", "1")
    assert table.returncode == 0 and "persona.update" in table.stdout
    assert "persona.create" not in table.stdout
    assert "showing the newest 1 of 2 matching records" in table.stderr

    bad = cli("audit", "--since", "yesterday-ish")
    assert bad.returncode == 2 and "--since 'yesterday-ish'" in bad.stderr
    backwards = cli("audit", "--since", "2026-01-02", "--until", "2026-01-01")
    assert backwards.returncode == 2


def test_audit_verify_detects_tampering(own_server: ServerProcess, tmp_path: Path) -> None:
    cli = Cli(own_server, tmp_path / "home")
    (tmp_path / "t.yaml").write_text("name: tamper\nos_settings: {theme: dark}\n")
    cli("persona", "push", tmp_path / "t.yaml")
    (tmp_path / "t.yaml").write_text("name: tamper\nos_settings: {theme: light}\n")
    cli("persona", "push", tmp_path / "t.yaml")

    intact = cli("audit", "verify")
    assert intact.returncode == 0 and "audit chain intact: 3 record(s), head " in intact.stderr
    # Connection options may come before the subcommand too.
    before = cli("audit", "--server", own_server.url, "verify", env={"MIEN_SERVER": ""})
    assert before.returncode == 0, before.out
    operator = Client(own_server.url, own_server.admin_token).create_token("op", role="operator")
    refused = cli("audit", "verify", token=operator.token)
    assert refused.returncode == 1 and "this needs 'admin'" in refused.stderr

    own_server.stop()
    db = sqlite3.connect(own_server.data_dir / "mien.db")
    db.execute("DROP TRIGGER audit_no_update")  # someone with the file rewrites history
    db.execute("UPDATE audit SET actor = 'nobody' WHERE seq = 2")
    db.commit()
    db.close()
    restarted = ServerProcess(own_server.data_dir).start()
    try:
        cli = Cli(restarted, tmp_path / "home")
        broken = cli("audit", "verify")
        assert broken.returncode == 1
        assert "audit chain BROKEN at record #2" in broken.stderr
        as_json = cli("audit", "verify", "-o", "json")
        assert as_json.returncode == 1 and json.loads(as_json.stdout)["first_bad"] == 2
    finally:
        restarted.stop()


def test_tokens_create_use_revoke(cli: Cli, tmp_path: Path) -> None:
    made = cli("token", "create", "--role", "viewer", "--name", "dash", "--expires", "1h")
    assert made.returncode == 0, made.out
    secret = made.stdout.strip()
    assert secret.startswith("mien_") and "\n" not in secret
    assert "viewer token 'dash'" in made.stderr and "shown this once" in made.stderr
    assert "expires" in made.stderr

    # The viewer reads, and is told which role a change needs.
    assert cli("persona", "list", token=secret).returncode == 0
    (tmp_path / "v.yaml").write_text("name: viewer-try\n")
    denied = cli("persona", "push", tmp_path / "v.yaml", token=secret)
    assert denied.returncode == 1
    assert "token 'dash' has role 'viewer'; this needs 'operator'" in denied.stderr

    listed = json.loads(cli("token", "list", "-o", "json").stdout)
    dash = next(t for t in listed if t["name"] == "dash")
    assert dash["role"] == "viewer" and dash["expires_at"] and "token" not in dash

    revoked = cli("token", "revoke", "dash")
    assert revoked.returncode == 0 and dash["id"] in revoked.stderr
    after = cli("persona", "list", token=secret)
    assert after.returncode == 1
    assert "refused the token from MIEN_TOKEN" in after.stderr
    again = cli("token", "revoke", dash["id"])
    assert again.returncode == 1 and "already revoked" in again.stderr
    assert cli("token", "revoke", "no-such-name").returncode == 1
    with_all = json.loads(cli("token", "list", "--all", "-o", "json").stdout)
    assert any(t["name"] == "dash" and t["revoked_at"] for t in with_all)


def test_enrollment_tokens(cli: Cli, admin: Client) -> None:
    made = cli("token", "create", "--role", "enroll", "--uses", "2", "--tag", "role=web",
               "-o", "json")  # fmt: skip
    assert made.returncode == 0
    info = json.loads(made.stdout)
    assert info["kind"] == "enroll" and info["uses_left"] == 2 and info["tags"] == {"role": "web"}
    from mien.client import AgentClient

    with AgentClient(admin.server) as api:
        enrolled = api.enroll(info["token"], instance_id="tok-vm", tags={"zone": "a"})
    assert enrolled.tags == {"role": "web", "zone": "a"}

    wrong = cli("token", "create", "--role", "operator", "--uses", "3")
    assert wrong.returncode == 2 and "enrollment tokens (--role enroll)" in wrong.stderr
    bad_role = cli("token", "create", "--role", "root")
    assert bad_role.returncode == 2 and "root" in bad_role.stderr
    bad_expiry = cli("token", "create", "--role", "viewer", "--expires", "forever")
    assert bad_expiry.returncode == 2 and "--expires 'forever'" in bad_expiry.stderr
    # A bare number once meant seconds: a token "for 90" expired before anyone used it.
    bare = cli("token", "create", "--role", "viewer", "--name", "bare", "--expires", "90")
    assert bare.returncode == 2, bare.out
    assert "--expires '90'" in bare.stderr and "90d" in bare.stderr
    assert "Traceback" not in bare.out
    names = [t["name"] for t in json.loads(cli("token", "list", "-o", "json").stdout)]
    assert "bare" not in names
    words = cli("token", "create", "--role", "viewer", "--name", "words", "--expires",
                "1 day and 12 hours", "-o", "json")  # fmt: skip
    assert words.returncode == 0, words.out
    made_at = datetime.fromisoformat(json.loads(words.stdout)["expires_at"])
    assert timedelta(hours=35) < made_at - datetime.now(UTC) <= timedelta(hours=36)
