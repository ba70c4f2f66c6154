"""``mien bind add|list|show|rm``: tag selectors that choose a persona for many instances,
with an optional override and a priority (the tag → persona mapping), or with ``--mode add``
layer a persona on top of the chosen one; and
``mien bind add --wait``, which follows the rollout until the selected instances applied it.

Audit and tokens are in :mod:`mien.cli.fleet.admin`.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mien.cli.common import OutputFormat, console, done, esc, fail, info, paragraphs
from mien.cli.fleet import common as cc
from mien.cli.fleet.args import parse_duration, parse_selector
from mien.cli.fleet.config import Connection

if TYPE_CHECKING:
    from mien.client import Client
    from mien.protocol import Binding


class Mode(str, Enum):
    REPLACE = "replace"
    ADD = "add"


bind_app = typer.Typer(
    name="bind",
    no_args_is_help=True,
    help=paragraphs("""
        Bindings: instances whose tags match a selector get a persona, optionally with an
        override composed over it. The highest priority wins; an explicit activation wins
        over every binding. A binding with --mode add layers its persona on top of the
        chosen one instead: its rules are appended, its restricted commands united, its
        settings composed over.

          mien bind add web-eu --selector role=web --selector region=eu --persona web
          mien bind add watch-eu --selector region=eu --persona monitoring --mode add
          mien bind list
          mien bind rm web-eu
        """),
)


def read_override(path: Path) -> dict[str, Any]:
    """An override file (YAML or JSON, a partial persona) in canonical form; its problems
    fail as ``FILE:LINE:COL: field.path: message``."""
    from mien.spec.document import load_file
    from mien.spec.errors import SpecError

    try:
        doc = load_file(path, overlay=True)
    except SpecError as exc:
        for problem in exc.problems:
            sys.stderr.write(f"{problem}\n")
        fail(f"--override {path}: not a valid persona override")
    return dict(doc.data)


@bind_app.command("add")
@cc.connected
def add_cmd(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Binding name.")],
    persona: Annotated[
        str, typer.Option("--persona", "-p", help="The persona the selected instances run.")
    ],
    selector: Annotated[
        list[str] | None,
        typer.Option(
            "--selector",
            "-s",
            metavar="KEY=VALUE",
            help="KEY=VALUE, KEY=V1,V2 (any of them) or KEY=* (tag present); repeat: all "
            "must match.",
        ),
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Select every instance (no selector).")
    ] = False,
    priority: Annotated[
        int, typer.Option("--priority", min=-1000, max=1000, help="Higher wins.")
    ] = 0,
    override: Annotated[
        Path | None,
        typer.Option(
            "--override",
            metavar="FILE",
            help="A partial persona composed over the persona for these instances.",
        ),
    ] = None,
    description: Annotated[str | None, typer.Option("--description", "-d")] = None,
    mode: Annotated[
        Mode,
        typer.Option(
            "--mode",
            help="replace: the binding chooses the persona; add: its persona is layered on "
            "top of the chosen one (rules appended, restricted commands united, settings "
            "composed over).",
        ),
    ] = Mode.REPLACE,
    replace: Annotated[
        bool, typer.Option("--replace", help="Change the binding if it exists.")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the rollout until the instances applied it.")
    ] = False,
    timeout: Annotated[
        str, typer.Option("--timeout", metavar="DURATION", help="How long --wait waits.")
    ] = "5m",
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """Bind a persona to every instance whose tags match the selector.

    The server checks the persona exists and the override composes over it. With --wait,
    progress shows how many of the instances that now follow this binding applied it;
    exit status 1 if one failed or the rollout did not finish within --timeout.

    Examples:

      mien bind add web --selector role=web --persona web --wait

      mien bind add eu-proxy -s role=web -s region=eu,eu-west -p web --priority 10 --override eu.yaml

      mien bind add everyone --all --persona base --priority -100

      mien bind add watch-eu -s region=eu -p monitoring --mode add
    """
    from mien.client import Conflict

    chosen = parse_selector(selector or [])
    if not chosen and not every:
        fail("give --selector KEY=VALUE (repeatable), or --all to bind every instance", 2)
    if chosen and every:
        fail("give --selector or --all, not both", 2)
    wait_for = parse_duration(timeout, "--timeout")
    body = read_override(override) if override else None
    with cc.client(conn) as api:
        try:
            if replace and _exists(api, name):
                binding = api.update_binding(
                    name,
                    chosen,
                    persona,
                    override=body,
                    priority=priority,
                    description=description,
                    mode=mode.value,
                )
                verb = "changed"
            else:
                binding = api.create_binding(
                    name,
                    chosen,
                    persona,
                    override=body,
                    priority=priority,
                    description=description,
                    mode=mode.value,
                )
                verb = "created"
        except Conflict as exc:
            if exc.code != "exists":
                raise
            fail(f"binding {name!r} already exists: change it with --replace, or bind rm it")
        if output is OutputFormat.json:
            cc.dump(binding)
        else:
            arrow = "+>" if binding.mode == "add" else "->"
            info(
                f"{verb} binding {binding.name}: {cc.selector_text(binding.selector)} {arrow} "
                f"{binding.persona} (priority {binding.priority}"
                + (", adds on top" if binding.mode == "add" else "")
                + (", with override" if binding.override else "")
                + ")"
            )
        if wait:
            _wait(api, binding, wait_for)


def _exists(api: Client, name: str) -> bool:
    from mien.client import NotFound

    try:
        api.get_binding(name)
    except NotFound:
        return False
    return True


def _wait(api: Client, binding: Binding, timeout: float) -> None:
    from mien.cli.fleet.rollout import report_rollout, watch_rollout

    def fetch() -> list[Any]:
        if binding.mode == "add":
            return [i for i in api.list_instances() if binding.name in i.desired.added]
        return [
            i
            for i in api.list_instances(persona=binding.persona)
            if i.desired.source == "binding" and binding.name in i.desired.bindings
        ]

    title = f"binding {binding.name}"
    state = watch_rollout(api, title, fetch, timeout, since=binding.updated_at)
    if state.total == 0:
        info(
            f"{title}: no instance follows it (none matches, or a higher priority binding "
            "or an activation wins); nothing to wait for"
        )
        return
    if not report_rollout(state, title, timeout):
        fail(f"{title}: rollout did not converge")


@bind_app.command("list")
@cc.connected
def list_cmd(output: cc.OutputOpt = OutputFormat.table, *, conn: Connection) -> None:
    """List bindings in the order the server decides by (highest priority first).

    Example:

      mien bind list
    """
    with cc.client(conn) as api:
        items = api.list_bindings()
    if output is OutputFormat.json:
        cc.dump(items)
        return
    if not items:
        info("no bindings yet: add one with mien bind add NAME --selector KEY=VALUE --persona P")
        return
    rows = [
        [
            b.name,
            cc.selector_text(b.selector),
            b.persona,
            b.mode,
            b.priority,
            ", ".join(sorted(b.override)) if b.override else "",
            cc.ago(b.updated_at),
            b.updated_by,
        ]
        for b in items
    ]
    cc.table(["name", "selector", "persona", "mode", "priority", "override", "updated", "by"], rows)


@bind_app.command("show")
@cc.connected
def show_cmd(
    name: Annotated[str, typer.Argument(metavar="NAME")],
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """Show one binding, with its override in canonical YAML.

    Example:

      mien bind show web-eu
    """
    with cc.client(conn) as api:
        b = api.get_binding(name)
    if output is OutputFormat.json:
        cc.dump(b)
        return
    out = console()
    out.print(f"[bold]{esc(b.name)}[/bold] (version {b.version}, ETag {esc(b.etag)})")
    out.print(f"  selector: {esc(cc.selector_text(b.selector))}")
    out.print(f"  persona:  {esc(b.persona)}   priority {b.priority}   mode {b.mode}")
    if b.description:
        out.print(f"  description: {esc(b.description)}")
    out.print(f"  updated {cc.local_time(b.updated_at)} by {esc(b.updated_by)}")
    if b.override:
        from mien.spec.canonical import to_yaml

        out.print("  override:")
        for line in to_yaml(b.override).splitlines():
            out.print("    " + esc(line))


@bind_app.command("rm")
@cc.connected
def rm_cmd(
    name: Annotated[str, typer.Argument(metavar="NAME")],
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """Delete a binding. Its instances fall back to the next matching binding (or the
    default persona); their agents apply that on their own.

    Example:

      mien bind rm web-eu
    """
    with cc.client(conn) as api:
        api.delete_binding(name)
    done(output, f"deleted binding {name!r}", {"deleted": name})
