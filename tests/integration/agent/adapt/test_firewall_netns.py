"""``firewall_block`` for real: nftables inside a network namespace the test creates.

Two addresses live on the namespace's loopback with a TCP server listening on both; the
executor (run inside the namespace, as the agent would be) blocks one. A connection to the
blocked address fails, one to the other still succeeds; the set's elements carry their
timeout; reverting removes the table and the blocked address answers again."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import REPO, mien_command, run_mien

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)"),
    pytest.mark.skipif(
        shutil.which("nft") is None or shutil.which("ip") is None,
        reason="needs nft and ip (scripts/system-deps installs nftables)",
    ),
]

BLOCKED, OPEN = "10.77.0.2", "10.77.0.1"
PORT = 8471

DRIVER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from mien.agent.adapt import firewall
    from mien.agent.adapt.action_base import Ctx
    from mien.agent.adapt.ledger import APPLIED, Ledger
    from mien.agent.state import State

    root, what, params = Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
    with State(root) as state:
        ledger = Ledger(state)
        if what == "apply":
            change = ledger.add_change("p", "feed", "firewall_block", params, time.time())
            ctx = Ctx(root, "p", "feed", change, ledger, lambda: None,
                      data={"threats": ["# a feed", "10.77.0.2", "not-an-address"]})
            done = firewall.FirewallBlock().apply(ctx, params)
            ledger.update_change(change, status=APPLIED, undo=done.undo)
            print(json.dumps({"change": change, "message": done.message}))
        elif what == "switch":
            from mien.agent.adapt.changes import Runner

            Runner(root, ledger, lambda: None, log=lambda _: None).end_persona("p", time.time())
            print("{}")
        else:
            change = ledger.change(int(params["change"]))
            ctx = Ctx(root, "p", "feed", change.id, ledger, lambda: None)
            firewall.FirewallBlock().revert(ctx, change.undo)
            print("{}")
    """
)


def in_ns(ns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, check=check, timeout=60
    )


@pytest.fixture
def ns() -> Iterator[str]:
    name = f"mien-fw-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    server = None
    try:
        in_ns(name, "ip", "link", "set", "lo", "up")
        for address in (OPEN, BLOCKED):
            in_ns(name, "ip", "addr", "add", f"{address}/32", "dev", "lo")
        server = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                name,
                sys.executable,
                "-m",
                "http.server",
                "--bind",
                "0.0.0.0",
                str(PORT),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(50):
            if connects(name, OPEN):
                break
            time.sleep(0.1)
        yield name
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "netns", "del", name], check=False)


def connects(ns: str, address: str) -> bool:
    probe = (
        "import socket,sys\n"
        f"try:\n socket.create_connection(({address!r}, {PORT}), timeout=1).close()\n"
        "except OSError:\n sys.exit(1)\n"
    )
    return in_ns(ns, sys.executable, "-c", probe, check=False).returncode == 0


def drive(ns: str, root: Path, what: str, params: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", DRIVER, str(root), what, params],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_blocked_address_cannot_connect_and_an_unblocked_one_still_can(
    ns: str, machine: Path
) -> None:
    assert connects(ns, BLOCKED) and connects(ns, OPEN)
    out = json.loads(drive(ns, machine, "apply", '{"from": "data.threats", "timeout": "10m"}'))
    assert out["message"] == "blocked 1 address(es) for 600s; not addresses: not-an-address"
    assert not connects(ns, BLOCKED)
    assert connects(ns, OPEN)
    listed = in_ns(ns, "nft", "list", "set", "inet", "mien", "blocked4").stdout
    assert BLOCKED in listed and "timeout 10m" in listed and "expires" in listed

    drive(ns, machine, "revert", json.dumps({"change": out["change"]}))
    assert in_ns(ns, "nft", "list", "table", "inet", "mien", check=False).returncode != 0
    assert connects(ns, BLOCKED)


def test_a_persona_switch_removes_the_table(ns: str, machine: Path) -> None:
    drive(ns, machine, "apply", '{"addresses": ["10.77.0.2"]}')
    drive(ns, machine, "apply", '{"addresses": ["10.77.0.9"]}')
    assert not connects(ns, BLOCKED)
    drive(ns, machine, "switch", "{}")
    assert in_ns(ns, "nft", "list", "table", "inet", "mien", check=False).returncode != 0
    assert connects(ns, BLOCKED)


FEED_PORT = 8472
GUARD = f"""\
name: guard
trust_levels: {{network_access: low}}
external_data_sources:
  - name: threats
    url: http://{OPEN}:{FEED_PORT}/feed.txt
    every: 10s
    timeout: 2s
    parse: lines
    then: [{{action: firewall_block, from: data.threats, timeout: 10m}}]
"""


def _events(root: Path) -> list[dict[str, object]]:
    out = run_mien("events", "--root", root, "--output", "json").stdout
    return [json.loads(line) for line in out.splitlines()]


def _wait(check: object, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.3)
    raise AssertionError("timed out")


@pytest.mark.skipif(
    importlib.util.find_spec("mien.agent.adapt.sources") is None,
    reason="needs the agent's data sources (mien.agent.adapt.sources)",
)
def test_a_feed_on_a_loopback_server_drives_the_block_through_the_agent(
    ns: str, machine: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "feed.txt").write_text(f"# threats\n{BLOCKED}\n")
    feed = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            ns,
            sys.executable,
            "-m",
            "http.server",
            "--bind",
            OPEN,
            "--directory",
            str(site),
            str(FEED_PORT),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    persona = tmp_path / "guard.yaml"
    persona.write_text(GUARD)
    assert run_mien("apply", persona, "--root", machine, "--user", "alice", "--yes").returncode == 0
    agent = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            ns,
            *mien_command(),
            "agent",
            "run",
            "--local",
            "--root",
            str(machine),
            "--interval",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait(lambda: any(e["event"] == "action.applied" for e in _events(machine)))
        assert not connects(ns, BLOCKED)
        assert connects(ns, OPEN)
        # The feed changes: the new address is blocked, the old one is let go.
        (site / "feed.txt").write_text("10.77.0.3\n")
        _wait(lambda: connects(ns, BLOCKED), timeout=40.0)
        listed = in_ns(ns, "nft", "list", "set", "inet", "mien", "blocked4").stdout
        assert "10.77.0.3" in listed and BLOCKED not in listed
        # The feed goes away: the last good copy stays, and so does the block.
        (site / "feed.txt").unlink()
        _wait(lambda: any(e["event"] == "source.failed" for e in _events(machine)))
        assert "10.77.0.3" in in_ns(ns, "nft", "list", "set", "inet", "mien", "blocked4").stdout
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=30)
        feed.kill()
        feed.wait()
