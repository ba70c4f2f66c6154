"""``mien recover``: make a machine that needs attention usable again.

When mien cannot guarantee what it would change (its state database is damaged or lost, or
an interrupted transaction could not be undone, as on a full disk), every command that would
change the machine exits with status 3 and names this command. Thin over
:meth:`mien.agent.engine.Engine.recover`; see docs/operations.md.
"""

from __future__ import annotations

from pathlib import Path

import typer

from mien.cli import common
from mien.cli.common import OutputFormat
from mien.cli.machine.commands import OUTPUT, ROOT, USER, _engine, _guard


def recover_cmd(
    start_over: bool = typer.Option(
        False,
        "--start-over",
        help=(
            "Set the state database aside and start afresh (history and the way back to "
            "before mien are lost). Only when the backup cannot be used."
        ),
    ),
    root: Path = ROOT,
    user: str | None = USER,
    output: OutputFormat = OUTPUT,
) -> None:
    """Recover the machine: restore a damaged state database from its backup, then undo an
    interrupted transaction (retried until it succeeds). Exit status 3 while the machine
    still needs attention.

    Examples:
      mien recover
      mien recover --start-over --root /srv/images/kiosk
    """
    engine = _engine(root, user)
    lines = _guard(engine.recover, start_over=start_over)
    if output is OutputFormat.json:
        common.print_json({"recovered": lines, "consistent": True})
        return
    for line in lines:
        common.info(line)
    if not lines:
        common.info(f"nothing to recover on {root}: the machine is consistent")


def register(app: typer.Typer) -> None:
    app.command("recover")(recover_cmd)
