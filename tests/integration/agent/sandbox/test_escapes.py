"""Escape attempts from inside a sandbox, for both drivers: each must fail.

Reading host files outside the mounts, reaching the host's network without network
access, running more processes than the pids limit, signalling a host process, reading
another lease's workspace, and changing the shared base image."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mien.agent.sandbox import SandboxHandle
from tests.integration.agent.sandbox.conftest import TOOL

pytestmark = [pytest.mark.root, pytest.mark.slow]

Make = Callable[..., SandboxHandle]


def _sh(driver: Any, handle: SandboxHandle, script: str) -> Any:
    return driver.run(handle, ["sh", "-c", script], timeout=60)


def test_host_files_outside_the_mounts_are_not_there(
    driver: Any, sandbox: Make, tmp_path: Path
) -> None:
    secret = Path("/run") / f"mien-secret-{uuid.uuid4().hex}"
    secret.write_text("host secret\n")
    try:
        handle = sandbox(driver, TOOL)
        done = _sh(driver, handle, f"cat {secret}; ls /run; cat /etc/shadow | grep -c root:")
        assert b"host secret" not in done.stdout
        assert secret.name.encode() not in done.stdout
        assert b"No such file" in done.stderr
        # /etc/shadow inside is the sandbox's own (and not readable by the app user).
        assert b"Permission denied" in done.stderr
    finally:
        secret.unlink()


def test_the_host_network_is_out_of_reach(driver: Any, sandbox: Make) -> None:
    address = _host_address()  # the host's own address: no packet leaves the host
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen()
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        handle = sandbox(driver, TOOL)
        tried = _sh(driver, handle, f"timeout 5 bash -c 'echo x >/dev/tcp/{address}/{port}'")
        assert tried.exit_status != 0
        assert b"unreachable" in tried.stderr, tried.stderr
        with pytest.raises(TimeoutError):
            listener.accept()


def _host_address() -> str:
    out = subprocess.run(
        ["ip", "-o", "-4", "addr", "show", "scope", "global"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    addresses = [w.split("/")[0] for i, w in enumerate(out) if i and out[i - 1] == "inet"]
    if not addresses:
        pytest.skip("the host has no global IPv4 address to probe")
    return addresses[0]


def test_the_pids_limit_holds(driver: Any, sandbox: Make) -> None:
    from mien.agent.sandbox import SandboxSpec

    limits = dataclasses.replace(SandboxSpec.from_persona("x", TOOL).limits, pids=40)
    handle = sandbox(driver, TOOL, limits=limits)
    # echo is a builtin: it prints one line per process that could be started.
    done = _sh(driver, handle, "i=0; while [ $i -lt 100 ]; do sleep 30 & i=$((i+1)); echo $i; done")
    started = len(done.stdout.split())
    assert started < 40, done
    assert b"fork" in done.stderr.lower() or b"resource" in done.stderr.lower(), done
    assert driver.usage(handle).processes  # the scan saw them


def test_a_host_process_cannot_be_signalled(driver: Any, sandbox: Make) -> None:
    victim = subprocess.Popen(["sleep", "300"])
    try:
        handle = sandbox(driver, TOOL)
        done = _sh(driver, handle, f"kill -9 {victim.pid}; test -e /proc/{victim.pid} && echo seen")
        assert done.exit_status != 0 and b"seen" not in done.stdout
        assert victim.poll() is None  # still alive
    finally:
        victim.kill()
        victim.wait()


def test_another_lease_workspace_is_out_of_reach(driver: Any, sandbox: Make) -> None:
    name = f"secret-{uuid.uuid4().hex}"
    first, second = sandbox(driver, TOOL), sandbox(driver, TOOL)
    wrote = _sh(driver, first, f"echo mine > /workspace/{name} && echo mine > ~/{name}")
    assert wrote.exit_status == 0, wrote
    found = _sh(
        driver,
        second,
        f"cat /workspace/{name}; find / -xdev -name '{name}*' 2>/dev/null; "
        f"find /proc/*/root/ -maxdepth 2 -name '{name}*' 2>/dev/null; true",
    )
    assert b"mine" not in found.stdout and name.encode() not in found.stdout, found


def test_the_shared_image_cannot_be_changed(driver: Any, sandbox: Make) -> None:
    handle = sandbox(driver, TOOL)
    done = _sh(
        driver,
        handle,
        "{ echo x > /usr/bin/jq || echo F1; echo y > /etc/greeter.json || echo F2; "
        "mount -t tmpfs t /mnt || echo F3; } 2>/dev/null",
    )
    assert done.stdout.split() == [b"F1", b"F2", b"F3"], done
    other = sandbox(driver, TOOL)
    assert driver.run(other, ["jq", "-n", "1"]).stdout == b"1\n"
    assert driver.run(handle, ["jq", "-n", "1"]).stdout == b"1\n"
