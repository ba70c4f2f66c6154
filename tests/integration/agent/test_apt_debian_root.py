"""apt on a real Debian root: ``mien apply`` installs ``jq`` through chroot, and ``mien
rollback --to 0`` takes back jq *and* what apt pulled in with it (``libjq1``,
``libonig5``), leaving the root's package set as it was.

The root is a Debian bookworm ``minbase`` built once with ``mmdebstrap`` and cached as a
tarball under ``~/.cache/mien-test``, named by the hash of how it was built, so later runs
only unpack it (seconds); the first build downloads from the Debian archive (a few
minutes). jq itself comes from the archive too. Skips, saying why, when not root, when
``mmdebstrap`` is missing (``scripts/system-deps`` installs it) or when the archive cannot
be reached.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mien.agent.handlers.apt import STATUS, parse_status
from tests.support import run_mien

SUITE = "bookworm"
VARIANT = "minbase"
MIRROR = "http://deb.debian.org/debian"
CACHE = Path.home() / ".cache" / "mien-test"


def _debian_root_tarball() -> Path:
    """The cached root tarball, built on first use; skips when it cannot be."""
    if os.geteuid() != 0:
        pytest.skip("needs root (mmdebstrap, chroot and dpkg inside the root)")
    if shutil.which("mmdebstrap") is None:
        pytest.skip("needs mmdebstrap (scripts/system-deps installs it)")
    recipe = f"{SUITE} {VARIANT} {MIRROR}"
    tarball = (
        CACHE / f"debian-{SUITE}-{VARIANT}-{hashlib.sha256(recipe.encode()).hexdigest()[:16]}.tar"
    )
    if tarball.is_file():
        return tarball
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(f".{os.getpid()}.partial.tar")
    try:
        built = subprocess.run(
            ["mmdebstrap", f"--variant={VARIANT}", "--quiet", SUITE, str(partial), MIRROR],
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
    except subprocess.TimeoutExpired:
        partial.unlink(missing_ok=True)
        pytest.skip("mmdebstrap took more than 20 minutes (is the Debian archive reachable?)")
    if built.returncode != 0:
        partial.unlink(missing_ok=True)
        pytest.skip(
            f"mmdebstrap could not build a Debian root (no network?): {built.stderr[-300:]}"
        )
    partial.rename(tarball)  # only a complete build is ever found in the cache
    return tarball


def _installed(root: Path) -> dict[str, str]:
    return parse_status((root / STATUS.lstrip("/")).read_text())[0]


@pytest.mark.root
@pytest.mark.slow
def test_rollback_takes_back_the_dependencies_apt_pulled_in(tmp_path: Path) -> None:
    tarball = _debian_root_tarball()
    root = tmp_path / "debian"
    root.mkdir()
    subprocess.run(["tar", "-xf", str(tarball), "-C", str(root)], check=True)
    shutil.copy("/etc/resolv.conf", root / "etc" / "resolv.conf")  # apt inside resolves names
    before = _installed(root)
    assert "jq" not in before and "libjq1" not in before

    persona = tmp_path / "jq-tools.yaml"
    persona.write_text("name: jq-tools\nrequired_applications:\n  - name: jq\n    manager: apt\n")
    applied = run_mien("apply", persona, "--root", root, "--user", "root", "--yes", timeout=900)
    if applied.returncode != 0 and "Temporary failure resolving" in applied.stderr:
        pytest.skip("the Debian archive cannot be reached from the root (no network)")
    assert applied.returncode == 0, applied.stderr
    during = _installed(root)
    assert {"jq", "libjq1", "libonig5"} <= set(during)

    rolled = run_mien("rollback", "--to", "0", "--root", root, "--yes", timeout=900)
    assert rolled.returncode == 0, rolled.stderr
    after = _installed(root)
    assert set(after) == set(before), sorted(set(after) ^ set(before))
    assert after == before
