"""An egress allow-list: the listed host:port is reachable, every other port is not, and
the bandwidth cap is on the sandbox's interface. The "remote" end is a veth address this
test creates on the host, so no packet ever leaves the machine."""

from __future__ import annotations

import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mien.agent.sandbox import SandboxHandle, netns
from tests.integration.agent.sandbox.conftest import TOOL

pytestmark = [pytest.mark.root, pytest.mark.slow]

Make = Callable[..., SandboxHandle]


@pytest.fixture
def remote() -> Iterator[str]:
    """A host address on a veth pair of its own (10.214.x.1), removed afterwards."""
    tag = uuid.uuid4().hex[:6]
    name = f"mtv{tag}"
    address = f"10.214.{int(tag[:2], 16)}.1"
    made = subprocess.run(
        ["ip", "link", "add", name, "type", "veth", "peer", "name", f"mtp{tag}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot create a veth pair: {made.stderr.strip()}")
    try:
        for argv in (
            ["ip", "addr", "add", f"{address}/32", "dev", name],
            ["ip", "link", "set", name, "up"],
            ["ip", "link", "set", f"mtp{tag}", "up"],
        ):
            subprocess.run(argv, check=True, capture_output=True)
        yield address
    finally:
        subprocess.run(["ip", "link", "del", name], check=False, capture_output=True)


def _listener(address: str) -> socket.socket:
    sock = socket.socket()
    sock.bind((address, 0))
    sock.listen()
    sock.settimeout(10)
    return sock


def test_only_the_listed_endpoint_is_reachable(driver: Any, sandbox: Make, remote: str) -> None:
    with _listener(remote) as allowed, _listener(remote) as other:
        port, other_port = allowed.getsockname()[1], other.getsockname()[1]
        document = {
            **TOOL,
            "resource_requirements": {
                **TOOL["resource_requirements"],
                "network_bandwidth": "8Mbps",
            },
            "access_controls": {"network": {"egress": [f"{remote}:{port}"]}},
        }
        handle = sandbox(driver, document)
        sent = driver.run(
            handle, ["bash", "-c", f"echo hello >/dev/tcp/{remote}/{port}"], timeout=30
        )
        assert sent.exit_status == 0, sent
        conn, _ = allowed.accept()
        with conn:
            conn.settimeout(10)
            assert conn.recv(100) == b"hello\n"
        refused = driver.run(
            handle,
            ["timeout", "3", "bash", "-c", f"echo no >/dev/tcp/{remote}/{other_port}"],
            timeout=30,
        )
        assert refused.exit_status != 0
        other.settimeout(0.5)
        with pytest.raises(TimeoutError):
            other.accept()
    if driver.name == "local":
        ns = handle.data["net"]["netns"]
        shown = subprocess.run(
            ["ip", "netns", "exec", ns, "tc", "qdisc", "show"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "tbf" in shown and "rate 8Mbit" in shown, shown
        driver.destroy(handle)
        assert not (netns.NETNS_DIR / ns).exists()
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True)
        assert handle.data["net"]["host_if"] not in links.stdout
