"""Local persona commands: ``mien plan | apply | status | history | rollback`` (``customize``,
which shares their options, is :mod:`mien.cli.machine.customize`).

Thin over :class:`mien.agent.engine.Engine`: parse options, call one engine method, print
the result (Rich for people, ``--output json`` for scripts). Every command takes
``--root DIR`` (default ``/``) and ``--user NAME`` (the persona user; remembered after the
first apply).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from mien.cli import common
from mien.cli.common import OutputFormat, esc
from mien.cli.machine.output import print_notes, print_plan, print_result, recovered

if TYPE_CHECKING:
    from mien.agent.engine import ApplyResult, Engine
    from mien.agent.plan import Plan

ROOT = typer.Option(
    Path("/"),
    "--root",
    help="Machine root to manage (a directory for tests and images).",
    show_default=True,
)
USER = typer.Option(
    None,
    "--user",
    "-u",
    help="The persona user (whose shell, home and settings are set). Remembered after the first apply.",
)
PERSONAS = typer.Option(
    [],
    "--personas",
    "-p",
    help="Directory of persona files to find names in (repeatable). Default: ROOT/etc/mien/personas.",
)
OVERLAYS = typer.Option(
    [], "--overlay", "-o", help="Overlay file composed over the persona (repeatable, later wins)."
)
# Exit status of every command while the machine needs `mien recover` (see docs/operations.md).
NEEDS_ATTENTION = 3
OUTPUT = typer.Option(OutputFormat.table, "--output", help="table for people, json for scripts.")


def _engine(root: Path, user: str | None, personas: list[Path] | None = None) -> Engine:
    from mien.agent.engine import Engine, EngineError

    try:
        return Engine(root, user=user, personas=personas or ())
    except EngineError as exc:
        common.fail(str(exc), 2)


def _guard(func: Any, *args: Any, **kwargs: Any) -> Any:
    """Run an engine call, turning expected failures into messages."""
    from mien.agent.engine import EngineError, NeedsAttention
    from mien.agent.handlers.base import HandlerError
    from mien.agent.state import Busy
    from mien.agent.transaction import ApplyFailed
    from mien.spec.errors import SpecError

    try:
        return func(*args, **kwargs)
    except NeedsAttention as exc:
        common.fail(f"the machine needs attention: {exc}", NEEDS_ATTENTION)
    except SpecError as exc:
        common.fail("\n".join(str(p) for p in exc.problems))
    except ApplyFailed as exc:
        common.fail(f"apply failed at {exc}; nothing was changed")
    except (EngineError, HandlerError, Busy) as exc:
        common.fail(str(exc))
    except PermissionError as exc:
        common.fail(
            f"permission denied: {exc.filename or exc} (run as root, or use --root on a directory you own)"
        )


def plan_cmd(
    persona: str = typer.Argument(
        ..., help="Persona file, or a name found in the personas directories."
    ),
    root: Path = ROOT,
    user: str | None = USER,
    personas: list[Path] = PERSONAS,
    overlay: list[Path] = OVERLAYS,
    diff: bool = typer.Option(
        True, "--diff/--no-diff", help="Show unified diffs of file contents."
    ),
    output: OutputFormat = OUTPUT,
) -> None:
    """Show what applying PERSONA would change, resource by resource. Touches nothing.

    Example: mien plan developer --root /srv/images/dev --user alice
    """
    engine = _engine(root, user, personas)
    plan = _guard(engine.plan, persona, overlay)
    recovered(engine.recovered)
    if output is OutputFormat.json:
        common.print_json(plan.as_dict())
    else:
        print_plan(plan, diff=diff)


def apply_cmd(
    persona: str | None = typer.Argument(
        None, help="Persona file, or a name found in the personas directories."
    ),
    default: bool = typer.Option(
        False, "--default", help="Apply the persona marked default_persona (first boot)."
    ),
    yes: bool = typer.Option(
        False, "--yes", "-y", help="Apply without asking (required when not on a terminal)."
    ),
    root: Path = ROOT,
    user: str | None = USER,
    personas: list[Path] = PERSONAS,
    overlay: list[Path] = OVERLAYS,
    output: OutputFormat = OUTPUT,
) -> None:
    """Apply PERSONA as one transaction: all of it, or nothing.

    Your edits of managed files are kept (as customizations, or saved copies) before
    anything is overwritten; a failing post_activation_script undoes every change.

    Examples:
      mien apply developer --user alice
      mien apply ./personas/kiosk.yaml --root /srv/images/kiosk --user kiosk --yes
      mien apply --default --yes
    """
    if (persona is None) == (not default):
        common.fail("give a PERSONA or --default (not both)", 2)
    engine = _engine(root, user, personas)
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    if not yes and not interactive:
        common.fail("refusing to apply without confirmation when not on a terminal: pass --yes", 2)

    def confirm(plan: Plan) -> bool:
        if yes:
            return True
        print_plan(plan)
        return typer.confirm("Apply these changes?", default=False)

    from mien.agent.handlers import programs

    launched = programs.Launches.count
    result = _guard(engine.apply, persona, overlay, confirm=confirm)
    if not result.applied and not result.recovered and programs.Launches.count == launched:
        _remember_noop(engine, result.plan.persona, persona, root, user, personas, overlay)
    if output is OutputFormat.json:
        common.print_json(_result_json(result))
        return
    print_result(result)
    if result.applied:  # a no-op stays quiet; `mien status` shows the notes any time
        print_notes(
            result.plan.outcomes(),
            stderr=True,
        )


def _remember_noop(
    engine: Engine,
    name: str,
    persona: str | None,
    root: Path,
    user: str | None,
    personas: list[Path],
    overlays: list[Path],
) -> None:
    """Record what this no-op rested on, so the next identical apply answers at once."""
    import contextlib
    import os

    from mien.agent import noop

    ctx = engine.noop_context
    if ctx is None or os.environ.get("MIEN_CRASH_AT"):
        return
    files = [*engine.catalog.loaded(), *engine.catalog.dirs, *overlays]
    if persona is not None and ("/" in persona or Path(persona).suffix):
        files.append(Path(persona))
    key = noop.invocation_key(
        persona=persona, root=root, user=user, personas=personas, overlays=overlays
    )
    # Only an optimisation: if it cannot be recorded, the next apply plans in full.
    with contextlib.suppress(OSError):
        noop.record(root, key, name, ctx.observed, (str(f) for f in files))


def _result_json(result: ApplyResult) -> dict[str, Any]:
    return {
        "persona": result.plan.persona,
        "hash": result.plan.hash,
        "applied": result.applied,
        "history": result.history_id,
        "elapsed_ms": round(result.elapsed_ms, 3),
        "plan": result.plan.as_dict(),
        "warnings": result.warnings,
        "recovered": result.recovered,
    }


def status_cmd(root: Path = ROOT, user: str | None = USER, output: OutputFormat = OUTPUT) -> None:
    """Show the active persona, when it was applied, drift, pending and stored settings."""
    import datetime as dt

    engine = _engine(root, user)
    st = _guard(engine.status)
    if output is OutputFormat.json:
        common.print_json(
            {
                "root": str(st.root),
                "user": st.user,
                "active": st.active,
                "hash": st.hash,
                "history": st.history.id if st.history else None,
                "applied_at": st.history.applied_at if st.history else None,
                "drift": st.drift,
                "notes": st.notes,
                "customizations": st.customizations,
                "saved_files": st.saved_files,
                "managed_files": st.managed,
                "recovered": st.recovered,
            }
        )
        return
    recovered(st.recovered)
    con = common.console()
    if not st.active:
        con.print(f"no persona is active on {st.root}")
        return
    when = (
        dt.datetime.fromtimestamp(st.history.applied_at).isoformat(timespec="seconds")
        if st.history
        else "?"
    )
    con.print(f"persona   [bold]{st.active}[/]  [dim]{(st.hash or '')[:19]}[/]")
    con.print(
        f"applied   {when} (history #{st.history.id if st.history else '?'}, {st.history.kind if st.history else ''})"
    )
    con.print(f"user      {st.user}")
    con.print(
        f"managed   {st.managed} files; {st.customizations} customizations; {st.saved_files} saved files"
    )
    if st.drift:
        con.print(
            f"[magenta]drift[/]     {len(st.drift)} managed files changed since mien wrote them:"
        )
        for path in st.drift:
            con.print(f"  {esc(path)}")
        con.print("          (kept on the next apply: `mien customize list` shows what)")
    else:
        con.print("drift     none")
    print_notes(st.notes)


def history_cmd(
    root: Path = ROOT,
    limit: int = typer.Option(50, help="Most entries to show."),
    output: OutputFormat = OUTPUT,
) -> None:
    """List every applied state; any of them can be restored with `mien rollback --to N`."""
    import datetime as dt

    engine = _engine(root, None)
    entries, current = _guard(engine.history, limit)
    if output is OutputFormat.json:
        common.print_json(
            [
                {
                    "id": e.id,
                    "persona": e.persona,
                    "hash": e.hash,
                    "kind": e.kind,
                    "applied_at": e.applied_at,
                    "note": e.note,
                    "current": e.id == current,
                }
                for e in entries
            ]
        )
        return
    rows = [
        [
            ("* " if e.id == current else "  ") + str(e.id),
            e.persona or "(none)",
            e.kind + (f" {e.note}" if e.note else ""),
            dt.datetime.fromtimestamp(e.applied_at).isoformat(timespec="seconds"),
            e.hash[7:19],
        ]
        for e in entries
    ]
    if not rows:
        common.info("no persona has been applied on this root yet")
        return
    common.table(["#", "persona", "what", "when", "hash"], rows)


def rollback_cmd(
    to: int | None = typer.Option(
        None,
        "--to",
        help="History entry to restore (see `mien history`); 0 = before mien. Default: the entry before the current one.",
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask."),
    root: Path = ROOT,
    user: str | None = USER,
    output: OutputFormat = OUTPUT,
) -> None:
    """Restore an earlier applied state byte for byte (files, customizations, packages)."""
    engine = _engine(root, user)
    if not yes and not (sys.stdin.isatty() and sys.stdout.isatty()):
        common.fail(
            "refusing to roll back without confirmation when not on a terminal: pass --yes", 2
        )
    if not yes and not typer.confirm(
        f"Roll back {root} to {'entry #' + str(to) if to is not None else 'the previous entry'}?",
        default=False,
    ):
        common.fail("nothing changed", 1)
    result = _guard(engine.rollback, to)
    recovered(result.recovered)
    if output is OutputFormat.json:
        common.print_json(_result_json(result))
        return
    common.info(
        f"rolled back to {result.plan.persona or '(no persona)'} ({result.plan.hash[7:19]}) as history #{result.history_id}: "
        f"{len(result.plan.files)} files, {len(result.plan.operations)} operations ({result.elapsed_ms:.0f} ms)"
    )


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_cmd)
    app.command("apply")(apply_cmd)
    app.command("status")(status_cmd)
    app.command("history")(history_cmd)
    app.command("rollback")(rollback_cmd)
