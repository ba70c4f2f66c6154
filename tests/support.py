"""Helpers shared by every test tier: throw-away machine roots, the real ``mien`` command,
and byte-for-byte snapshots of a tree. Fixtures wrapping them are in ``conftest.py``.

A *machine root* is a directory laid out like a small Debian system (``etc/passwd`` with a
persona user, ``etc/shells``, a home directory) that ``--root`` points mien at, so tests run
the real agent against real files without touching the machine running them.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "personas"
STATE_PARTS = ("var/lib/mien", "var/log/mien")

PASSWD = """\
root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
alice:x:1000:1000:Alice Example,,,:/home/alice:/bin/bash
bob:x:1001:1001:Bob Example,,,:/home/bob:/bin/sh
"""
GROUP = "root:x:0:\nalice:x:1000:\nbob:x:1001:\n"
SHELLS = (
    "# /etc/shells: valid login shells\n/bin/sh\n/bin/bash\n/usr/bin/bash\n/bin/zsh\n/usr/bin/zsh\n"
)


def make_machine(root: Path) -> Path:
    """Lay out a minimal machine under ``root`` and return it."""
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    (root / "etc" / "shells").write_text(SHELLS)
    for user, uid in (("alice", 1000), ("bob", 1001)):
        home = root / "home" / user
        home.mkdir(parents=True, exist_ok=True)
        (home / ".profile").write_text("# ~/.profile\n")
        if os.geteuid() == 0:
            os.chown(home, uid, uid)
            os.chown(home / ".profile", uid, uid)
    return root


def install_zsh(root: Path) -> Path:
    """A stand-in ``/bin/zsh`` in ``root``: the developer example logs in with zsh, and mien
    refuses a login shell the root does not have."""
    zsh = root / "bin" / "zsh"
    zsh.parent.mkdir(parents=True, exist_ok=True)
    zsh.write_text("#!/bin/sh\n")
    zsh.chmod(0o755)
    return root


Tree = dict[str, tuple[str, int, bytes | None]]


def snapshot(root: Path, *, include_state: bool = False) -> Tree:
    """Every entry under ``root``: kind, permission bits and (for files) the bytes.

    mien's own state (``var/lib/mien``, ``var/log/mien``) is left out unless asked for:
    it records what happened, and is expected to change.
    """
    out: Tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if not include_state and any(
            rel_dir == p or rel_dir.startswith(p + "/") for p in STATE_PARTS
        ):
            dirnames[:] = []
            continue
        for name in dirnames:
            st = os.lstat(os.path.join(dirpath, name))
            out[os.path.normpath(os.path.join(rel_dir, name))] = (
                "dir",
                stat.S_IMODE(st.st_mode),
                None,
            )
        for name in filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            content = Path(full).read_bytes() if stat.S_ISREG(st.st_mode) else None
            out[os.path.normpath(os.path.join(rel_dir, name))] = (
                "file",
                stat.S_IMODE(st.st_mode),
                content,
            )
    for part in STATE_PARTS if not include_state else ():
        # Parents of the state directories exist because of mien; ignore them too.
        p = Path(part)
        while str(p) != ".":
            out.pop(str(p), None)
            p = p.parent
    return out


def tree_diff(a: Tree, b: Tree) -> list[str]:
    """Human-readable differences between two snapshots (empty when identical)."""
    lines = []
    for key in sorted(set(a) | set(b)):
        if key not in a:
            lines.append(f"+ {key}")
        elif key not in b:
            lines.append(f"- {key}")
        elif a[key] != b[key]:
            lines.append(f"~ {key}: {a[key][:2]} -> {b[key][:2]}")
    return lines


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def mien_command() -> list[str]:
    exe = Path(sys.executable).with_name("mien")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "mien.cli.main"]


def run_mien(
    *args: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    input: str | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> Run:
    """Run the real ``mien`` command; never raises on a non-zero status."""
    environment = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    proc = subprocess.run(
        [*mien_command(), *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
        input=input,
        cwd=cwd,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def needs_root() -> pytest.MarkDecorator:
    return pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, chroot or cgroups)")


def npm_registry_or_skip() -> None:
    """Skip, saying why, unless npm is installed and its registry answers (``semver``)."""
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed (apt-get install nodejs npm)")
    try:
        seen = subprocess.run(
            ["npm", "view", "semver@7.6.0", "version"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.skip("the npm registry did not answer in 60 s (no network to it?)")
    if seen.returncode != 0 or seen.stdout.strip() != "7.6.0":
        pytest.skip(f"the npm registry is not reachable: {seen.stderr.strip()[-300:]}")
