"""Fixtures of the application-persona e2e tests: a cached Debian base root and a run
directory for the drivers (``sandboxes``), a ``mien server`` (``server``) and a loopback
listener a sandbox without network must not reach (``listener``)."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.apps.support import CACHE, ServerProcess


@pytest.fixture
def sandboxes() -> Iterator[Path]:
    """The drivers' run directory, after checking this host can run the local driver and
    has (or can build) the cached base root."""
    if os.geteuid() != 0:
        pytest.skip("application sandboxes need root (mounts, cgroups, namespaces)")
    from mien.agent.sandbox import SandboxError, roots
    from mien.agent.sandbox.local import LocalDriver

    recipe = roots.Recipe()
    missing = LocalDriver(recipe, cache=CACHE).available()
    if missing:
        pytest.skip(f"local sandbox driver: {missing}")
    if shutil.which("mmdebstrap") is None and not (CACHE / f"base-{recipe.key()}").is_dir():
        pytest.skip("needs mmdebstrap to build the base root (scripts/system-deps installs it)")
    try:
        roots.base_root(recipe, cache=CACHE)
    except SandboxError as exc:
        pytest.skip(f"cannot build the Debian base root (is the archive reachable?): {exc}")
    runs = Path(tempfile.mkdtemp(prefix="mien-app-e2e-", dir="/run"))
    runs.chmod(0o711)
    yield runs
    shutil.rmtree(runs, ignore_errors=True)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "server").start()
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture
def listener() -> Iterator[int]:
    """A loopback TCP listener of the test's own: a sandbox without network must not reach it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.settimeout(0.2)
    accepted: list[object] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            accepted.append(conn)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname()[1]
    stop.set()
    thread.join(5)
    sock.close()
    assert not accepted, "a sandbox without network reached the host's loopback listener"
