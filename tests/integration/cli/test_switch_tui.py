"""The terminal UI of ``mien switch``: driven by Textual's headless pilot as a normal user
(a forked child that became alice) against a real agent socket on a temp root, and once
through a real terminal (tmux), reading what is drawn and checking the switch happened.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import mien_command, run_mien
from tests.switching_support import (
    People,
    as_user,
    host_people,
    reachable_root,
    serve_socket,
    write_personas,
)

MARKUP = "[bold red]loud[/] <script>alert(1)</script>"


@pytest.fixture(scope="module")
def people() -> Iterator[People]:
    with host_people() as made:
        yield made


@pytest.fixture
def machine(people: People, tmp_path: Path) -> Iterator[Path]:
    root = reachable_root(people)
    folder = write_personas(root, people)
    text = (folder / "analyst.yaml").read_text()
    (folder / "analyst.yaml").write_text(
        text.replace("description: Numbers and notebooks", f"description: '{MARKUP}'")
    )
    proc = serve_socket(root, people.alice.name, tmp_path / "agent.log")
    try:
        yield root
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
        assert "Traceback" not in (tmp_path / "agent.log").read_text()
        shutil.rmtree(root)


def _drive(root: Path) -> dict[str, Any]:
    """Alice's session in the UI; what it showed at each step."""
    from textual.widgets import DataTable, ListView, Static

    from mien.cli.machine.local_backend import Socket
    from mien.cli.machine.switch_tui import PersonaItem, SwitchApp

    seen: dict[str, Any] = {}

    async def until(pilot: Any, check: Any, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await pilot.pause(0.1)

    def status(app: SwitchApp) -> str:
        return str(app.query_one("#status", Static).render())

    async def session() -> None:
        app = SwitchApp(Socket(root))  # type: ignore[arg-type]
        async with app.run_test(size=(120, 40)) as pilot:
            view = app.query_one("#personas", ListView)
            await until(pilot, lambda: len(view.children) == 2, "the personas")
            seen["personas"] = [i.text.plain for i in view.children if isinstance(i, PersonaItem)]
            seen["names"] = [i.candidate.name for i in view.children if isinstance(i, PersonaItem)]
            view.index = seen["names"].index("dev")
            await pilot.press("p")
            preview = app.query_one("#preview", Static)
            await until(pilot, lambda: "change" in str(preview.render()), "the preview")
            seen["preview"] = str(preview.render())
            await pilot.press("s")
            await until(pilot, lambda: "switched to dev" in status(app), "the switch")
            await until(pilot, lambda: app.active == "dev", "the refresh")
            seen["after_switch"] = [
                i.text.plain for i in view.children if isinstance(i, PersonaItem)
            ]
            view.index = seen["names"].index("analyst")
            await pilot.press("s")
            await until(pilot, lambda: "switched to analyst" in status(app), "the second switch")
            await until(pilot, lambda: app.active == "analyst", "the refresh")
            history = app.query_one("#history", DataTable)
            await until(pilot, lambda: history.row_count == 2, "the history")
            await pilot.press("tab")  # leave the list; the history table takes the keys
            app.query_one("#tabs").active = "tab-history"
            history.focus()
            history.move_cursor(row=1)
            await pilot.press("r")
            await until(pilot, lambda: "rolled back" in status(app), "the rollback")
            seen["rollback"] = status(app)
            app.query_one("#tabs").active = "tab-custom"
            box = app.query_one("#custom-input")
            box.focus()
            await pilot.press(*"os_settings.theme=light", "enter")
            await until(pilot, lambda: "customization" in status(app), "the customization")
            custom = app.query_one("#custom", DataTable)
            await until(pilot, lambda: custom.row_count == 1, "the customizations table")
            seen["custom"] = [str(c) for c in custom.get_row_at(0)]
            seen["active"] = app.active
            await pilot.press("q")

    asyncio.run(session())
    return seen


def _warm_up(root: Path) -> None:
    """Load what the UI imports lazily while still root: after setuid the child cannot read
    an interpreter that lives in root's home."""
    import termios  # noqa: F401
    import tty  # noqa: F401

    import yaml  # noqa: F401
    from textual.widgets import ListView, Static

    from mien.cli.machine.local_backend import Socket
    from mien.cli.machine.switch_tui import SwitchApp

    async def session() -> None:
        app = SwitchApp(Socket(root))  # type: ignore[arg-type]
        async with app.run_test(size=(120, 40)) as pilot:
            view = app.query_one("#personas", ListView)
            deadline = time.monotonic() + 60
            while len(view.children) < 3 and time.monotonic() < deadline:
                await pilot.pause(0.1)
            await pilot.press("p")
            preview = app.query_one("#preview", Static)
            while "change" not in str(preview.render()) and time.monotonic() < deadline:
                await pilot.pause(0.1)
            app.query_one("#tabs").active = "tab-history"
            await pilot.pause(0.2)
            app.query_one("#tabs").active = "tab-custom"
            await pilot.pause(0.2)
            await pilot.press("q")

    asyncio.run(session())


def test_the_pilot_switches_rolls_back_and_customizes_as_alice(
    machine: Path, people: People
) -> None:
    _warm_up(machine)
    seen = as_user(people.alice, lambda: _drive(machine), timeout=300)
    assert seen["names"] == ["analyst", "dev"]  # ops lists nobody: not offered to alice
    assert any(MARKUP in label for label in seen["personas"]), seen["personas"]  # text, not markup
    assert "/etc/profile.d/mien.sh" in seen["preview"]
    assert any(label.startswith("● dev") and "(active)" in label for label in seen["after_switch"])
    assert "rolled back" in seen["rollback"] and seen["active"] == "dev"
    assert seen["custom"][:2] == ["os_settings.theme", '"light"']
    state = json.loads(run_mien("status", "--root", machine, "--output", "json").stdout)
    assert state["active"] == "dev" and state["customizations"] == 1
    actors = {
        json.loads(line)["actor"]
        for line in (machine / "var/log/mien/audit.jsonl").read_text().splitlines()
    }
    assert actors == {f"local:{people.alice.name}"}


def test_through_a_real_terminal(machine: Path, tmp_path: Path) -> None:
    if not shutil.which("tmux"):
        pytest.skip("tmux is not installed (scripts/system-deps installs it)")
    session = f"mien-switch-{tmp_path.name[-20:]}"
    command = " ".join([*mien_command(), "switch", "--root", str(machine)])
    subprocess.run(
        ["tmux", "new-session", "-d", "-x", "120", "-y", "40", "-s", session, command],
        check=True,
        env={"PATH": "/usr/bin:/bin", "TERM": "xterm-256color", "HOME": str(tmp_path)},
    )

    def screen() -> str:
        done = subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", session],
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout

    def until(text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            drawn = screen()
            if text in drawn:
                return drawn
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never drawn; the screen:\n{drawn}")
            time.sleep(0.2)

    try:
        drawn = until("ops")  # root (through the socket) is offered every persona
        assert "mien switch" in drawn and "analyst" in drawn and "dev" in drawn
        assert "Preview" in drawn and "History" in drawn and "Customizations" in drawn
        subprocess.run(["tmux", "send-keys", "-t", session, "Down"], check=True)
        until("/etc/profile.d/mien.sh")  # the preview of dev
        subprocess.run(["tmux", "send-keys", "-t", session, "s"], check=True)
        drawn = until("switched to dev")
        until("● dev")
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, check=False)
    state = json.loads(run_mien("status", "--root", machine, "--output", "json").stdout)
    assert state["active"] == "dev"
