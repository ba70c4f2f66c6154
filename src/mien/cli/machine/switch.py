"""``mien switch``: change this machine's persona as the person at it, without root.

With a name it switches (``--preview`` shows the plan instead); with no argument it opens
the terminal UI (:mod:`mien.cli.machine.switch_tui`). A normal user goes through the
agent's socket, which acts for them as the kernel identifies them; root goes through the
socket where an agent serves it (on a fleet machine the switch becomes a request to the
server) and applies directly where none does. See docs/switching.md.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import typer

from mien.cli import common
from mien.cli.common import OutputFormat
from mien.cli.machine.commands import OUTPUT, ROOT, USER

HELP = (
    "Switch this machine's persona, as yourself (no root needed).\n\n"
    "  mien switch                   # the terminal UI\n"
    "  mien switch --list            # personas you may use (* = active)\n"
    "  mien switch analyst --preview # what switching would change\n"
    "  mien switch analyst           # switch (fleet: asks the server)\n"
    "  mien switch --history         # applied states\n"
    "  mien switch --rollback 3      # back to entry 3\n\n"
    "You may switch to a persona whose access_controls.users names you or one of your groups "
    "(group:NAME); root may switch to any. The agent serves ROOT/run/mien/agent.sock "
    "(`mien agent run`, or `mien agent serve-socket` on a machine without a fleet) and "
    "learns who you are from the kernel. See docs/switching.md."
)


def _fail(exc: Exception) -> None:
    common.fail(str(exc), getattr(exc, "status", 1))


def switch_cmd(
    persona: str | None = typer.Argument(
        None, help="The persona to switch to (none: open the terminal UI)."
    ),
    preview: bool = typer.Option(False, "--preview", help="Print the plan; change nothing."),
    list_: bool = typer.Option(False, "--list", "-l", help="List the personas you may use."),
    history: bool = typer.Option(False, "--history", help="List the applied states."),
    rollback: int | None = typer.Option(
        None, "--rollback", metavar="N", help="Return to history entry N (a switch to its persona)."
    ),
    wait: float = typer.Option(
        60.0, "--wait", min=0.0, max=600.0, help="Seconds to wait for a fleet switch to apply."
    ),
    root: Path = ROOT,
    user: str | None = USER,
    output: OutputFormat = OUTPUT,
) -> None:
    from mien.cli.machine.local_backend import BackendError, backend

    if persona is None and not (list_ or history or rollback is not None):
        if preview:
            common.fail("--preview needs a persona name: mien switch NAME --preview", 2)
        from mien.cli.machine.switch_tui import run_tui

        raise typer.Exit(run_tui(root, user))
    face = backend(root, user)
    try:
        if list_:
            items = face.personas()
            active = face.active()
            if output is OutputFormat.json:
                common.print_json(
                    {"active": active, "personas": [c.model_dump(mode="json") for c in items]}
                )
                return
            if not items:
                common.info("no persona you may switch to (see `mien switch --help`)")
                return
            common.table(
                ["", "persona", "description"],
                [["*" if c.name == active else "", c.name, c.description or ""] for c in items],
                title="personas you may switch to",
            )
        elif history:
            entries = face.history()
            if output is OutputFormat.json:
                common.print_json([e.model_dump(mode="json") for e in entries])
                return
            common.table(
                ["#", "persona", "kind", "applied", "note", ""],
                [
                    [
                        e.id,
                        e.persona or "-",
                        e.kind,
                        dt.datetime.fromtimestamp(e.applied_at).isoformat(timespec="seconds"),
                        e.note or "",
                        "current" if e.current else ("may roll back" if e.may_roll_back else ""),
                    ]
                    for e in entries
                ],
                title="history",
            )
        elif rollback is not None:
            _outcome(face.rollback(rollback, wait), output)
        elif preview:
            assert persona is not None
            plan = face.preview(persona)
            if output is OutputFormat.json:
                common.print_json(plan.model_dump(mode="json"))
                return
            common.info(
                f"switching {plan.active or '(no persona)'} → {plan.persona}: "
                f"{plan.changes} change{'s' * (plan.changes != 1)}"
            )
            for line in plan.lines:
                print(f"  {line.action:<8} {line.target}  {line.detail}".rstrip())
            for note in plan.notes:
                print(f"  note: {note}")
        else:
            assert persona is not None
            _outcome(face.switch(persona, wait), output)
    except BackendError as exc:
        _fail(exc)
    finally:
        face.close()


def _outcome(outcome: object, output: OutputFormat) -> None:
    from mien.protocol.switching import Outcome

    assert isinstance(outcome, Outcome)
    if output is OutputFormat.json:
        print(json.dumps(outcome.model_dump(mode="json"), indent=2))
    else:
        common.info(outcome.message)
    if not outcome.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("switch", help=HELP)(switch_cmd)
