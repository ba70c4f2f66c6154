"""The agent keeps one state connection for its life while each apply opens another, and
other ``mien`` processes open the same database meanwhile. Nothing mien does may drop the
process's SQLite locks (closing any other descriptor of the database file does, by POSIX
rules), or another process checkpoints the WAL from under the long-lived connection and
the next read fails with "disk I/O error"."""

from __future__ import annotations

from pathlib import Path

from mien.agent.engine import Engine
from mien.agent.state import State
from tests.support import EXAMPLES, install_zsh, run_mien


def test_other_processes_never_pull_the_wal_from_under_a_long_lived_connection(
    machine: Path,
) -> None:
    engine = Engine(install_zsh(machine), user="alice")
    assert engine.apply(EXAMPLES / "persona_developer.yml").applied
    with State(machine) as held:  # as the agent's loop holds it
        with held.transaction():
            held.set_meta("probe", "1")
        for persona in ("test-runner.json", "persona_developer.yml"):
            status = run_mien("status", "--root", machine)
            assert status.returncode == 0, status.stderr
            with held.transaction():
                held.set_meta("probe", persona)
            assert engine.apply(EXAMPLES / persona).applied
            assert held.get_meta("probe") == persona
