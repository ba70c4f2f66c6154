"""``mien group``: the groups of users that a persona's ``access_controls.users`` names as
``group:NAME`` (kept by the server; changing them needs an admin token)."""

from __future__ import annotations

from typing import Annotated

import typer

from mien.cli.common import OutputFormat, done, info, paragraphs
from mien.cli.fleet import common as cc
from mien.cli.fleet.config import Connection

group_app = typer.Typer(
    name="group",
    no_args_is_help=True,
    help=paragraphs("""
        Groups of users, named in a persona's access_controls.users as group:NAME.

          mien group add marketing alice bob
          mien group list
          mien group remove marketing bob
        """),
)

# --- groups ----------------------------------------------------------------------------


@group_app.command("add")
@cc.connected
def group_add_cmd(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Group name.")],
    users: Annotated[list[str], typer.Argument(metavar="USER...", help="User names.")],
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """Add users to a group (made on first use). Needs an admin token.

    Example:

      mien group add marketing alice bob
    """
    from mien.client import broker as ops

    with cc.client(conn) as api:
        g = api.send(ops.add_members(name, list(users)))
    done(output, f"group {g.name}: {', '.join(g.members)}", g.model_dump(mode="json"))


@group_app.command("list")
@cc.connected
def group_list_cmd(output: cc.OutputOpt = OutputFormat.table, *, conn: Connection) -> None:
    """List groups and their members."""
    from mien.client import broker as ops

    with cc.client(conn) as api:
        items = api.send(ops.list_groups()).items
    if output is OutputFormat.json:
        cc.dump(items)
        return
    if not items:
        info("no groups: add one with mien group add NAME USER...")
        return
    cc.table(["group", "members"], [[g.name, ", ".join(g.members)] for g in items])


@group_app.command("remove")
@cc.connected
def group_remove_cmd(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Group name.")],
    users: Annotated[
        list[str] | None,
        typer.Argument(metavar="[USER...]", help="Users to remove (none: the whole group)."),
    ] = None,
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """Remove users from a group, or the whole group when no user is named."""
    from mien.client import broker as ops

    with cc.client(conn) as api:
        if not users:
            api.send(ops.delete_group(name))
            done(output, f"group {name} deleted", {"group": name, "deleted": True})
            return
        g = None
        for u in users:
            g = api.send(ops.remove_member(name, u))
    assert g is not None
    done(output, f"group {g.name}: {', '.join(g.members) or '(empty)'}", g.model_dump(mode="json"))


def register(app: typer.Typer) -> None:
    app.add_typer(group_app, name="group")
