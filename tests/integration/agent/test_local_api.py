"""The agent's local API on its Unix socket, used by two real Unix users made for the test.

The agent (``mien agent serve-socket``, as root) learns who calls from the kernel; alice
may use ``dev`` (by name) and ``analyst`` (by group), bob neither, and ``ops`` lists nobody
(root only). Customizations are alice's, the machine's persona user: bob can neither read
nor change them. Nothing a request says changes who it is from; a huge body is refused.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import mien_command
from tests.switching_support import (
    People,
    audit_lines,
    host_people,
    mien_as,
    reachable_root,
    request,
    serve_socket,
    write_personas,
)


@pytest.fixture(scope="module")
def people() -> Iterator[People]:
    with host_people() as made:
        yield made


@pytest.fixture
def machine(people: People, tmp_path: Path) -> Iterator[Path]:
    root = reachable_root(people)
    write_personas(root, people)
    proc = serve_socket(root, people.alice.name, tmp_path / "agent.log")
    try:
        yield root
    finally:
        proc.terminate()
        assert proc.wait(30) == 0, (tmp_path / "agent.log").read_text()
        assert "Traceback" not in (tmp_path / "agent.log").read_text()
        assert not (root / "run/mien/agent.sock").exists()
        shutil.rmtree(root)


def active(root: Path) -> str | None:
    status, answer = request(root, None, "GET", "/v1/status")
    assert status == 200, answer
    return answer["active"]  # type: ignore[no-any-return]


def test_identity_comes_from_the_kernel(machine: Path, people: People) -> None:
    sock = machine / "run/mien/agent.sock"
    assert sock.stat().st_mode & 0o777 == 0o666
    status, me = request(machine, people.alice, "GET", "/v1/whoami")
    assert status == 200
    assert (me["user"], me["uid"]) == (people.alice.name, people.alice.uid)
    assert people.group in me["groups"] and me["owns_customizations"] and not me["root"]
    status, bob = request(machine, people.bob, "GET", "/v1/whoami")
    assert (bob["user"], bob["owns_customizations"]) == (people.bob.name, False)


def test_each_person_sees_the_personas_they_may_use(machine: Path, people: People) -> None:
    def names(user: object) -> list[str]:
        status, items = request(machine, user, "GET", "/v1/personas")  # type: ignore[arg-type]
        assert status == 200, items
        return [i["name"] for i in items]

    assert names(people.alice) == ["analyst", "dev"]
    assert names(people.bob) == []
    assert names(None) == ["analyst", "dev", "ops"]


def test_alice_previews_and_switches_and_the_audit_names_her(machine: Path, people: People) -> None:
    status, plan = request(machine, people.alice, "POST", "/v1/preview", {"persona": "dev"})
    assert status == 200, plan
    assert plan["changes"] > 0
    assert any(line["target"] == "/etc/profile.d/mien.sh" for line in plan["lines"])
    assert not (machine / "etc/profile.d/mien.sh").exists()  # a preview changes nothing

    status, done = request(machine, people.alice, "POST", "/v1/switch", {"persona": "dev"})
    assert status == 200 and done["ok"], done
    assert active(machine) == "dev"
    assert "EDITOR" in (machine / "etc/profile.d/mien.sh").read_text()
    actor = f"local:{people.alice.name}"
    events = [(r["event"], r["actor"]) for r in audit_lines(machine)]
    assert ("switch.requested", actor) in events
    assert ("persona.activated", actor) in events

    status, done = request(machine, people.alice, "POST", "/v1/switch", {"persona": "analyst"})
    assert status == 200, done
    status, entries = request(machine, people.alice, "GET", "/v1/history")
    assert [(e["persona"], e["current"], e["may_roll_back"]) for e in entries] == [
        ("analyst", True, False),
        ("dev", False, True),
    ]
    status, done = request(machine, people.alice, "POST", "/v1/rollback", {"to": entries[1]["id"]})
    assert status == 200 and done["active"] == "dev", done
    assert active(machine) == "dev"


def test_a_persona_the_user_may_not_use_is_refused(machine: Path, people: People) -> None:
    for persona in ("dev", "ops"):
        status, answer = request(machine, people.bob, "POST", "/v1/switch", {"persona": persona})
        assert status == 403, answer
        assert "access_controls.users" in answer["detail"]
        status, answer = request(machine, people.bob, "POST", "/v1/preview", {"persona": persona})
        assert status == 403, answer
    status, answer = request(machine, people.alice, "POST", "/v1/switch", {"persona": "ops"})
    assert status == 403 and "lists nobody" in answer["detail"]
    assert active(machine) is None
    refused = [r for r in audit_lines(machine) if r["event"] == "local_api.refused"]
    assert {r["actor"] for r in refused} == {
        f"local:{people.bob.name}",
        f"local:{people.alice.name}",
    }


def test_a_forged_identity_in_the_body_is_ignored(machine: Path, people: People) -> None:
    forged = {"persona": "dev", "user": people.alice.name, "uid": 0, "groups": ["root"]}
    status, answer = request(machine, people.bob, "POST", "/v1/switch", forged)
    assert status == 403, answer
    assert people.bob.name in answer["detail"]
    assert active(machine) is None
    status, answer = request(
        machine,
        people.bob,
        "POST",
        "/v1/customizations",
        {"key": "os_settings.theme", "value": "light", "user": people.alice.name},
    )
    assert status == 403, answer


def test_bob_can_neither_read_nor_change_alices_customizations(
    machine: Path, people: People
) -> None:
    status, _ = request(machine, people.alice, "POST", "/v1/switch", {"persona": "dev"})
    assert status == 200
    body = {"key": "os_settings.theme", "value": "light"}
    status, done = request(machine, people.alice, "POST", "/v1/customizations", body)
    assert status == 200, done
    status, mine = request(machine, people.alice, "GET", "/v1/customizations")
    assert status == 200 and mine == [
        {"key": "os_settings.theme", "value": "light", "source": "user"}
    ]

    status, answer = request(machine, people.bob, "GET", "/v1/customizations")
    assert status == 403 and "light" not in str(answer), answer
    for attempt in (
        {"key": "os_settings.theme", "value": "dark"},
        {"key": "os_settings.theme", "unset": True},
        {"key": "environment_variables.EVIL", "value": "1"},
    ):
        status, answer = request(machine, people.bob, "POST", "/v1/customizations", attempt)
        assert status == 403, answer
    status, mine = request(machine, people.alice, "GET", "/v1/customizations")
    assert [c["value"] for c in mine] == ["light"]

    status, answer = request(
        machine,
        people.alice,
        "POST",
        "/v1/customizations",
        {"key": "restricted_commands", "value": []},
    )
    assert status == 403 and "locked" in answer["detail"], answer
    actors = {r["actor"] for r in audit_lines(machine) if r["event"] == "customization.set"}
    assert actors == {f"local:{people.alice.name}"}


def _raw(root: Path, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(root / "run/mien/agent.sock"))
        try:
            sock.sendall(data)
            return sock.recv(65536)
        except (BrokenPipeError, ConnectionResetError):
            return b""  # the agent closed the connection


def test_a_huge_request_is_refused(machine: Path) -> None:
    head = b"POST /v1/switch HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n"
    answer = _raw(machine, head + b"{" * 1000)
    assert answer.startswith(b"HTTP/1.1 413"), answer
    chunked = b"POST /v1/switch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert _raw(machine, chunked).startswith(b"HTTP/1.1 411")
    assert active(machine) is None


def test_a_persona_name_is_never_read_as_a_path(machine: Path, people: People) -> None:
    (machine / "dev.yaml").write_text("name: planted\naccess_controls: {users: [nobody]}\n")
    for name in ("../../etc/passwd", "/etc/passwd", "dev.yaml", "etc"):
        status, answer = request(machine, people.alice, "POST", "/v1/switch", {"persona": name})
        assert status in (404, 422), (name, answer)
    assert active(machine) is None


def test_idle_connections_cannot_exhaust_the_agent(machine: Path, people: People) -> None:
    from mien.agent.local_api import MAX_CONNECTIONS

    idle = []
    try:
        for _ in range(MAX_CONNECTIONS):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(str(machine / "run/mien/agent.sock"))
            idle.append(sock)
        time.sleep(0.5)
        assert _raw(machine, b"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n") == b""
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 10
    while _raw(machine, b"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n") == b"":
        assert time.monotonic() < deadline, "the agent did not recover its connections"
        time.sleep(0.1)


def test_the_cli_goes_through_the_socket_for_a_normal_user(machine: Path, people: People) -> None:
    root = str(machine)
    status, out, err = mien_as(people.alice, "switch", "--list", "--root", root)
    assert status == 0, err
    assert "analyst" in out and "dev" in out and "ops" not in out
    status, out, err = mien_as(people.alice, "switch", "analyst", "--preview", "--root", root)
    assert status == 0 and "/etc/profile.d/mien.sh" in out, err
    status, out, err = mien_as(people.alice, "switch", "analyst", "--root", root)
    assert status == 0 and "switched to analyst" in err, err
    status, out, err = mien_as(people.bob, "switch", "dev", "--root", root)
    assert status == 1 and "may not use persona 'dev'" in err, err
    status, out, err = mien_as(
        people.alice, "customize", "set", "environment_variables.PAGER", "most", "--root", root
    )
    assert status == 0, err
    status, out, err = mien_as(people.bob, "customize", "list", "--root", root)
    assert status == 1 and "may neither read nor change" in err and "most" not in out
    status, out, err = mien_as(people.alice, "customize", "list", "--root", root)
    assert status == 0 and "most" in out, err
    assert (
        'PAGER="most"' in (machine / "etc/profile.d/mien.sh").read_text()
        or "most" in (machine / "etc/profile.d/mien.sh").read_text()
    )


def test_serve_socket_refuses_an_enrolled_root_and_a_planted_file(tmp_path: Path) -> None:
    from tests.support import run_mien

    (tmp_path / "var/lib/mien").mkdir(parents=True)
    (tmp_path / "var/lib/mien/agent.json").write_text("{}")
    done = run_mien("agent", "serve-socket", "--root", tmp_path)
    assert done.returncode == 2 and "is enrolled" in done.stderr
    other = tmp_path / "other"
    (other / "run/mien").mkdir(parents=True)
    (other / "run/mien/agent.sock").write_text("not a socket")
    done = run_mien("agent", "serve-socket", "--root", other)
    assert done.returncode == 1 and "is not a socket" in done.stderr, done.stderr
    assert (other / "run/mien/agent.sock").read_text() == "not a socket"


def test_a_root_deeper_than_a_socket_path_may_be_is_served(tmp_path: Path) -> None:
    from mien.client.local import LocalClient
    from tests.support import make_machine

    deep = tmp_path / ("d" * 60) / ("e" * 60)
    root = make_machine(deep)
    assert len(str(root / "run/mien/agent.sock")) > 108
    log = tmp_path / "agent.log"
    with log.open("ab") as fh:
        proc = subprocess.Popen(
            [*mien_command(), "agent", "serve-socket", "--root", str(root), "--user", "alice"],
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while not (root / "run/mien/agent.sock").is_socket():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        with LocalClient(root) as client:
            me = client.whoami()
        assert me.root and me.persona_user == "alice"
    finally:
        proc.terminate()
        assert proc.wait(30) == 0, log.read_text()


def test_root_without_an_agent_switches_directly(tmp_path: Path) -> None:
    from tests.support import install_zsh, make_machine, run_mien

    root = install_zsh(make_machine(tmp_path / "vm"))
    folder = root / "etc/mien/personas"
    folder.mkdir(parents=True)
    (folder / "ops.yaml").write_text(
        "name: ops\ndescription: Operations\nenvironment_variables: {A: b}\n"
    )
    listed = run_mien("switch", "--list", "--root", root, "--output", "json")
    assert listed.returncode == 0, listed.stderr
    assert [p["name"] for p in json.loads(listed.stdout)["personas"]] == ["ops"]
    done = run_mien("switch", "ops", "--root", root, "--user", "alice")
    assert done.returncode == 0 and "switched to ops" in done.stderr, done.stderr
    assert not (root / "run/mien/agent.sock").exists()
    assert [r["actor"] for r in audit_lines(root) if r["event"] == "persona.activated"] == [
        "local:root"
    ]
    missing = run_mien("switch", "nope", "--root", root)
    assert missing.returncode == 1 and "no persona 'nope'" in missing.stderr
