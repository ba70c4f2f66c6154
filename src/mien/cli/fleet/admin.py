"""``mien audit [verify]`` and ``mien token create|list|revoke``: who did what, and who may.

The audit log is hash-chained on the server; ``mien audit verify`` has the server check the
whole chain and exits 1 naming the first record that does not fit. Tokens are shown once,
when made; the server keeps only their hashes.
"""

from __future__ import annotations

import json
import re
import sys
from collections import deque
from datetime import datetime
from enum import Enum
from typing import Annotated, Any

import typer

from mien.cli.common import OutputFormat, done, fail, info, paragraphs
from mien.cli.fleet import common as cc
from mien.cli.fleet.args import parse_duration, parse_pairs, parse_time
from mien.cli.fleet.config import Connection

audit_app = typer.Typer(
    name="audit",
    help=paragraphs("""
        The server's audit log: every change, with its actor and time, hash-chained so that
        editing, inserting or deleting a record is detected.

          mien audit --since 1h
          mien audit --instance vm-0042 --action activation.
          mien audit verify
        """),
)
token_app = typer.Typer(
    name="token",
    no_args_is_help=True,
    help=paragraphs("""
        API tokens (a role) and enrollment tokens (for agents joining the fleet). Needs
        the admin role.

          mien token create --role operator --name ci --expires 90d
          mien token create --role enroll --uses 50 --tag role=web --expires 1d
          mien token list
          mien token revoke ci
        """),
)


# --- audit ---------------------------------------------------------------------------------


def detail_text(detail: dict[str, Any]) -> str:
    """The whole detail of an audit record as ``key=value`` pairs (the table folds it)."""
    parts = []
    for key, value in detail.items():
        if value is None:
            continue
        shown = value if isinstance(value, str) else json.dumps(value, default=str)
        parts.append(f"{key}={shown}")
    return " ".join(parts)


@audit_app.callback(invoke_without_command=True)
@cc.connected
def audit_cmd(
    ctx: typer.Context,
    actor: Annotated[str | None, typer.Option("--actor", help="Who (token name).")] = None,
    action: Annotated[
        str | None,
        typer.Option("--action", help="What: an action or its prefix (persona., activation.)."),
    ] = None,
    instance: Annotated[
        str | None,
        typer.Option("--instance", "-i", help="Instance id (or its host name, when unique)."),
    ] = None,
    persona: Annotated[str | None, typer.Option("--persona", "-p", help="Persona name.")] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="TIME", help="2026-03-01, 2026-03-01T14:00Z, or 2h (ago)."),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", metavar="TIME", help="As --since.")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="Show the newest N matching records.")
    ] = 50,
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection | None,
) -> None:
    """Show audit records, oldest first: the newest --limit of those matching the filters.

    Examples:

      mien audit

      mien audit --actor ci --since 2026-03-01 --limit 500

      mien audit --persona web --action persona. -o json | jq '.[].detail.version'

      mien audit verify
    """
    if ctx.invoked_subcommand is not None:
        return
    assert conn is not None
    since_at = parse_time(since, "--since") if since else None
    until_at = parse_time(until, "--until") if until else None
    if since_at and until_at and until_at < since_at:
        fail("--until is before --since", 2)
    kept: deque[Any] = deque(maxlen=limit)
    total = 0
    with cc.client(conn, timeout=120) as api:
        if instance:
            import contextlib

            from mien.client import NotFound

            # A deleted instance's id is not found, and its records are still there.
            with contextlib.suppress(NotFound):
                instance = api.find_instance(instance).id
        for record in api.audit(
            actor=actor,
            action=action,
            instance=instance,
            persona=persona,
            since=since_at,
            until=until_at,
            page_size=1000,
        ):
            kept.append(record)
            total += 1
    records = list(kept)
    if output is OutputFormat.json:
        cc.dump(records)
    elif records:
        rows = [
            [
                r.seq,
                cc.local_time(r.at),
                r.actor,
                r.action,
                r.instance_id or "",
                r.persona or "",
                detail_text(r.detail),
            ]
            for r in records
        ]
        cc.table(["#", "at", "actor", "action", "instance", "persona", "detail"], rows)
    if total > len(records):
        info(f"showing the newest {len(records)} of {total} matching records (--limit N for more)")
    elif not records:
        info("no audit records match")


@audit_app.command("verify")
@cc.connected
def verify_cmd(output: cc.OutputOpt = OutputFormat.table, *, conn: Connection) -> None:
    """Have the server check the whole hash chain (admin role). Exit status 0 intact, 1
    broken, naming the first record that does not fit.

    Removing the newest records leaves a shorter valid chain: keep the head hash printed
    here somewhere else and compare.

    Example:

      mien audit verify
    """
    with cc.client(conn, timeout=600) as api:
        result = api.audit_verify()
    if output is OutputFormat.json:
        cc.dump(result)
    if result.ok:
        info(f"audit chain intact: {result.records} record(s), head {result.head or '(empty)'}")
        return
    where = f"record #{result.first_bad}" if result.first_bad is not None else "a record"
    fail(
        f"audit chain BROKEN at {where}: {result.reason or 'hash mismatch'} "
        f"({result.records} record(s) before it verified)"
    )


# --- tokens --------------------------------------------------------------------------------


class TokenRole(str, Enum):
    admin = "admin"
    operator = "operator"
    viewer = "viewer"
    user = "user"
    enroll = "enroll"


@token_app.command("create")
@cc.connected
def create_cmd(
    role: Annotated[
        TokenRole,
        typer.Option(
            "--role",
            "-r",
            help="admin, operator, viewer, user; or enroll for an enrollment token (agents).",
        ),
    ],
    name: Annotated[
        str | None, typer.Option("--name", help="A name for audit and lists (default: role-time).")
    ] = None,
    uses: Annotated[
        int | None,
        typer.Option("--uses", min=1, help="Enrollment tokens: how many agents (default 1)."),
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option("--expires", metavar="DURATION", help="Valid for (30m, 12h, 90d)."),
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option(
            "--tag",
            "-t",
            metavar="KEY=VALUE",
            help="Enrollment tokens: tags every new instance gets.",
        ),
    ] = None,
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """Make a token and print it once on stdout (the server keeps only its hash).

    Examples:

      mien token create --role operator --name ci --expires 90d

      mien token create --role enroll --uses 20 --tag role=web --expires 1d
    """
    enroll = role is TokenRole.enroll
    tags = parse_pairs(tag or [], "--tag")
    if not enroll and (uses is not None or tags):
        fail("--uses and --tag are for enrollment tokens (--role enroll)", 2)
    seconds = parse_duration(expires, "--expires") if expires else None
    label = name or f"{role.value}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    with cc.client(conn) as api:
        made = api.create_token(
            label,
            role=None if enroll else role.value,
            kind="enroll" if enroll else "api",
            uses=uses,
            expires_in=seconds,
            tags=tags,
        )
    if output is OutputFormat.json:
        cc.dump(made)
        return
    sys.stdout.write(made.token + "\n")
    what = (
        f"enrollment token {made.name!r} ({made.uses_left} use(s)"
        + (f", tags {cc.tags_text(made.tags)}" if made.tags else "")
        + ")"
        if enroll
        else f"{made.role} token {made.name!r}"
    )
    expiry = f", expires {cc.local_time(made.expires_at)}" if made.expires_at else ""
    info(f"{what}, id {made.id}{expiry}: shown this once, store it now")


@token_app.command("list")
@cc.connected
def list_cmd(
    every: Annotated[bool, typer.Option("--all", help="Include revoked tokens.")] = False,
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """List tokens (never their secrets).

    Example:

      mien token list --all
    """
    with cc.client(conn) as api:
        items = api.list_tokens(include_revoked=every)
    if output is OutputFormat.json:
        cc.dump(items)
        return
    rows = [
        [
            t.id,
            t.name,
            t.kind,
            t.role or "",
            t.instance_id or "",
            "" if t.uses_left is None else t.uses_left,
            cc.local_time(t.expires_at) if t.expires_at else "never",
            cc.local_time(t.created_at),
            t.created_by,
            cc.local_time(t.revoked_at) if t.revoked_at else "",
        ]
        for t in items
    ]
    cc.table(
        [
            "id",
            "name",
            "kind",
            "role",
            "instance",
            "uses left",
            "expires",
            "created",
            "by",
            "revoked",
        ],
        rows,
    )


UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@token_app.command("revoke")
@cc.connected
def revoke_cmd(
    token: Annotated[str, typer.Argument(metavar="ID|NAME", help="Token id, or its unique name.")],
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """Revoke a token at once (on every server replica).

    Examples:

      mien token revoke ci

      mien token revoke 0b6f5c1e-2f7c-4c61-9d55-3f0c2f1d9a10
    """
    with cc.client(conn) as api:
        token_id = token
        if not UUID.match(token):
            named = [t for t in api.list_tokens() if t.name == token]
            if not named:
                fail(f"no live token named {token!r} (mien token list shows them)")
            if len(named) > 1:
                ids = ", ".join(t.id for t in named)
                fail(f"{len(named)} tokens are named {token!r}: revoke one by id ({ids})")
            token_id = named[0].id
        api.revoke_token(token_id)
    done(
        output,
        f"revoked token {token_id}" + (f" ({token})" if token_id != token else ""),
        {"revoked": token_id},
    )
