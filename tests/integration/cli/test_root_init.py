"""``mien root init``: a directory becomes a machine root a persona can be applied to, and
running it again, or on a tree that has some of it, keeps what is there."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.support import EXAMPLES, install_zsh, run_mien, snapshot


def test_init_makes_a_root_a_persona_applies_to(tmp_path: Path) -> None:
    root = tmp_path / "srv" / "vm1"
    made = run_mien("root", "init", root, "--user", "alice")
    assert made.returncode == 0, made.stderr
    assert "alice:x:1000:1000:alice:/home/alice:/bin/bash" in (root / "etc/passwd").read_text()
    assert "alice:x:1000:" in (root / "etc/group").read_text()
    assert "/bin/bash" in (root / "etc/shells").read_text().split()
    assert (root / "home/alice/.profile").is_file()
    if os.geteuid() == 0:
        assert (root / "home/alice").stat().st_uid == 1000
    developer = EXAMPLES / "persona_developer.yml"
    refused = run_mien("apply", developer, "--root", root, "--user", "alice", "--yes")
    assert refused.returncode != 0  # it logs in with zsh, which this root does not have
    assert "os_settings.terminal_shell: /bin/zsh is listed" in refused.stderr
    install_zsh(root)
    applied = run_mien("apply", developer, "--root", root, "--user", "alice", "--yes")
    assert applied.returncode == 0, applied.stderr


def test_init_again_changes_nothing_and_adds_a_missing_user(tmp_path: Path) -> None:
    root = tmp_path / "vm"
    assert run_mien("root", "init", root, "--user", "alice").returncode == 0
    before = snapshot(root)
    again = run_mien("root", "init", root, "--user", "alice", "--output", "json")
    assert again.returncode == 0
    assert json.loads(again.stdout)["created"] == []
    assert snapshot(root) == before
    bob = json.loads(run_mien("root", "init", root, "--user", "bob", "--output", "json").stdout)
    assert (bob["uid"], bob["home"]) == (1001, "/home/bob")
    passwd = (root / "etc/passwd").read_text().splitlines()
    assert [line.split(":")[0] for line in passwd] == ["root", "alice", "bob"]


def test_init_refuses_bad_input_and_changes_nothing(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = tmp_path / "vm"
    root.mkdir()
    (root / "etc").symlink_to(elsewhere)
    linked = run_mien("root", "init", root, "--user", "alice")
    assert linked.returncode == 1
    assert "symbolic link" in linked.stderr and "Traceback" not in linked.stderr
    assert list(elsewhere.iterdir()) == []
    for args, message in (
        (["--user", "Alice:0"], "not a user name"),
        (["--user", "alice", "--shell", "bash"], "not an absolute path"),
    ):
        bad = run_mien("root", "init", tmp_path / "new", *args)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr
        assert not (tmp_path / "new").exists()
    slash = run_mien("root", "init", "/", "--user", "alice", "--output", "json")
    assert slash.returncode == 2
    assert json.loads(slash.stderr)["code"] == "usage"
