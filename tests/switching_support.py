"""Helpers of the switching tests: real Unix users made for the test (``useradd``), a
machine root people other than root can reach, calls to the agent's socket from a forked
child that has become one of those users (the kernel then reports that user through
SO_PEERCRED), and ``mien`` run the same way.

The child forks instead of executing a program because this interpreter may live where
other users cannot read it; after ``setuid`` it runs Python code already loaded.
"""

from __future__ import annotations

import contextlib
import grp
import io
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import SHELLS, mien_command


@dataclass(frozen=True)
class HostUser:
    name: str
    uid: int
    gid: int


@dataclass(frozen=True)
class People:
    alice: HostUser
    bob: HostUser
    group: str  # alice is a member; bob is not


def _useradd(name: str) -> HostUser:
    subprocess.run(
        ["useradd", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", name],
        check=True,
        capture_output=True,
    )
    entry = pwd.getpwnam(name)
    return HostUser(name, entry.pw_uid, entry.pw_gid)


@contextlib.contextmanager
def host_people() -> Iterator[People]:
    """Two real users and a group (alice in it), removed afterwards. Skips without root."""
    if os.geteuid() != 0 or not shutil.which("useradd"):
        pytest.skip("needs root and useradd to create the two users of the test")
    tag = secrets.token_hex(3)
    made: list[str] = []
    group = f"mswg{tag}"
    try:
        alice = _useradd(f"mswa{tag}")
        made.append(alice.name)
        bob = _useradd(f"mswb{tag}")
        made.append(bob.name)
        subprocess.run(["groupadd", group], check=True, capture_output=True)
        subprocess.run(["usermod", "-aG", group, alice.name], check=True, capture_output=True)
        yield People(alice, bob, group)
    finally:
        for name in made:
            subprocess.run(["userdel", name], check=False, capture_output=True)
        subprocess.run(["groupdel", group], check=False, capture_output=True)


def reachable_root(people: People) -> Path:
    """A machine root under /tmp that other users can traverse (pytest's tmp_path is root's
    alone), whose passwd names the two host users with their host uids."""
    root = Path(tempfile.mkdtemp(prefix="mien-switch-", dir="/tmp"))
    root.chmod(0o755)
    (root / "etc").mkdir()
    lines = ["root:x:0:0:root:/root:/bin/bash"]
    groups = ["root:x:0:"]
    for u in (people.alice, people.bob):
        lines.append(f"{u.name}:x:{u.uid}:{u.gid}::/home/{u.name}:/bin/sh")
        groups.append(f"{u.name}:x:{u.gid}:")
        home = root / "home" / u.name
        home.mkdir(parents=True)
        os.chown(home, u.uid, u.gid)
    (root / "etc/passwd").write_text("\n".join(lines) + "\n")
    (root / "etc/group").write_text("\n".join(groups) + "\n")
    (root / "etc/shells").write_text(SHELLS)
    return root


def write_personas(root: Path, people: People) -> Path:
    """dev (alice by name), analyst (alice's group), ops (nobody listed: root only)."""
    folder = root / "etc/mien/personas"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dev.yaml").write_text(
        "name: dev\ndescription: Developer box\n"
        "environment_variables: {EDITOR: vim}\n"
        "os_settings: {theme: dark}\n"
        "restricted_commands: [shutdown]\n"
        "locked: [restricted_commands]\n"
        f"access_controls: {{users: [{people.alice.name}]}}\n"
    )
    (folder / "analyst.yaml").write_text(
        "name: analyst\ndescription: Numbers and notebooks\n"
        "environment_variables: {EDITOR: nano, PAGER: less}\n"
        f"access_controls: {{users: ['group:{people.group}']}}\n"
    )
    (folder / "ops.yaml").write_text(
        "name: ops\ndescription: Operations\nenvironment_variables: {EDITOR: ed}\n"
    )
    return folder


def as_user(user: HostUser | None, func: Callable[[], Any], timeout: float = 120.0) -> Any:
    """Run ``func`` in a forked child as ``user`` (None: stay root); its JSON result."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        status = 0
        try:
            os.close(read_fd)
            if user is not None:
                os.setgroups(os.getgrouplist(user.name, user.gid))
                os.setgid(user.gid)
                os.setuid(user.uid)
            result = {"value": func()}
        except BaseException as exc:
            result = {"error": f"{type(exc).__name__}: {exc}"}
            status = 1
        with os.fdopen(write_fd, "w") as out:
            json.dump(result, out, default=str)
        os._exit(status)
    os.close(write_fd)
    with os.fdopen(read_fd) as data:
        text = data.read()
    deadline = time.monotonic() + timeout
    while True:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError("the child did not finish")
        time.sleep(0.01)
    answer = json.loads(text)
    if "error" in answer:
        raise AssertionError(answer["error"])
    return answer["value"]


def request(
    root: Path, user: HostUser | None, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    """One HTTP request on the socket as ``user``: (status, JSON answer)."""
    import httpx

    def call() -> tuple[int, Any]:
        transport = httpx.HTTPTransport(uds=str(root / "run/mien/agent.sock"))
        with httpx.Client(transport=transport, base_url="http://agent", timeout=120) as http:
            response = http.request(method, path, json=body)
            return response.status_code, response.json()

    status, answer = as_user(user, call)
    return int(status), answer


def mien_as(user: HostUser | None, *args: str) -> tuple[int, str, str]:
    """``mien ARGS`` as ``user`` in a forked child (exit status, stdout, stderr)."""

    def run() -> tuple[int, str, str]:
        from mien.cli import main as cli

        out, err = io.StringIO(), io.StringIO()
        sys.argv = ["mien", *args]
        status = 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main()
            except SystemExit as exc:
                status = exc.code if isinstance(exc.code, int) else 1
        return status, out.getvalue(), err.getvalue()

    status, out, err = as_user(user, run)
    return int(status), str(out), str(err)


def wait_for_socket(
    path: Path, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the agent exited with {proc.returncode}")
        if path.is_socket():
            with socket.socket(socket.AF_UNIX) as s:
                try:
                    s.connect(str(path))
                    return
                except OSError:
                    pass
        time.sleep(0.05)
    raise AssertionError(f"no socket at {path}")


def serve_socket(root: Path, user: str, log: Path) -> subprocess.Popen[bytes]:
    fh = log.open("ab")
    proc = subprocess.Popen(
        [*mien_command(), "agent", "serve-socket", "--root", str(root), "--user", user],
        stdout=fh,
        stderr=subprocess.STDOUT,
    )
    fh.close()
    wait_for_socket(root / "run/mien/agent.sock", proc)
    return proc


def audit_lines(root: Path) -> list[dict[str, Any]]:
    path = root / "var/log/mien/audit.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True
