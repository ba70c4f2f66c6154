"""Fixtures for the sandbox drivers on this host: real bubblewrap, cgroups, podman.

The Debian base root is built once with mmdebstrap and kept under
``~/.cache/mien-test-images`` (outside the worktree, so it survives test runs), named by
the hash of its recipe; persona layers and podman images are cached by content hash the
same way, so only the first run downloads anything. Every test skips, saying what is
missing, without root, bwrap, cgroup v1, podman or a reachable Debian archive.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mien.agent.sandbox import SandboxError, SandboxHandle, SandboxSpec, roots
from mien.agent.sandbox.local import LocalDriver
from mien.agent.sandbox.podman import PodmanDriver

CACHE = Path.home() / ".cache" / "mien-test-images"
RECIPE = roots.Recipe()

# A persona whose program comes from apt, with a configuration file, an environment
# variable and a flat application setting (the seed's form).
TOOL = {
    "name": "jq-tool",
    "required_applications": [{"name": "jq", "manager": "apt"}],
    "application_configuration": {
        "greeter": {"path": "/etc/greeter.json", "format": "json", "values": {"greeting": "hi"}},
        "tool": {"path": "~/.config/tool.json", "values": {"color": "blue"}},
        "database_connection_string": "postgresql://db.internal:5432/app",
    },
    "environment_variables": {"GREETING_MODE": "loud"},
    "resource_requirements": {"cpu": 1, "memory": "96MiB", "storage": "64MiB"},
}


@pytest.fixture(scope="session")
def base_root() -> Path:
    if os.geteuid() != 0:
        pytest.skip("sandboxes need root (mounts, cgroups, namespaces)")
    if shutil.which("mmdebstrap") is None and not (CACHE / f"base-{RECIPE.key()}").is_dir():
        pytest.skip("needs mmdebstrap to build the base root (scripts/system-deps installs it)")
    try:
        return roots.base_root(RECIPE, cache=CACHE)
    except SandboxError as exc:
        pytest.skip(f"cannot build the Debian base root (is the archive reachable?): {exc}")


@pytest.fixture(scope="session")
def runs() -> Iterator[Path]:
    """The drivers' run directory: under /run, traversable by the leases' host uids."""
    path = Path(tempfile.mkdtemp(prefix="mien-sandbox-test-", dir="/run"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def local(base_root: Path, runs: Path) -> LocalDriver:
    driver = LocalDriver(RECIPE, cache=CACHE, runs=runs)
    missing = driver.available()
    if missing:
        pytest.skip(f"local sandbox driver: {missing}")
    return driver


@pytest.fixture(scope="session")
def podman(base_root: Path, runs: Path) -> Iterator[PodmanDriver]:
    driver = PodmanDriver(RECIPE, cache=CACHE, runs=runs)
    missing = driver.available()
    if missing:
        pytest.skip(f"podman sandbox driver: {missing}")
    yield driver
    driver.stop_service()


@pytest.fixture(params=["local", "podman"])
def driver(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue(request.param)


def lease() -> str:
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def sandbox() -> Iterator[Callable[..., SandboxHandle]]:
    """Provision with a driver; every sandbox made is destroyed at the end of the test."""
    made: list[tuple[Any, SandboxHandle]] = []

    def make(driver: Any, document: dict[str, Any], **changes: Any) -> SandboxHandle:
        spec = SandboxSpec.from_persona(lease(), document)
        if changes:
            import dataclasses

            spec = dataclasses.replace(spec, **changes)
        handle = driver.provision(spec)
        made.append((driver, handle))
        return handle

    yield make
    for driver, handle in made:
        with contextlib.suppress(Exception):
            driver.destroy(handle)
