"""Hand edits of plain-text managed files are kept whole, as the README says.

A line added to a cron job or the dconf keyfile mien writes, or to an application's text
file, survives the next apply and comes back after switching away and back; `mien
customize list` shows it, `show N` prints it, `drop N` lets the persona's content return
and `adopt N` keeps a saved copy again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import make_machine, run_mien

WITH_JOBS = """\
name: jobs
os_settings: {theme: dark}
behavioral_settings: {auto_update_frequency: daily}
application_configuration:
  motd: {path: /etc/motd, content: "Welcome\\n"}
"""
WITHOUT = "name: plain\nenvironment_variables: {A: b}\n"
CRON = "etc/cron.d/mien-auto-update"
KEYFILE = "etc/dconf/db/local.d/50-mien-theme"
MINE = "# mine\n"


@pytest.fixture
def machine(tmp_path: Path) -> tuple[Path, Path]:
    root = make_machine(tmp_path / "root")
    personas = tmp_path / "personas"
    personas.mkdir()
    (personas / "jobs.yaml").write_text(WITH_JOBS)
    (personas / "plain.yaml").write_text(WITHOUT)
    return root, personas


def mien(*args: str | Path) -> str:
    done = run_mien(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def apply(root: Path, personas: Path, name: str) -> str:
    return mien("apply", name, "--root", root, "--personas", personas, "--user", "alice", "--yes")


def test_hand_edits_of_text_files_survive_applies_and_switches(machine: tuple[Path, Path]) -> None:
    root, personas = machine
    apply(root, personas, "jobs")
    edited = {}
    for rel in (CRON, KEYFILE, "etc/motd"):
        path = root / rel
        edited[rel] = path.read_text() + MINE
        path.write_text(edited[rel])
    # Applying the same persona again keeps the edits (and the plan says so).
    plan = mien("plan", "jobs", "--root", root, "--personas", personas, "--user", "alice")
    assert f"/{CRON} was edited: kept whole as your version" in plan
    assert "no changes" in plan
    apply(root, personas, "jobs")
    for rel, text in edited.items():
        assert (root / rel).read_text() == text, rel
    # Away and back: gone with the persona that managed them, back with it.
    apply(root, personas, "plain")
    assert not (root / CRON).exists()
    apply(root, personas, "jobs")
    for rel, text in edited.items():
        assert (root / rel).read_text() == text, rel

    listed = json.loads(mien("customize", "list", "--root", root, "--output", "json"))
    kept = {f["path"]: f for f in listed["saved_files"] if f["kept"]}
    assert sorted(kept) == ["/" + CRON, "/" + KEYFILE, "/etc/motd"]
    assert {f["uid"] for f in kept.values()} == {0}
    cron = kept["/" + CRON]
    table = mien("customize", "list", "--root", root)
    assert f"/{CRON}" in table and "kept" in table

    # show N prints the bytes; drop N lets the persona's content return; adopt N again.
    assert mien("customize", "show", str(cron["id"]), "--root", root) == edited[CRON]
    mien("customize", "drop", str(cron["id"]), "--root", root)
    assert MINE not in (root / CRON).read_text()
    assert (root / "etc/motd").read_text() == edited["etc/motd"]  # the others stay kept
    mien("customize", "adopt", str(cron["id"]), "--root", root)
    assert (root / CRON).read_text() == edited[CRON]


def test_show_caps_what_it_prints_and_unknown_numbers_are_clear(
    machine: tuple[Path, Path],
) -> None:
    root, personas = machine
    apply(root, personas, "jobs")
    big = "x" * 100_000 + "\n"
    (root / "etc/motd").write_text(big)
    apply(root, personas, "jobs")
    listed = json.loads(mien("customize", "list", "--root", root, "--output", "json"))
    (motd,) = [f for f in listed["saved_files"] if f["path"] == "/etc/motd"]
    shown = run_mien("customize", "show", str(motd["id"]), "--root", root)
    assert shown.returncode == 0
    assert shown.stdout == big[: 64 * 1024]
    assert f"{len(big) - 64 * 1024} more bytes not shown" in shown.stderr
    missing = run_mien("customize", "adopt", "99", "--root", root)
    assert missing.returncode == 1
    assert "no saved file #99" in missing.stderr
    assert "Traceback" not in missing.stderr
