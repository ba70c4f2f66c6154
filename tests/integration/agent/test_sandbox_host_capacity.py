"""The capacity a sandbox host offers the broker, measured on this machine."""

from __future__ import annotations

from pathlib import Path

from mien.agent.sandbox_host import capacity


def test_capacity_is_measured_before_the_sandboxes_directory_exists(tmp_path: Path) -> None:
    # A fresh host has no sandboxes directory yet: its offer must not fail on that
    # (the host thread died on it and the host never offered anything).
    cores, memory, storage = capacity(tmp_path / "var/lib/mien/sandboxes")
    assert cores >= 1 and memory > 0 and storage > 0
    assert not (tmp_path / "var").exists()
