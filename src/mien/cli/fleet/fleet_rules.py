"""``mien fleet-rule push|list|show|delete``: the orchestrator's rules, evaluated by the
server over aggregates of the instances a tag selector matches (docs/orchestrator.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mien.cli.common import OutputFormat, done, info, paragraphs
from mien.cli.fleet import common as cc
from mien.cli.fleet.config import Connection

fleet_rule_app = typer.Typer(
    name="fleet-rule",
    no_args_is_help=True,
    help=paragraphs("""
        Fleet rules: conditions over aggregates of the instances a tag selector matches
        (avg.cpu_percent, p95.latency_ms, count, firing_fraction.RULE), with the for /
        clear_when / cooldown of persona rules; when one fires, the server binds a persona,
        sets tags, activates a persona on the worst instances or calls a provider, and
        undoes what it can when the rule resolves.

          mien fleet-rule push web-hot.yaml
          mien fleet-rule list
          mien fleet-rule show web-hot
        """),
)


@fleet_rule_app.command("push")
@cc.connected
def push_cmd(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A fleet rule (YAML or JSON).")],
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """Store a fleet rule (a new version when its content changed). Needs an operator
    token. A document that does not validate is refused with each problem's line."""
    from mien.client import fleet_rules as ops

    with cc.client(conn) as api:
        rule = api.send(ops.push(file))
    done(
        output,
        f"fleet rule {rule.name} v{rule.version}: {cc.selector_text(rule.selector)}",
        rule.model_dump(mode="json"),
    )


@fleet_rule_app.command("list")
@cc.connected
def list_cmd(output: cc.OutputOpt = OutputFormat.table, *, conn: Connection) -> None:
    """The fleet rules in force, with their phase and what they last saw."""
    from mien.client import fleet_rules as ops

    with cc.client(conn) as api:
        items = api.send(ops.list_rules()).items
    if output is OutputFormat.json:
        cc.dump(items)
        return
    if not items:
        info("no fleet rules: push one with mien fleet-rule push FILE")
        return
    cc.table(
        ["rule", "version", "selector", "phase", "note"],
        [[r.name, str(r.version), cc.selector_text(r.selector), r.phase, r.note] for r in items],
    )


@fleet_rule_app.command("show")
@cc.connected
def show_cmd(
    name: Annotated[str, typer.Argument(metavar="NAME")],
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """One fleet rule: condition, phase, the aggregates it last saw, its recent actions."""
    from mien.client import fleet_rules as ops

    with cc.client(conn) as api:
        r = api.send(ops.get(name))
    if output is OutputFormat.json:
        cc.dump(r)
        return
    info(f"{r.name} v{r.version}  {cc.selector_text(r.selector)}")
    info(f"  when:  {r.when}")
    info(f"  phase: {r.phase} ({r.note})")
    for key, value in sorted(r.values.items()):
        info(f"  {key} = {value:g}" if isinstance(value, int | float) else f"  {key} = {value}")
    for a in r.actions:
        info(f"  {a.key}  {a.kind}  {a.status}")


@fleet_rule_app.command("delete")
@cc.connected
def delete_cmd(
    name: Annotated[str, typer.Argument(metavar="NAME")],
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """Delete a fleet rule; what it did while firing is undone at the next evaluation."""
    from mien.client import fleet_rules as ops

    with cc.client(conn) as api:
        api.send(ops.delete(name))
    done(output, f"fleet rule {name} deleted", {"rule": name, "deleted": True})


def register(app: typer.Typer) -> None:
    app.add_typer(fleet_rule_app, name="fleet-rule")
