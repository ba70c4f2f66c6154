"""How the local persona commands show plans, results and notes to people.

Used by :mod:`mien.cli.machine.commands`. Plans and status go to stdout; the outcome of an apply
and its notes go to stderr, together, so scripts can keep stdout for ``--output json``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mien.cli import common
from mien.cli.common import esc

if TYPE_CHECKING:
    from mien.agent.engine import ApplyResult
    from mien.agent.plan import Plan


def recovered(lines: list[str]) -> None:
    for line in lines:
        common.warn(line)


def print_plan(plan: Plan, *, diff: bool = True) -> None:
    con = common.console()
    marks = {
        "create": "[green]+[/]",
        "update": "[yellow]~[/]",
        "mode": "[yellow]~[/]",
        "delete": "[red]-[/]",
        "restore": "[cyan]<[/]",
    }
    title = f"persona [bold]{plan.persona or '(none)'}[/]"
    if plan.previous and plan.previous != plan.persona:
        title += f" (switching from {plan.previous})"
    con.print(title + f"  [dim]{plan.hash[:19]}[/]")
    for item in plan.drift:
        if item.captured:
            keys = ", ".join(c.key for c in item.captured)
            con.print(f"  [magenta]![/] {esc(item.path)} was edited: kept as customization {keys}")
        elif item.kept:
            con.print(
                f"  [magenta]![/] {esc(item.path)} was edited: kept whole as your version (mien customize list)"
            )
        elif item.saved:
            con.print(
                f"  [magenta]![/] {esc(item.path)} was edited: your version is saved (mien customize list)"
            )
        else:
            con.print(f"  [magenta]![/] {esc(item.path)} was removed since mien wrote it")
    if plan.empty:
        con.print("  no changes")
    for change in plan.files:
        summary = f"  [dim]{esc(change.summary)}[/]" if change.summary else ""
        con.print(
            f"  {marks[change.action]} {change.action:<7} {esc(change.path)}  [dim]({change.handler})[/]{summary}"
        )
        if diff:
            text = change.diff()
            if text:
                from rich.syntax import Syntax

                con.print(
                    Syntax(text, "diff", theme="ansi_dark", background_color="default"),
                    soft_wrap=True,
                )
    for op in plan.operations:
        con.print(f"  [blue]*[/] run     {esc(op.summary)}  [dim]({op.handler})[/]")
    print_notes(plan.outcomes())


def print_notes(notes: list[dict[str, str]], *, stderr: bool = False) -> None:
    if not notes:
        return
    con = common.console(stderr=stderr)
    style = {"pending": "yellow", "stored": "dim", "failed": "red"}
    label = {"failed": "not applied", "pending": "pending", "stored": "stored, not applied"}
    for status in ("failed", "pending", "stored"):
        group = [n for n in notes if n["status"] == status]
        if not group:
            continue
        con.print(f"[{style[status]}]{label[status]}:[/]")
        for n in group:
            reason = n.get("reason", "").replace("-", " ")
            con.print(f"  {esc(n['setting'])}: {esc(n['message'])} [dim]({esc(reason)})[/]")


def print_result(result: ApplyResult) -> None:
    recovered(result.recovered)
    plan = result.plan
    if not result.applied:
        common.info(
            f"persona {plan.persona} is applied; nothing to change ({result.elapsed_ms:.0f} ms)"
        )
        return
    counts = ", ".join(f"{n} {k}" for k, n in plan.counts().items()) or "no file changes"
    common.info(
        f"applied persona {plan.persona or '(none)'} as history #{result.history_id}: "
        f"{counts} ({result.elapsed_ms:.0f} ms)"
    )
    for w in result.warnings:
        common.warn(w)
