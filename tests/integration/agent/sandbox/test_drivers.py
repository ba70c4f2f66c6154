"""Both sandbox drivers for real: a persona's apt program runs inside with its
configuration, the memory limit kills (and usage says so), a read-only mount refuses a
write, a sandbox without network cannot reach the host, a package that will not install
fails the provision and leaves nothing, and destroy removes everything."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mien.agent.sandbox import SandboxError, SandboxHandle, SandboxSpec, cgroups
from tests.integration.agent.sandbox.conftest import TOOL, lease
from tests.support import npm_registry_or_skip

pytestmark = [pytest.mark.root, pytest.mark.slow]

Make = Callable[..., SandboxHandle]


def test_an_installed_program_runs_with_its_configuration(driver: Any, sandbox: Make) -> None:
    handle = sandbox(driver, TOOL)
    done = driver.run(handle, ["jq", "-r", ".greeting", "/etc/greeter.json"])
    assert (done.exit_status, done.stdout) == (0, b"hi\n"), done.stderr
    env = driver.run(
        handle,
        ["sh", "-c", 'echo "$DATABASE_CONNECTION_STRING|$GREETING_MODE|$EXTRA|$(id -un)"'],
        env={"EXTRA": "given"},
    )
    assert env.stdout == b"postgresql://db.internal:5432/app|loud|given|app\n", env.stderr
    # One env file for the flat settings, the one the engine writes on a machine too.
    files = driver.run(
        handle, ["sh", "-c", "cat /etc/persona/application.env; ls /etc/mien/app.env"]
    )
    assert b"database_connection_string=postgresql://db.internal:5432/app\n" in files.stdout
    assert b"No such file" in files.stderr, files
    home = driver.run(handle, ["sh", "-c", "jq -r .color ~/.config/tool.json && touch ~/new"])
    assert (home.exit_status, home.stdout) == (0, b"blue\n"), home.stderr  # and writable
    assert driver.run(handle, ["cat"], stdin=b"through stdin").stdout == b"through stdin"
    assert driver.run(handle, ["sh", "-c", "exit 7"]).exit_status == 7
    used = driver.usage(handle)
    assert ["jq", "-r", ".greeting", "/etc/greeter.json"] in used.processes
    assert used.cpu_seconds > 0 and used.peak_memory_bytes > 0 and not used.oom_killed
    # The handle survives a restart of the agent as JSON.
    again = SandboxHandle.from_json(json.loads(json.dumps(handle.to_json())))
    assert driver.run(again, ["true"]).exit_status == 0


def test_a_process_past_the_memory_limit_is_killed(driver: Any, sandbox: Make) -> None:
    handle = sandbox(driver, TOOL)  # 96 MiB
    # tail keeps a line without newlines whole in memory: 300 MiB of it.
    done = driver.run(handle, ["sh", "-c", "head -c 300M /dev/zero | tail >/dev/null"])
    assert done.exit_status == 137, done  # the pipeline's tail: killed by SIGKILL
    assert driver.usage(handle).oom_killed
    assert driver.usage(handle).peak_memory_bytes <= 96 * 2**20
    assert driver.run(handle, ["true"]).exit_status == 0  # the sandbox itself lives on


def test_a_read_only_mount_refuses_a_write(driver: Any, sandbox: Make, tmp_path: Path) -> None:
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    for path in (ro, rw):
        path.mkdir()
        path.chmod(0o777)
    tmp_path.chmod(0o755)
    (ro / "data.csv").write_text("a,b\n")
    document = {
        **TOOL,
        "access_controls": {
            "filesystem": [{"path": str(ro), "mode": "ro"}, {"path": str(rw), "mode": "rw"}]
        },
    }
    handle = sandbox(driver, document)
    assert driver.run(handle, ["cat", f"{ro}/data.csv"]).stdout == b"a,b\n"
    refused = driver.run(handle, ["sh", "-c", f"echo x > {ro}/new; echo y >> {ro}/data.csv"])
    assert refused.exit_status != 0 and b"Read-only file system" in refused.stderr
    assert not (ro / "new").exists() and (ro / "data.csv").read_text() == "a,b\n"
    assert driver.run(handle, ["sh", "-c", f"echo out > {rw}/result"]).exit_status == 0
    assert (rw / "result").read_text() == "out\n"


def test_a_sandbox_without_network_cannot_connect_out(driver: Any, sandbox: Make) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        handle = sandbox(driver, TOOL)
        tried = driver.run(
            handle, ["bash", "-c", f"echo hello >/dev/tcp/127.0.0.1/{port}"], timeout=20
        )
        assert tried.exit_status != 0
        assert b"Connection refused" in tried.stderr, tried.stderr
        with pytest.raises(TimeoutError):
            listener.accept()  # the host's listener never saw it
    links = driver.run(handle, ["cat", "/proc/net/dev"]).stdout.decode()
    assert [line.split(":")[0].strip() for line in links.splitlines()[2:]] == ["lo"]


def test_a_package_that_will_not_install_fails_and_leaves_nothing(
    driver: Any, sandbox: Make
) -> None:
    bad = {**TOOL, "required_applications": [{"name": "mien-no-such-package", "manager": "apt"}]}
    spec = SandboxSpec.from_persona(lease(), bad)
    with pytest.raises(SandboxError, match="mien-no-such-package"):
        driver.provision(spec)
    assert not any(p.exists() for p in cgroups.paths(spec.lease_id).values())
    assert not any(spec.lease_id in str(p) for p in Path(driver.runs).iterdir())
    if driver.name == "podman":
        assert driver.list() == [] or all(h.lease_id != spec.lease_id for h in driver.list())


def test_destroy_removes_everything_and_is_idempotent(driver: Any, sandbox: Make) -> None:
    handle = sandbox(driver, TOOL)
    driver.run(handle, ["sh", "-c", "echo kept > /workspace/file"])
    assert handle.lease_id in [h.lease_id for h in driver.list()]
    driver.destroy(handle)
    driver.destroy(handle)
    assert handle.lease_id not in [h.lease_id for h in driver.list()]
    if driver.name == "local":
        where = Path(handle.data["dir"])
        assert not where.exists()
        assert not any(p.exists() for p in cgroups.paths(handle.lease_id).values())
        mounts = Path("/proc/self/mounts").read_text()
        assert str(where) not in mounts
    else:
        import docker.errors

        with pytest.raises(docker.errors.NotFound):
            driver.client().containers.get(handle.data["container"])
    assert os.path.exists("/")  # nothing of the host went with it


def test_pip_packages_are_installed_for_the_sandbox_python(driver: Any, sandbox: Make) -> None:
    document = {
        "name": "py-tool",
        "required_applications": [
            {"name": "python3-venv", "manager": "apt"},
            {"name": "six", "manager": "pip", "version": "1.17.0"},
        ],
        "resource_requirements": {"memory": "256MiB"},
    }
    handle = sandbox(driver, document)
    done = driver.run(
        handle, ["python", "-c", "import six, sys; print(six.__version__, sys.prefix)"]
    )
    assert done.stdout == b"1.17.0 /opt/mien/venvs/py-tool\n", done


@pytest.mark.timeout(1800)  # the first build installs nodejs and npm (many packages) with apt
def test_npm_packages_are_installed_inside_a_local_sandbox(local: Any, sandbox: Make) -> None:
    """An npm package (``semver``, a command) from the registry: the layer gets nodejs and
    npm from apt and the package in the persona's npm prefix, on the sandbox's PATH."""
    npm_registry_or_skip()
    document = {
        "name": "node-tool",
        "required_applications": [{"name": "semver", "manager": "npm", "version": "7.6.0"}],
        "resource_requirements": {"memory": "256MiB"},
    }
    handle = sandbox(local, document)
    # Debian's npm brings its own (older) semver to /usr/bin; the persona's is in its prefix,
    # on PATH after the system's directories.
    script = (
        'echo "$PATH" | tr : "\\n" | grep -x /opt/mien/npm/node-tool/bin;'
        " /opt/mien/npm/node-tool/bin/semver --help | head -1;"
        " /opt/mien/npm/node-tool/bin/semver 1.2.3 -r '>1.0'; node -v"
    )
    done = local.run(handle, ["sh", "-c", script])
    lines = done.stdout.decode().splitlines()
    assert done.exit_status == 0, done
    assert lines[:3] == ["/opt/mien/npm/node-tool/bin", "SemVer 7.6.0", "1.2.3"], lines
    assert lines[3].startswith("v"), lines
