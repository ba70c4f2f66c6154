"""Telemetry over real files under a temporary root: log tails (appends, partial lines,
rotation, truncation, the cap), links and FIFOs refused, and the file-based domains."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mien.agent.adapt.files import LogTail
from mien.agent.adapt.telemetry import Telemetry
from mien.agent.safepath import UnsafePath
from mien.spec.models import Persona

LOG = "/var/log/app.log"


def write(root: Path, path: str, text: str, mode: str = "a") -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open(mode) as fh:
        fh.write(text)


def is_error(line: str) -> bool:
    return "error" in line


def test_tail_counts_only_what_was_appended(tmp_path: Path) -> None:
    write(tmp_path, LOG, "error: old history\n" * 5)
    tail = LogTail(tmp_path, LOG)
    assert tail.count(is_error) is None  # the first call notes the end
    assert tail.count(is_error) == 0
    write(tmp_path, LOG, "error one\nfine\nerror two\n")
    assert tail.count(is_error) == 2
    write(tmp_path, LOG, "error half")  # still being written
    assert tail.count(is_error) == 0
    write(tmp_path, LOG, " done\n")
    assert tail.count(is_error) == 1


def test_tail_after_rotation_and_truncation(tmp_path: Path) -> None:
    write(tmp_path, LOG, "start\n")
    tail = LogTail(tmp_path, LOG)
    tail.count(is_error)
    write(tmp_path, LOG, "x" * 100 + "\n")
    assert tail.count(is_error) == 0
    os.rename(tmp_path / "var/log/app.log", tmp_path / "var/log/app.log.1")
    write(tmp_path, LOG, "error in the new file\n")  # smaller than the old offset
    assert tail.count(is_error) == 1
    write(tmp_path, LOG, "error again\n" * 20)
    assert tail.count(is_error) == 20
    write(tmp_path, LOG, "error after truncation\n", mode="w")  # same inode, shorter
    assert tail.count(is_error) == 1
    os.unlink(tmp_path / "var/log/app.log")
    with pytest.raises(FileNotFoundError):
        tail.count(is_error)
    write(tmp_path, LOG, "error once it is back\n")
    assert tail.count(is_error) == 1


def test_tail_reads_at_most_its_cap_and_scales(tmp_path: Path) -> None:
    write(tmp_path, LOG, "")
    tail = LogTail(tmp_path, LOG, cap=4096)
    tail.count(is_error)
    line = "error " + "y" * 93 + "\n"  # 100 bytes
    write(tmp_path, LOG, line * 1000)  # 100 KB, 25x the cap
    n = tail.count(is_error)
    assert n is not None and 900 <= n <= 1100
    assert tail.count(is_error) == 0  # it moved to the end


def test_links_and_fifos_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("error: the secret\n")
    (tmp_path / "var/log").mkdir(parents=True)
    os.symlink(secret, tmp_path / "var/log/app.log")
    with pytest.raises(UnsafePath, match="symbolic link"):
        LogTail(tmp_path, LOG).count(is_error)
    os.symlink(tmp_path / "var/log", tmp_path / "logs")
    with pytest.raises(UnsafePath):
        LogTail(tmp_path, "/logs/app.log").count(is_error)
    os.mkfifo(tmp_path / "var/log/fifo.log")
    with pytest.raises(UnsafePath, match="not a regular file"):
        LogTail(tmp_path, "/var/log/fifo.log").count(is_error)  # and does not block


def persona(domains: list[str], **telemetry: object) -> Persona:
    return Persona.model_validate({"learning_domains": domains, "telemetry": telemetry})


def test_system_logs_per_minute_and_a_missing_log(tmp_path: Path) -> None:
    write(tmp_path, LOG, "")
    p = persona(
        ["system_logs"],
        logs=[
            {"name": "app", "path": LOG},
            {"name": "db", "path": "/var/log/db.log", "pattern": "^FATAL"},
        ],
    )
    t = Telemetry(p, tmp_path)
    first = t.sample(1000.0)
    assert first.metrics == {} and "db.log: not found" in first.errors["system_logs"]
    write(tmp_path, LOG, "ERROR a\nCritical b\nok\nfailed c\n")
    second = t.sample(1030.0)  # 3 lines in 30 s
    assert second.metrics == {"log_errors_per_min:app": pytest.approx(6.0)}
    assert second.events == {"log_errors:app": 3}
    write(tmp_path, "/var/log/db.log", "FATAL x\nnot FATAL\n")
    third = t.sample(1090.0)
    assert third.metrics["log_errors_per_min:db"] == pytest.approx(1.0)
    assert third.metrics["log_errors_per_min:app"] == 0.0
    assert "system_logs" not in third.errors


def test_api_calls_from_a_combined_access_log(tmp_path: Path) -> None:
    path = "/var/log/nginx/access.log"
    write(tmp_path, path, "")
    t = Telemetry(persona(["api_calls"], access_log={"path": path}), tmp_path)
    t.sample(0.0)
    base = '1.2.3.4 - - [02/Dec/2026:03:00:00 +0000] "GET / HTTP/1.1" {status} 10 "-" "ua" {t}\n'
    lines = [base.format(status=200, t=f"{(i + 1) / 1000:.3f}") for i in range(95)]
    lines += [base.format(status=502, t="1.000") for _ in range(5)]
    write(tmp_path, path, "".join(lines) + "not a request line\n")
    r = t.sample(10.0)
    assert r.metrics["api_rps"] == pytest.approx(10.0)
    assert r.metrics["api_error_rate"] == pytest.approx(5.0)  # percent
    assert r.metrics["api_latency_p50_ms"] == pytest.approx(50.0)
    assert r.metrics["api_latency_p95_ms"] == pytest.approx(95.0)
    assert r.metrics["api_latency_p99_ms"] == pytest.approx(1000.0)
    assert r.events == {"api_requests": 100, "api_errors": 5}
    quiet = t.sample(20.0)
    assert quiet.metrics == {"api_rps": 0.0}  # no requests: no error rate, no latency


def test_api_calls_from_json_lines(tmp_path: Path) -> None:
    path = "/srv/api/requests.jsonl"
    write(tmp_path, path, "")
    t = Telemetry(persona(["api_calls"], access_log={"path": path, "format": "jsonl"}), tmp_path)
    t.sample(0.0)
    rows = [{"status": 200, "duration_ms": 10}, {"status": 500, "duration_ms": 30}]
    write(tmp_path, path, "".join(json.dumps(r) + "\n" for r in rows))
    r = t.sample(2.0)
    assert r.metrics["api_rps"] == 1.0 and r.metrics["api_error_rate"] == 50.0
    assert r.metrics["api_latency_p99_ms"] == 30.0


def test_auth_events_firewall_and_findings(tmp_path: Path) -> None:
    auth, kern, findings = "/var/log/auth.log", "/var/log/kern.log", "/var/lib/scan/findings.json"
    write(tmp_path, auth, "")
    write(tmp_path, kern, "")
    p = persona(["auth_events"], scan_findings=findings)
    t = Telemetry(p, tmp_path)
    first = t.sample(0.0)
    assert first.metrics == {} and first.errors == {}  # no findings file yet: unknown
    write(
        tmp_path,
        auth,
        "Dec  2 03:00:00 h sshd[1]: Failed password for root from 10.0.0.9 port 2 ssh2\n" * 4
        + "Dec  2 03:00:01 h sshd[1]: Accepted publickey for alice from 10.0.0.2 port 3\n"
        + "Dec  2 03:00:02 h CRON[2]: pam_unix(cron:session): session opened for user root\n",
    )
    write(tmp_path, kern, "kernel: mien-block: IN=eth0 SRC=10.0.0.9\nkernel: eth0 up\n")
    write(tmp_path, findings, json.dumps({"findings": [{"id": 1}, {"id": 2}]}))
    r = t.sample(120.0)
    assert r.metrics == {
        "auth_failures_per_min": 2.0,
        "auth_successes_per_min": 0.5,
        "firewall_blocks_per_min": 0.5,
        "scan_findings": 2,
    }
    assert r.events == {"auth_failures": 4, "auth_successes": 1, "firewall_blocks": 1}


def test_file_access_with_inotify_and_the_stat_scan(tmp_path: Path) -> None:
    from mien.agent.adapt.watch import Watcher

    (tmp_path / "etc/app").mkdir(parents=True)
    (tmp_path / "etc/app/a.conf").write_text("1")
    for use_inotify in (True, False):
        w = Watcher(tmp_path, {"conf": "/etc/app", "gone": "/etc/missing"}, use_inotify)
        assert w.inotify is use_inotify
        assert w.drain() == {}  # the first call starts watching
        assert w.drain() == {"conf": 0}
        (tmp_path / "etc/app/b.conf").write_text("new")
        with (tmp_path / "etc/app/a.conf").open("a") as fh:
            for _ in range(50):
                fh.write("x")
                fh.flush()
        changed = w.drain()["conf"]
        assert changed >= 2 if use_inotify else changed == 2
        assert w.drain() == {"conf": 0}
        w.close()
        (tmp_path / "etc/app/b.conf").unlink()


def test_a_watched_path_through_a_link_is_refused(tmp_path: Path) -> None:
    from mien.agent.adapt.watch import Watcher

    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "planted")
    w = Watcher(tmp_path, {"x": "/planted"})
    assert w.drain() == {}
    assert "symbolic link" in w.errors["x"]
    w.close()


def test_file_access_rates_through_telemetry(tmp_path: Path) -> None:
    (tmp_path / "srv/data").mkdir(parents=True)
    t = Telemetry(persona(["file_access"], watch=[{"name": "data", "path": "/srv/data"}]), tmp_path)
    t.sample(0.0)
    t.sample(30.0)
    for i in range(3):
        (tmp_path / f"srv/data/f{i}").write_text("x")
    r = t.sample(60.0)
    # each file: created, modified, closed after writing
    assert r.events["file_changes:data"] == 9
    assert r.metrics["file_changes_per_min:data"] == pytest.approx(18.0)
    t.close()


def test_a_failing_collector_is_an_error_not_an_exception(tmp_path: Path) -> None:
    (tmp_path / "var/log/app.log").mkdir(parents=True)  # a directory where the log should be
    (tmp_path / "var/log/access.log").write_text("")
    p = persona(
        ["system_logs", "api_calls", "auth_events"],
        logs=[{"name": "app", "path": LOG}],
        access_log={"path": "/var/log/access.log"},
        auth_log="/var/log/access.log/not-a-dir/auth.log",
    )
    t = Telemetry(p, tmp_path)
    for now in (0.0, 60.0):
        r = t.sample(now)
        assert "not a regular file" in r.errors["system_logs"]
        assert "auth.log" in r.errors["auth_events"]
        assert "api_calls" not in r.errors
    assert r.metrics == {"api_rps": 0.0}
