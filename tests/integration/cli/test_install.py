"""Installing the agent on a VM: the systemd unit of ``mien agent install-service`` passes
``systemd-analyze verify``; without systemd the command installs nothing and exits 2; the
cloud-init example of docs/install.md passes ``cloud-init schema`` and its ``runcmd``
enrolls a temporary machine root with a loopback server, whose agent then applies the
fleet's default persona.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support import REPO, make_machine, mien_command, run_mien

sys.path.insert(0, str(REPO / "tests" / "integration" / "server"))
from server_harness import ServerProcess

from mien.client import Client

DOC = REPO / "docs" / "install.md"


def example() -> str:
    text = DOC.read_text()
    found = re.search(r"<!-- cloud-init-example.*?```yaml\n(.*?)```", text, re.S)
    assert found, "docs/install.md lost its cloud-init example"
    return found.group(1)


def unit(root: Path) -> str:
    done = run_mien("agent", "install-service", "--print", "--root", root)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")

    def verify(text: str) -> str:
        path = tmp_path / "mien-agent.service"
        path.write_text(text)
        done = subprocess.run(
            ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, check=False
        )
        # It exits 0 on many mistakes and only says so: any word about our unit is one.
        return (
            (done.stdout + done.stderr)
            if done.returncode
            else "\n".join(
                line for line in (done.stdout + done.stderr).splitlines() if "mien-agent" in line
            )
        )

    text = unit(Path("/"))
    assert "Restart=on-failure" in text and "Type=simple" in text
    assert "RuntimeDirectory=mien" in text
    assert "ProtectHome" not in text and "ProtectSystem" not in text  # it manages homes, /etc
    assert verify(text) == ""
    broken = text.replace("Type=simple", "Type=simplest")
    assert "simplest" in verify(broken)  # the check can fail


@pytest.mark.skipif(Path("/run/systemd/system").is_dir(), reason="systemd runs here")
def test_without_systemd_install_service_exits_2_and_says_what_to_run(tmp_path: Path) -> None:
    done = run_mien("agent", "install-service", "--root", tmp_path)
    assert done.returncode == 2
    assert "ExecStart=" in done.stdout and f"--root {tmp_path}" in done.stdout
    assert "systemctl daemon-reload && systemctl enable --now mien-agent.service" in done.stderr
    assert not Path("/etc/systemd/system/mien-agent.service").exists()


def _cloud_init() -> list[str]:
    """A ``cloud-init`` command: Debian's package unpacked beside a venv with its Python
    dependencies, built once per package version under ~/.cache/mien-tests."""
    cache = Path.home() / ".cache" / "mien-tests" / "cloud-init"
    ready = cache / "ready"
    if not ready.exists():
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(parents=True)
        steps = [
            (["apt-get", "download", "cloud-init"], "apt-get download cloud-init"),
        ]
        for argv, what in steps:
            done = subprocess.run(argv, cwd=cache, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                pytest.skip(f"cloud-init is not available ({what}: {done.stderr.strip()[:200]})")
        deb = next(cache.glob("cloud-init_*.deb"))
        subprocess.run(["dpkg", "-x", str(deb), str(cache / "pkg")], check=True)
        subprocess.run([sys.executable, "-m", "venv", str(cache / "venv")], check=True)
        deps = ["jsonschema", "PyYAML", "jinja2", "configobj", "requests", "jsonpatch"]
        done = subprocess.run(
            [str(cache / "venv/bin/pip"), "install", "--quiet", *deps],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"cloud-init's dependencies did not install: {done.stderr[-300:]}")
        ready.write_text(hashlib.sha256(deb.read_bytes()).hexdigest())
    env = f"PYTHONPATH={cache / 'pkg/usr/lib/python3/dist-packages'}"
    return ["env", env, str(cache / "venv/bin/python"), "-m", "cloudinit.cmd.main"]


def test_the_cloud_init_example_passes_cloud_init_schema(tmp_path: Path) -> None:
    if not shutil.which("apt-get") or not shutil.which("dpkg"):
        pytest.skip("cloud-init comes from Debian's package here; no apt-get/dpkg")
    command = _cloud_init()
    good = tmp_path / "user-data.yaml"
    good.write_text(example())
    done = subprocess.run(
        [*command, "schema", "--config-file", str(good)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Valid cloud-config" in done.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(example().replace("runcmd:", "runcmd: 5\nbroken:", 1))
    done = subprocess.run(
        [*command, "schema", "--config-file", str(bad)], capture_output=True, check=False
    )
    assert done.returncode != 0  # the check can fail


@pytest.mark.skipif(
    Path("/run/systemd/system").is_dir(),
    reason="systemd runs here: install-service would install a real service on this host",
)
def test_the_cloud_init_runcmd_enrolls_and_starts_the_agent(tmp_path: Path) -> None:
    from tests.support import EXAMPLES

    root = make_machine(tmp_path / "vm")
    (root / "etc/passwd").write_text(
        (root / "etc/passwd").read_text() + "ubuntu:x:1002:1002::/home/ubuntu:/bin/bash\n"
    )
    (root / "home/ubuntu").mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # The edges of the world: the cloud's metadata, and the package index.
    (bin_dir / "cloud-init").write_text(
        "#!/bin/sh\n[ \"$1 $2\" = 'query instance_id' ] && echo i-0cafe42\n"
    )
    (bin_dir / "cloud-init").chmod(0o755)
    venv = tmp_path / "opt-mien"
    (venv / "bin").mkdir(parents=True)
    os.symlink(mien_command()[0], venv / "bin/mien")

    server = ServerProcess(tmp_path / "server").start()
    try:
        with Client(server.url, server.admin_token) as admin:
            admin.create_persona(EXAMPLES / "test-runner.json")
            admin.set_default_persona("test-runner")
            token = admin.create_token("vms", kind="enroll", uses=5).token
            text = (
                example()
                .replace("https://mien.example.internal:8470", server.url)
                .replace("mien_e_REPLACE_WITH_AN_ENROLLMENT_TOKEN", token)
                .replace("/usr/local/bin/mien", str(bin_dir / "mien"))
                .replace("/opt/mien", str(venv))
                .replace("mien agent enroll", f"mien agent enroll --root {root}")
            )
            runcmd = yaml.safe_load(text)["runcmd"]
            env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
            printed = ""
            for item in runcmd:
                argv = item if isinstance(item, list) else ["sh", "-c", item]
                if argv[0] == "sh" and "pip install" in argv[2]:
                    continue  # from the package index: the mien under test is linked instead
                if argv[:3] == ["mien", "agent", "install-service"]:
                    argv = [*argv, "--root", str(root)]
                done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
                if "install-service" in argv and not Path("/run/systemd/system").is_dir():
                    assert done.returncode == 2, done.stderr  # no systemd here: it says so
                    printed = done.stdout
                else:
                    assert done.returncode == 0, (argv, done.stderr)
            instance = admin.get_instance("i-0cafe42")
            assert instance.id == "i-0cafe42"
            exec_start = next(
                line.split("=", 1)[1]
                for line in printed.splitlines()
                if line.startswith("ExecStart=")
            )
            started = subprocess.run(
                [*shlex.split(exec_start), "--once"],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert started.returncode == 0, started.stderr
            active = admin.active_persona("i-0cafe42")
            assert active.applied.persona == "test-runner" and active.in_sync, active
    finally:
        assert server.stop() == 0, server.log()
