"""The audit log (filters, append-only, tamper detection online and offline), TLS, body
limits, health and metrics, and the offline admin-token recovery."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from server_harness import ServerProcess

from mien.client import Client, InvalidDocument

WEB = {"name": "web", "environment_variables": {"ROLE": "web"}}


def mien(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mien.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_audit_records_every_change_with_actor_and_time(
    admin: Client, server: ServerProcess
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    admin.create_persona(WEB)
    admin.update_persona("web", {**WEB, "description": "x"})
    operator = admin.create_token("ops-bot", role="operator").token
    with Client(server.url, operator) as ops:
        ops.create_binding("b", {"role": "web"}, "web")
        ops.delete_binding("b")
    records = list(admin.audit())
    actions = [r.action for r in records]
    assert actions[:2] == ["token.create", "persona.create"]  # the bootstrap token comes first
    assert {"persona.update", "binding.create", "binding.delete"} <= set(actions)
    by_ops = list(admin.audit(actor="ops-bot"))
    assert [r.action for r in by_ops] == ["binding.create", "binding.delete"]
    # A deleted binding is kept whole in the log.
    assert by_ops[1].detail["binding"]["selector"] == {"role": "web"}
    assert [r.action for r in admin.audit(persona="web", action="persona.")] == [
        "persona.create",
        "persona.update",
    ]
    assert list(admin.audit(since=datetime.now(UTC) + timedelta(hours=1))) == []
    assert len(list(admin.audit(since=before, page_size=2))) == len(records)
    assert all(datetime.fromisoformat(r.at) >= before for r in records)
    check = admin.audit_verify()
    assert check.ok and check.records == len(records) and check.head == records[-1].hash


def test_tampering_is_detected(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    with server.client() as admin:
        admin.create_persona(WEB)
        admin.update_persona("web", {**WEB, "description": "honest"})
    assert server.stop() == 0
    ok = mien("server", "audit-verify", "--data", str(server.data_dir))
    assert ok.returncode == 0 and "intact: 3 record(s)" in ok.stderr
    db = sqlite3.connect(server.data_dir / "mien.db")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE audit SET actor = 'someone-else' WHERE seq = 2")
    # Someone with the database file drops the guard and rewrites history.
    db.execute("DROP TRIGGER audit_no_update")
    db.execute(
        "UPDATE audit SET detail = replace(detail, '\"version\":2', '\"version\":9') WHERE seq = 3"
    )
    db.commit()
    db.close()
    broken = mien("server", "audit-verify", "--data", str(server.data_dir))
    assert broken.returncode == 1 and "record 3" in broken.stderr and "edited" in broken.stderr
    assert "Traceback" not in broken.stderr
    server = ServerProcess(tmp_path / "data").start()
    try:
        with server.client() as admin:
            result = admin.audit_verify()
            assert not result.ok and result.first_bad == 3 and result.records == 2
    finally:
        assert server.stop() == 0


def test_new_admin_token_offline(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    first = server.admin_token
    try:
        made = mien("server", "new-admin-token", "--data", str(server.data_dir), "--name", "again")
        assert made.returncode == 0, made.stderr
        second = made.stdout.strip()
        assert second != first and server.admin_token == second
        assert (server.data_dir / "admin.token").stat().st_mode & 0o777 == 0o600
        with Client(server.url, second) as admin, Client(server.url, first) as old:
            assert admin.whoami().name == "again" and old.whoami().name == "admin"
            assert any(r.actor.startswith("local:") for r in admin.audit(action="token."))
    finally:
        assert server.stop() == 0


def test_tls(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server = ServerProcess(tmp_path / "data", tls=(cert, key)).start()
    try:
        with Client(server.url, server.admin_token, verify=cert) as admin:
            assert admin.whoami().role == "admin"
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}/healthz")  # not trusted without the CA
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{server.port}/healthz")
    finally:
        assert server.stop() == 0
    bad = mien(
        "server",
        "--data",
        str(tmp_path / "x"),
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(tmp_path / "missing.pem"),
    )
    assert bad.returncode == 2 and "missing.pem" in bad.stderr and "Traceback" not in bad.stderr


def test_body_limit_health_and_metrics(admin: Client, server: ServerProcess) -> None:
    huge = b"name: big\ndescription: '" + b"x" * (5 * 1024 * 1024) + b"'\n"
    r = httpx.post(
        f"{server.url}/api/v1/personas",
        content=huge,
        headers={"Authorization": f"Bearer {server.admin_token}"},
    )
    assert r.status_code == 413 and r.json()["code"] == "too_large"

    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(6):
            yield b"x" * (1024 * 1024)

    r = httpx.post(
        f"{server.url}/api/v1/personas",
        content=chunks(),
        headers={"Authorization": f"Bearer {server.admin_token}"},
    )
    assert r.status_code == 413
    with pytest.raises(InvalidDocument, match="empty"):
        admin.create_persona(b"  \n")
    health = admin.health()
    assert health.status == "ok" and health.database in ("sqlite", "postgresql")
    admin.create_persona(WEB)
    metrics = httpx.get(f"{server.url}/metrics").text
    for name in (
        "mien_agents_connected",
        'mien_activations{status="pending"}',
        "mien_http_request_duration_seconds_bucket",
        'route="/api/v1/personas"',
        "mien_instances",
    ):
        assert name in metrics, name


def test_bad_database_url_is_one_clear_message(tmp_path: Path) -> None:
    result = mien(
        "server", "--data", str(tmp_path), "--db", "postgresql+asyncpg://nobody@127.0.0.1:1/none"
    )
    assert result.returncode == 1 and "cannot open the database" in result.stderr
    assert "Traceback" not in result.stderr
    result = mien("server", "--data", str(tmp_path), "--db", "mysql://x")
    assert result.returncode == 1 and "Traceback" not in result.stderr
