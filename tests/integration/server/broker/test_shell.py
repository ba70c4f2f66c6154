"""``mien app shell`` for real: the CLI on a pseudo-terminal of the test's own (``pty.fork``),
a real server relaying WebSockets, and the sandbox host's glue running the program on a
terminal it allocates (with the tiny driver: the same path with the local driver is in
tests/e2e/test_app_personas.py).

Typing reaches the program, its output comes back, the window size is the holder's and
follows a resize, the exit status is the command's, and the holder's terminal is restored.
Without a terminal the input is piped and stdout and stderr stay apart. Someone else's
lease, an ended lease, a missing token and another host's agent are refused before the
WebSocket opens, each with the API's problem and status.
"""

from __future__ import annotations

import os
import termios
import time
from pathlib import Path

import pytest
from broker_support import app_persona, host, mien
from server_harness import ServerProcess, wait_until

from mien.agent.sandbox_host import SandboxHost
from mien.client import Client, errors
from mien.client import shell as sockets
from tests.terminal import Terminal


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the relay is in the replica's memory whatever the database


def _lease(server: ServerProcess, admin: Client, token: str) -> str:
    if "notes" not in {p.name for p in admin.list_personas()}:
        admin.create_persona(app_persona("notes", cpu=1))
    asked = mien(server, token, "app", "request", "notes", "--wait")
    assert asked.returncode == 0, asked.stderr
    return str(asked.stdout.strip())


def test_an_interactive_shell_on_a_real_terminal(
    server: ServerProcess, admin: Client, sandbox: tuple[SandboxHost, Path]
) -> None:
    token = admin.create_token("alice", role="user").token
    lease = _lease(server, admin, token)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "TERM": "xterm-256color",
        "MIEN_SERVER": server.url,
        "MIEN_TOKEN": token,
    }
    term = Terminal(
        ["app", "shell", lease, "--", "bash", "--norc", "--noprofile", "-i"], env, 30, 100
    )
    before = termios.tcgetattr(term.fd)
    term.expect(b"tiny$ ")
    term.type("echo $((6 * 7)) $TERM; stty size; ls\r")
    term.expect(b"42 xterm-256color")
    term.expect(b"30 100")
    term.expect(b"persona.json")  # it runs in the lease
    term.expect(b"tiny$ ")
    term.resize(40, 120)  # the holder's window changes: SIGWINCH → resize → the shell's
    time.sleep(0.5)  # the resize travels as a frame; the next line must not overtake it
    term.type("stty size\r")
    term.expect(b"40 120")
    term.type("exit 7\r")
    assert term.wait() == 7, term.seen
    after = termios.tcgetattr(term.fd)
    assert after[3] & termios.ICANON and after[3] & termios.ECHO, "terminal left raw"
    assert after[3] == before[3]
    os.close(term.fd)

    def launched() -> bool:  # the shell is among the lease's processes
        shown = mien(server, token, "app", "status", lease)
        return "$ bash --norc --noprofile -i" in shown.stdout

    wait_until(launched, timeout=30, what="the shell in mien app status")


def test_a_shell_without_a_terminal_pipes_its_input_and_keeps_stderr_apart(
    server: ServerProcess, admin: Client, sandbox: tuple[SandboxHost, Path]
) -> None:
    token = admin.create_token("alice", role="user").token
    lease = _lease(server, admin, token)
    script = "echo out; echo err >&2; read line; echo got $line; exit 3\nhello\n"
    done = mien(server, token, "app", "shell", lease, "--", "bash", stdin=script)
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\ngot hello\n", "err\n")
    # The default program is the login shell (bash -l), reading the script from the pipe.
    done = mien(server, token, "app", "shell", lease, stdin="echo $0\n")
    assert done.returncode == 0 and done.stdout.strip().endswith("bash"), done


def test_refusals_come_before_the_shell_opens(
    server: ServerProcess, admin: Client, sandbox: tuple[SandboxHost, Path]
) -> None:
    alice = admin.create_token("alice", role="user").token
    bob = admin.create_token("bob", role="user").token
    lease = _lease(server, admin, alice)

    refused = mien(server, bob, "app", "shell", lease, stdin="id\n")
    assert refused.returncode == 1
    assert refused.stderr == f"mien: lease {lease} belongs to 'alice', not to 'bob'\n"
    path = f"/broker/leases/{lease}/shell"
    with Client(server.url, bob) as as_bob, pytest.raises(errors.Forbidden) as denied:
        sockets.connect(as_bob, path)
    assert denied.value.status == 403 and denied.value.code == "forbidden"
    audit = admin._http.get("/api/v1/audit", params={"action": "lease.denied"}).json()
    assert any(e["detail"].get("wanted") == "shell" for e in audit["items"]), audit
    with Client(server.url, None) as anonymous, pytest.raises(errors.Unauthorized):
        sockets.connect(anonymous, path)
    with Client(server.url, alice) as as_alice, pytest.raises(errors.InvalidDocument):
        sockets.connect(as_alice, path, [("rows", 0)])

    # Another host's agent cannot take a session over (nor guess one); an agent is not a
    # person, and a person is not a host.
    other = host(admin, server, "sbx-2")
    with pytest.raises(errors.NotFound):
        sockets.connect(other.client, "/broker/host/shells/0b6f0000-0000-0000-0000-000000000000")
    with pytest.raises(errors.Forbidden, match="has role 'agent'"):
        sockets.connect(other.client, path)
    other.client.close()
    with Client(server.url, alice) as as_alice, pytest.raises(errors.Forbidden):
        sockets.connect(as_alice, "/broker/host/shells/0b6f0000-0000-0000-0000-000000000000")

    released = mien(server, alice, "app", "release", lease)
    assert released.returncode == 0, released.stderr
    late = mien(server, alice, "app", "shell", lease, stdin="id\n")
    assert late.returncode == 1
    assert late.stderr == (f"mien: lease {lease} has ended (released): request a new one\n"), (
        late.stderr
    )
    with Client(server.url, alice) as as_alice, pytest.raises(errors.Conflict) as ended:
        sockets.connect(as_alice, path)
    assert ended.value.status == 409 and ended.value.code == "lease_not_ready"
