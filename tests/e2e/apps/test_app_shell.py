"""``mien app shell`` end to end: a person at a terminal (a pseudo-terminal of the test's,
``pty.fork``) gets an interactive shell inside a real ``local`` sandbox (bubblewrap +
cgroups) through a real server and a sandbox host process.

What is typed runs inside, as the sandbox user, with the persona's settings and the
holder's window size; the exit status comes back; someone else's lease is refused, and so
is a released one.

Skips, saying why, without root, bubblewrap, cgroup v1 or the cached Debian base root.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e.apps.support import ServerProcess, mien, push, sandbox_host, traces, wait_until
from tests.terminal import Terminal

pytestmark = [pytest.mark.root, pytest.mark.slow]

# Only what the base root already has: its layer needs no download.
NOTES = {
    "name": "notes-shell",
    "application_configuration": {"notes_bucket": "s3://notes/weekly"},
    "resource_requirements": {"cpu": 1, "memory": "128MiB", "storage": "64MiB"},
}


def test_an_interactive_shell_inside_a_local_sandbox(
    tmp_path: Path, sandboxes: Path, server: ServerProcess
) -> None:
    admin = server.client()
    with sandbox_host(tmp_path, sandboxes, server, admin):
        push(server, tmp_path, NOTES)
        ann = admin.create_token("ann", role="user").token
        bob = admin.create_token("bob", role="user").token
        asked = mien(server, ann, "app", "request", "notes-shell", "--wait")
        assert asked.returncode == 0, asked.stderr
        lease = asked.stdout.strip()

        env = {
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/root"),
            "TERM": "xterm",
            "MIEN_SERVER": server.url,
            "MIEN_TOKEN": ann,
        }
        term = Terminal(["app", "shell", lease], env, 33, 101)
        term.type("echo mark-$((6 * 7)) $(id -un) $(hostname) $notes_bucket; stty size\r")
        term.expect(f"mark-42 app lease-{lease}"[:40].encode())
        term.expect(b"s3://notes/weekly")
        term.expect(b"33 101")
        # Inside: none of the host's files (the host root's agent state is not there).
        term.type("test -e /etc/mien/agent.json || echo host-hidden-$((1 + 1))\r")
        term.expect(b"host-hidden-2")
        term.type("exit 5\r")
        assert term.wait(60) == 5, term.seen
        os.close(term.fd)

        refused = mien(server, bob, "app", "shell", lease, stdin="id\n")
        assert refused.returncode == 1
        assert refused.stderr == f"mien: lease {lease} belongs to 'ann', not to 'bob'\n"
        piped = mien(server, ann, "app", "shell", lease, "--", "sh", stdin="id -un; exit 4\n")
        assert (piped.returncode, piped.stdout) == (4, "app\n"), piped
        released = mien(server, ann, "app", "release", lease)
        assert released.returncode == 0, released.stderr
        late = mien(server, ann, "app", "shell", lease, stdin="id\n")
        assert late.returncode == 1
        assert late.stderr == f"mien: lease {lease} has ended (released): request a new one\n"
        wait_until(lambda: not traces(lease, sandboxes), timeout=60, what="the sandbox destroyed")
    admin.close()
