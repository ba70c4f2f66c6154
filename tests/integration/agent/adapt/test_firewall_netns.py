"""``firewall_block`` for real: nftables inside a network namespace the test creates.

Two addresses live on the namespace's loopback with a TCP server listening on both; the
executor (run inside the namespace, as the agent would be) blocks one. A connection to the
blocked address fails, one to the other still succeeds; the set's elements carry their
timeout; reverting removes the table and the blocked address answers again."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import REPO

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
    from mien.agent.adapt.executors import Ctx
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
