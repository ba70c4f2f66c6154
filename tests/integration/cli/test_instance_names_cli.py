"""Instances by names people choose: ``mien agent enroll --instance-id ID`` and a host name
wherever an instance is named (``mien instance show web-a``), when it names one instance;
a host name shared by several is refused with the candidates listed."""

from __future__ import annotations

import json
from pathlib import Path

from cli_harness import Cli

from mien.client import Client
from tests.support import make_machine


def _enroll(cli: Cli, admin: Client, root: Path, *extra: str) -> tuple[int, str, str]:
    token = admin.create_token(f"enroll-{root.name}", kind="enroll", uses=1).token
    make_machine(root)
    result = cli("agent", "enroll", "--token", token, "--root", root, *extra, token=None)
    return result.returncode, result.stdout, result.stderr


def _enrolled_id(root: Path) -> str:
    return str(json.loads((root / "var/lib/mien/agent.json").read_text())["instance_id"])


def test_enroll_with_an_instance_id_and_name_it_by_host_name(
    cli: Cli, admin: Client, tmp_path: Path
) -> None:
    rc, _out, err = _enroll(
        cli, admin, tmp_path / "a", "--instance-id", "vm-0042", "--hostname", "web-a"
    )
    assert rc == 0, err
    assert "enrolled as instance vm-0042" in err
    assert _enrolled_id(tmp_path / "a") == "vm-0042"
    assert admin.get_instance("vm-0042").hostname == "web-a"

    # The same id again is refused, naming it; a malformed one names the option.
    rc, _out, err = _enroll(cli, admin, tmp_path / "b", "--instance-id", "vm-0042")
    assert rc == 1 and "vm-0042" in err and "already enrolled" in err
    rc, _out, err = _enroll(cli, admin, tmp_path / "c", "--instance-id", "bad id/../x")
    assert rc == 2 and "--instance-id" in err

    # The host name works wherever an instance is named.
    shown = cli("instance", "show", "web-a", "-o", "json")
    assert shown.returncode == 0, shown.out
    assert json.loads(shown.stdout)["instance"]["id"] == "vm-0042"
    tagged = cli("instance", "tag", "web-a", "role=web")
    assert tagged.returncode == 0, tagged.out
    assert admin.get_instance("vm-0042").tags["role"] == "web"
    assert cli("instance", "effective", "web-a").returncode == 0
    assert cli("instance", "commands", "web-a").returncode == 0
    # An id wins over a host name.
    assert cli("instance", "show", "vm-0042").returncode == 0

    missing = cli("instance", "show", "no-such-host")
    assert missing.returncode == 1
    assert (
        "instance 'no-such-host' not found (no instance has that id or host name)" in missing.stderr
    )


def test_a_shared_host_name_is_refused_with_the_candidates(
    cli: Cli, admin: Client, tmp_path: Path
) -> None:
    for i in (1, 2):
        rc, _out, err = _enroll(
            cli, admin, tmp_path / f"d{i}", "--instance-id", f"dup-{i}", "--hostname", "twin"
        )
        assert rc == 0, err
    shown = cli("instance", "show", "twin")
    assert shown.returncode == 1
    assert "host name 'twin' names 2 instances: dup-1, dup-2" in shown.stderr
    assert cli("instance", "delete", "twin").returncode == 1
    assert {i.id for i in admin.list_instances()} >= {"dup-1", "dup-2"}
