"""``mien policy push|show|versions|check``: the fleet policy — trust caps per tag selector
and who may switch what (see docs/policy.md).

``check`` validates a file locally (no server); ``push`` stores it as a new version (an
admin token); ``show`` prints the version in force or an older one.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from mien.cli.common import OutputFormat, done, fail, info, paragraphs
from mien.cli.fleet import common as cc
from mien.cli.fleet.config import Connection

policy_app = typer.Typer(
    name="policy",
    no_args_is_help=True,
    help=paragraphs("""
        The fleet policy: the most trust each risk category may have on the instances a
        tag selector matches, and who may switch which instances to which personas.

          mien policy check fleet-policy.yaml
          mien policy push fleet-policy.yaml
          mien policy show
          mien policy versions
        """),
)

FileArg = Annotated[Path, typer.Argument(metavar="FILE", help="A policy file (.yaml/.json).")]


def _local(path: Path) -> None:
    """Validate ``path`` locally; exit 1 with every problem when it is not valid."""
    from mien.spec.errors import SpecError
    from mien.spec.policy import load_policy_file

    try:
        load_policy_file(path)
    except SpecError as exc:
        for problem in exc.problems:
            sys.stderr.write(f"{problem}\n")
        fail(f"{path}: not a valid fleet policy ({len(exc.errors)} problem(s))", code="invalid")


@policy_app.command("check")
@cc.helpful
def check_cmd(file: FileArg, output: cc.OutputOpt = OutputFormat.table) -> None:
    """Validate a policy file without sending it: every problem as FILE:LINE:COL: field:
    message. Exit status 0 valid, 1 not.

    Example:

      mien policy check fleet-policy.yaml
    """
    from mien.spec.policy import load_policy_file

    _local(file)
    policy = load_policy_file(file).policy
    switching = (
        "no switching list"
        if policy.switching is None
        else f"{len(policy.switching)} switching entries"
    )
    done(
        output,
        f"{file}: valid ({len(policy.trust)} trust entries, {switching})",
        {"file": str(file), "valid": True, "document": policy.canonical()},
    )


@policy_app.command("push")
@cc.connected
def push_cmd(
    file: FileArg,
    if_match: Annotated[
        str | None,
        typer.Option(
            "--if-match",
            metavar="ETAG",
            help="Store only if the policy in force is still this version (the ETag 'show' "
            "printed).",
        ),
    ] = None,
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """Store a new version of the fleet policy (needs an admin token). Every instance's
    desired persona is recomputed: trust levels above the policy's caps are lowered.

    Examples:

      mien policy push fleet-policy.yaml

      mien policy push fleet-policy.yaml --if-match '"p3-1a2b3c4d5e6f"'
    """
    from mien.cli.fleet.push import problem_lines
    from mien.client import InvalidDocument, PreconditionFailed
    from mien.client import policy as ops

    if not file.is_file():
        fail(f"{file}: no such file", 2)
    with cc.client(conn) as api:
        try:
            stored = api.send(ops.put_policy(file, if_match=if_match, source=file.name))
        except InvalidDocument as exc:
            for line in problem_lines(exc.problems, file):
                sys.stderr.write(line + "\n")
            fail(f"{file}: refused by the server: {exc.message}", code="invalid")
        except PreconditionFailed as exc:
            fail(f"{file}: not stored: {exc.message}", code="stale")
    verb = "unchanged" if stored.notes else "stored"
    done(
        output,
        f"{file}: fleet policy v{stored.version} {verb} "
        f"({cc.short_hash(stored.content_hash)}, ETag {stored.etag})",
        stored.model_dump(mode="json"),
    )


@policy_app.command("show")
@cc.connected
def show_cmd(
    version: Annotated[
        int | None, typer.Option("--version", min=1, help="An older version (default: in force).")
    ] = None,
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """Print the fleet policy in force (or --version N) as YAML, its version and ETag on
    stderr.

    Example:

      mien policy show --version 2
    """
    from mien.client import policy as ops
    from mien.spec.canonical import to_yaml

    with cc.client(conn) as api:
        found = api.send(ops.get_version(version) if version else ops.get_policy())
    if output is OutputFormat.json:
        cc.dump(found)
        return
    if found.document is None:
        info(
            "no fleet policy: every persona's trust_levels apply as written (mien policy push FILE)"
        )
        return
    info(
        f"fleet policy v{found.version}{'' if found.latest else ' (not in force)'}, "
        f"by {found.created_by} {cc.ago(found.created_at)}, ETag {found.etag}"
    )
    sys.stdout.write(to_yaml(found.document))


@policy_app.command("versions")
@cc.connected
def versions_cmd(output: cc.OutputOpt = OutputFormat.table, *, conn: Connection) -> None:
    """List every version of the fleet policy, newest first."""
    from mien.client import policy as ops

    with cc.client(conn) as api:
        items = api.send(ops.versions()).items
    if output is OutputFormat.json:
        cc.dump(items)
        return
    if not items:
        info("no fleet policy yet: mien policy push FILE")
        return
    cc.table(
        ["version", "hash", "by", "when"],
        [
            [f"v{v.version}", cc.short_hash(v.content_hash), v.created_by, cc.ago(v.created_at)]
            for v in items
        ],
    )


def register(app: typer.Typer) -> None:
    app.add_typer(policy_app, name="policy")
