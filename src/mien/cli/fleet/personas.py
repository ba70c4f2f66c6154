"""``mien persona push|list|show|versions|diff|default|delete``: the server's persona catalogue.

Thin over :class:`mien.client.Client`. ``push`` (creating personas and their versions,
then following the rollout) is in :mod:`mien.cli.fleet.push`; the commands that read and
delete are here.
"""

from __future__ import annotations

import sys
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import typer

from mien.cli.common import OutputFormat, console, done, esc, fail, info, paragraphs
from mien.cli.fleet import common as cc
from mien.cli.fleet.config import Connection

if TYPE_CHECKING:
    from mien.protocol import DefaultPersona

app = typer.Typer(
    name="persona",
    no_args_is_help=True,
    help=paragraphs("""
        Store personas on the server, read them back, compare versions.

        Every push of a changed document is a new immutable version with its content hash;
        instances follow the latest version unless an activation pins one.

          mien persona push personas/*.yaml --wait
          mien persona list
          mien persona diff web --from 3 --to 4
          mien persona default kiosk       # what machines with nothing else run
        """),
)


class DocFormat(str, Enum):
    yaml = "yaml"
    json = "json"


# --- reading -------------------------------------------------------------------------------


@app.command("list")
@cc.connected
def list_cmd(
    deleted: Annotated[bool, typer.Option("--deleted", help="Include deleted personas.")] = False,
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """List the personas on the server: latest version, content hash, default, parent.

    Example:

      mien persona list --output json | jq -r '.[].name'
    """
    with cc.client(conn) as api:
        items = api.list_personas(include_deleted=deleted)
    if output is OutputFormat.json:
        cc.dump(items)
        return
    if not items:
        info("no personas yet: add one with mien persona push FILE")
        return
    rows = [
        [
            p.name + (" (deleted)" if p.deleted_at else ""),
            f"v{p.latest_version}",
            cc.short_hash(p.content_hash),
            "yes" if p.default_persona else "",
            p.extends or "",
            cc.ago(p.updated_at),
            p.description or "",
        ]
        for p in items
    ]
    cc.table(["name", "latest", "hash", "default", "extends", "updated", "description"], rows)


@app.command("show")
@cc.connected
def show_cmd(
    name: Annotated[str, typer.Argument(help="Persona name.")],
    version: Annotated[
        int | None, typer.Option("--version", "-v", min=1, help="A version (default: latest).")
    ] = None,
    fmt: Annotated[
        DocFormat, typer.Option("--format", "-f", help="How to print the document.")
    ] = DocFormat.yaml,
    output: Annotated[
        OutputFormat | None,
        typer.Option("--output", "-o", help="json: the whole record (metadata and document)."),
    ] = None,
    *,
    conn: Connection,
) -> None:
    """Print a persona's canonical document (stdout); its version, hash and ETag go to stderr.

    Examples:

      mien persona show web > web.yaml

      mien persona show web --version 2 --format json

      mien persona show web --output json | jq .etag
    """
    from mien.spec.canonical import to_json, to_yaml

    with cc.client(conn) as api:
        stored = api.persona_version(name, version) if version else api.get_persona(name)
    if output is OutputFormat.json:
        cc.dump(stored)
        return
    state = " (deleted)" if stored.deleted else ("" if stored.latest else " (not the latest)")
    info(
        f"# {stored.name} v{stored.version}{state} {stored.content_hash} ETag {stored.etag}, "
        f"by {stored.created_by} at {cc.local_time(stored.created_at)}"
    )
    text = to_json(stored.document) if fmt is DocFormat.json else to_yaml(stored.document)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


@app.command("versions")
@cc.connected
def versions_cmd(
    name: Annotated[str, typer.Argument(help="Persona name.")],
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """List every version of a persona (deleted personas too), oldest first.

    Example:

      mien persona versions web
    """
    with cc.client(conn) as api:
        items = api.persona_versions(name)
    if output is OutputFormat.json:
        cc.dump(items)
        return
    last = max((v.version for v in items), default=0)
    rows = [
        [
            f"v{v.version}" + (" (latest)" if v.version == last else ""),
            v.content_hash,
            cc.local_time(v.created_at),
            v.created_by,
        ]
        for v in items
    ]
    cc.table(["version", "content hash", "created", "by"], rows, title=f"persona {name}")


@app.command("diff")
@cc.connected
def diff_cmd(
    name: Annotated[str, typer.Argument(help="Persona name.")],
    from_: Annotated[
        int | None,
        typer.Option("--from", min=1, help="Older version (default: the one before --to)."),
    ] = None,
    to: Annotated[
        int | None, typer.Option("--to", min=1, help="Newer version (default: the latest).")
    ] = None,
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """Show what changed between two versions as a unified diff of the canonical YAML
    (coloured on a terminal); with --output json, also every changed key.

    Examples:

      mien persona diff web

      mien persona diff web --from 1 --to 4 | less -R
    """
    with cc.client(conn) as api:
        diff = api.persona_diff(name, from_, to)
    if output is OutputFormat.json:
        cc.dump(diff)
        return
    if not diff.unified.strip():
        info(f"{name}: v{diff.from_version} and v{diff.to_version} have the same content")
        return
    print_diff(diff.unified)


def print_diff(text: str) -> None:
    """A unified diff on stdout; coloured when stdout is a terminal."""
    if not cc.is_tty(sys.stdout):
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    out = console()
    for line in text.splitlines():
        style = ""
        if line.startswith(("+++", "---")):
            style = "bold"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        elif line.startswith("@@"):
            style = "cyan"
        out.print(f"[{style}]{esc(line)}[/{style}]" if style else esc(line))


def announce_default(changed: DefaultPersona) -> None:
    """One line saying what the fleet's default is now, and what it was."""
    was = f" (it was {changed.previous})" if changed.previous else ""
    if changed.persona is None:
        info(f"the fleet has no default persona now{was}")
    elif changed.persona == changed.previous:
        info(f"{changed.persona} is the fleet's default persona (unchanged)")
    else:
        info(f"{changed.persona} is now the fleet's default persona{was}")


@app.command("default")
@cc.connected
def default_cmd(
    name: Annotated[str, typer.Argument(help="Persona name.")],
    unset: Annotated[
        bool, typer.Option("--unset", help="Stop NAME being the default (then there is none).")
    ] = False,
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """Make a persona the fleet's default: what every instance with no activation and no
    matching binding runs (at once, on every such machine). There is one default; setting
    one replaces the other. A persona's own default_persona field does not change it.

    Examples:

      mien persona default kiosk

      mien persona default kiosk --unset
    """
    with cc.client(conn) as api:
        changed = api.unset_default_persona(name) if unset else api.set_default_persona(name)
    if output is OutputFormat.json:
        cc.dump(changed)
        return
    announce_default(changed)


@app.command("delete")
@cc.connected
def delete_cmd(
    name: Annotated[str, typer.Argument(help="Persona name.")],
    force: Annotated[
        bool,
        typer.Option("--force", help="Delete even if bindings or instances use it (admin)."),
    ] = False,
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """Delete a persona (every version is kept for the record and for rollbacks).

    A persona that bindings select or instances run is refused with the list of them;
    remove those first, or --force (admin role).

    Examples:

      mien persona delete old-kiosk

      mien persona delete web --force
    """
    from mien.client import Conflict

    with cc.client(conn) as api:
        try:
            api.delete_persona(name, force=force)
        except Conflict as exc:
            detail = exc.message.replace(" (force=true to delete anyway)", "")
            fail(
                f"{detail}.\nRemove those uses first (mien bind rm NAME; mien instance activate "
                f"ID OTHER), or delete anyway with --force (admin role)."
            )
    done(
        output,
        f"deleted persona {name!r}" + (" (forced)" if force else ""),
        {"deleted": name, "forced": force},
    )
