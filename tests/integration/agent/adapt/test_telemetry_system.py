"""Telemetry of the machine itself: probes on loopback, processes, connections, and the
rule that a domain the persona does not grant is never read."""

from __future__ import annotations

import contextlib
import http.server
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mien.agent.adapt.telemetry import Telemetry
from mien.spec.metrics import domain_of
from mien.spec.models import Persona

ALL = [
    "metrics",
    "system_logs",
    "network_traffic",
    "api_calls",
    "processes",
    "file_access",
    "auth_events",
]

_recording: list[list[str]] = []  # the list being filled, while inside `opens()`


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _recording and event == "open" and args and isinstance(args[0], str | bytes):
        _recording[-1].append(str(args[0]))


sys.addaudithook(_audit)  # audit hooks cannot be removed; it records only inside `opens()`


@contextlib.contextmanager
def opens() -> Iterator[list[str]]:
    seen: list[str] = []
    _recording.append(seen)
    try:
        yield seen
    finally:
        _recording.remove(seen)


@contextlib.contextmanager
def tcp_server(port: int = 0) -> Iterator[tuple[socket.socket, list[socket.socket]]]:
    """A listening socket on loopback that accepts in a thread and counts connections."""
    srv = socket.create_server(("127.0.0.1", port))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def loop() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(srv.accept()[0])

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield srv, accepted
    finally:
        stop.set()
        thread.join()
        for s in accepted:
            s.close()
        srv.close()


def everything(root: Path, port: int) -> dict[str, Any]:
    for name in ("var/log/auth.log", "var/log/kern.log", "var/log/app.log", "var/log/access.log"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("error\n")
    (root / "srv/watched").mkdir(parents=True)
    (root / "var/lib/findings.txt").parent.mkdir(parents=True)
    (root / "var/lib/findings.txt").write_text("CVE-1\n")
    return {
        "logs": [{"name": "app", "path": "/var/log/app.log"}],
        "access_log": {"path": "/var/log/access.log"},
        "probes": [{"name": "loop", "tcp": f"127.0.0.1:{port}"}],
        "processes": ["sleep"],
        "watch": [{"name": "w", "path": "/srv/watched"}],
        "scan_findings": "/var/lib/findings.txt",
    }


def test_a_domain_not_granted_is_never_read(tmp_path: Path) -> None:
    with tcp_server() as (srv, accepted):
        telemetry = everything(tmp_path, srv.getsockname()[1])
        only = Persona.model_validate({"learning_domains": ["processes"], "telemetry": telemetry})
        t = Telemetry(only, tmp_path)
        with opens() as seen:
            for i in range(3):
                r = t.sample(float(i))
        assert t.domains == ["processes"]
        assert {domain_of(m) for m in r.metrics} == {"processes"}
        assert not [
            p for p in seen if "auth" in p or "kern" in p or ".log" in p or "/proc/net" in p
        ]
        assert not [p for p in seen if "findings" in p or "loadavg" in p or "meminfo" in p]
        time.sleep(0.3)
        assert accepted == []  # no probe was made

        # The same watch sees all of it once every domain is granted (the test can fail).
        full = Persona.model_validate({"learning_domains": ALL, "telemetry": telemetry})
        t = Telemetry(full, tmp_path)
        with opens() as seen:
            r = t.sample(0.0)
            r = t.sample(1.0)
        t.close()
        for name in ("auth.log", "kern.log", "app.log", "access.log", "findings.txt", "/proc/net/"):
            assert any(name in p for p in seen), name
        assert {domain_of(m) for m in r.metrics} >= {"metrics", "processes", "network_traffic"}
        assert r.metrics["latency_ms:loop"] >= 0
        assert accepted


def test_latency_probes_on_loopback(tmp_path: Path) -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(0.05)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    http_srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=http_srv.serve_forever, daemon=True).start()
    closed = socket.create_server(("127.0.0.1", 0))
    dead_port = closed.getsockname()[1]
    closed.close()
    try:
        with tcp_server() as (srv, _accepted):
            port = srv.getsockname()[1]
            p = Persona.model_validate(
                {
                    "learning_domains": ["metrics"],
                    "telemetry": {
                        "probes": [
                            {"name": "tcp", "tcp": f"127.0.0.1:{port}"},
                            {"name": "web", "http": f"http://127.0.0.1:{http_srv.server_port}/"},
                            {"name": "dead", "tcp": f"127.0.0.1:{dead_port}", "timeout": "1s"},
                        ]
                    },
                }
            )
            t = Telemetry(p, tmp_path)
            r = t.sample(0.0)
            t.close()
            assert 0 <= r.metrics["latency_ms:tcp"] < 1000
            assert 50 <= r.metrics["latency_ms:web"] < 2000
            assert "latency_ms:dead" not in r.metrics
            assert r.events == {"probe_failed:dead": 1}
            assert "probe dead" in r.errors["metrics"] and "refused" in r.errors["metrics"]
            assert "cpu_percent" not in r.metrics and "net_rx_bps" not in r.metrics
            r = t.sample(1.0)
            assert 0 <= r.metrics["cpu_percent"] <= 100 and "net_rx_bps" in r.metrics
            assert r.metrics["disk_percent:/"] > 0
    finally:
        http_srv.shutdown()
        http_srv.server_close()


def test_processes_and_connections(tmp_path: Path) -> None:
    port = next(p for p in range(23456, 23556) if _free(p))
    sleeper = subprocess.Popen(["sleep", "30"])
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        with tcp_server(port) as (_, _accepted):
            client = socket.create_connection(("127.0.0.1", port))
            p = Persona.model_validate(
                {
                    "learning_domains": ["processes", "network_traffic"],
                    "telemetry": {"processes": ["sleep", "no-such-daemon"]},
                }
            )
            t = Telemetry(p, tmp_path)
            first = t.sample(time.monotonic())
            time.sleep(1.0)
            r = t.sample(time.monotonic())
            client.close()
    finally:
        sleeper.kill()
        busy.kill()
        sleeper.wait()
        busy.wait()
    assert "top_cpu_percent" not in first.metrics
    assert r.metrics["process_up:sleep"] == 1.0
    assert r.metrics["process_up:no-such-daemon"] == 0.0
    assert r.metrics["process_count"] >= 3
    assert r.metrics["top_cpu_percent"] > 10  # the busy loop (the machine is shared)
    assert r.metrics[f"connections:{port}"] >= 1
    assert r.metrics["connections_total"] >= 2
    assert r.metrics["iface_rx_bps:lo"] >= 0
    assert not any(
        k.startswith("connections:") and int(k.split(":")[1]) >= 32768 for k in r.metrics
    )


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.parametrize("domain", ALL)
def test_each_domain_alone_gives_only_its_metrics(tmp_path: Path, domain: str) -> None:
    with tcp_server() as (srv, _):
        telemetry = everything(tmp_path, srv.getsockname()[1])
        t = Telemetry(
            Persona.model_validate({"learning_domains": [domain], "telemetry": telemetry}), tmp_path
        )
        t.sample(0.0)
        r = t.sample(1.0)
        t.close()
    assert {domain_of(m) for m in r.metrics} <= {domain}
    assert r.errors == {}


def test_the_machine_size_is_sampled(tmp_path: Path) -> None:
    """cpu_count and memory_total_mib: what the server compares with a persona's
    resource_requirements to ask a provider for a resize."""
    import os

    import psutil

    t = Telemetry(Persona.model_validate({"learning_domains": ["metrics"]}), tmp_path)
    r = t.sample(0.0)
    t.close()
    assert r.metrics["cpu_count"] == len(os.sched_getaffinity(0))
    assert r.metrics["memory_total_mib"] == psutil.virtual_memory().total / 2**20
