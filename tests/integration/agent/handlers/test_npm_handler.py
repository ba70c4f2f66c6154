"""The packages_npm handler installs real npm packages (``semver``: small, no dependencies,
a command) from the npm registry into a prefix per persona, with this machine's npm.

Skips, saying why, without npm or without a route to the registry.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from mien.agent.handlers.base import HandlerError
from mien.agent.handlers.environment import venv_bin
from mien.agent.handlers.npm import MARKER, NpmHandler, npm_spec
from mien.spec.models import Package, Persona
from tests.support import npm_registry_or_skip

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def registry() -> None:
    npm_registry_or_skip()


@pytest.fixture
def machine(driver):  # type: ignore[no-untyped-def]
    """The handlers' test machine, with this machine's npm settings (a registry mirror, the
    CA bundle of a proxy) as the agent's environment would carry them."""
    driver.env = {
        k: v
        for k, v in os.environ.items()
        if k.lower().startswith("npm_config_") or k == "NODE_EXTRA_CA_CERTS"
    }
    return driver


def persona(version: str) -> dict:  # type: ignore[type-arg]
    return {"required_applications": [{"name": "semver", "manager": "npm", "version": version}]}


def installed(prefix: Path) -> str:
    data = json.loads((prefix / "lib/node_modules/semver/package.json").read_text())
    return str(data["version"])


def test_specs() -> None:
    assert npm_spec(Package(name="semver", manager="npm")) == "semver"
    assert npm_spec(Package(name="semver", manager="npm", version="latest")) == "semver"
    assert npm_spec(Package(name="@scope/cli", manager="npm", version="^1.2")) == "@scope/cli@^1.2"
    both = Persona.model_validate(
        {
            "required_applications": [
                {"name": "pandas", "manager": "pip"},
                {"name": "semver", "manager": "npm"},
            ]
        }
    )
    assert venv_bin(both, "dev") == "/opt/mien/venvs/dev/bin:/opt/mien/npm/dev/bin"


def test_install_reapply_upgrade_revert_and_switch(registry: None, machine) -> None:  # type: ignore[no-untyped-def]
    driver = machine
    handler = NpmHandler()
    result = driver.apply(handler, persona("7.6.0"), name="dev")
    assert [op.key for op in result.operations] == ["npm:build:dev"]
    prefix = driver.path("/opt/mien/npm/dev")
    assert installed(prefix) == "7.6.0"
    ran = subprocess.run(
        [str(prefix / "bin/semver"), "1.2.3", "-r", ">1.0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (ran.returncode, ran.stdout) == (0, "1.2.3\n"), ran.stderr
    assert json.loads((prefix / MARKER).read_text())["specs"] == ["semver@7.6.0"]
    assert sorted(p.name for p in prefix.parent.iterdir()) == ["dev"]  # no staging, no backup

    again = driver.plan(handler, persona("7.6.0"), name="dev")  # decided from the marker
    assert again.operations == [] and [n.status for n in again.notes] == ["applied"]

    op = driver.plan(handler, persona("7.6.3"), name="dev").operations[0]
    handler.perform(driver.ctx("dev"), op.data)
    assert installed(prefix) == "7.6.3"
    handler.revert(driver.ctx("dev"), op.data)  # the old prefix comes back
    assert installed(prefix) == "7.6.0"

    result = driver.apply(handler, persona("7.6.3"), name="ops")
    assert sorted(op.key for op in result.operations) == ["npm:build:ops", "npm:remove:dev"]
    assert sorted(p.name for p in prefix.parent.iterdir()) == ["ops"]


def test_a_package_that_does_not_install_leaves_nothing(registry: None, machine) -> None:  # type: ignore[no-untyped-def]
    driver = machine
    handler = NpmHandler()
    op = driver.plan(
        handler,
        {"required_applications": [{"name": "mien-no-such-package-xyz", "manager": "npm"}]},
        name="dev",
    ).operations[0]
    with pytest.raises(HandlerError, match=r"npm install mien-no-such-package-xyz: .*404"):
        handler.perform(driver.ctx("dev"), op.data)
    handler.revert(driver.ctx("dev"), op.data)
    assert not driver.path("/opt/mien/npm").exists()
