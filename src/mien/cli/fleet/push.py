"""``mien persona push``: create personas or store new versions of them, then optionally
follow the rollout to the instances that run them.

Every push of changed content is a new immutable version with its content hash; the server
validates each document and its problems are printed as ``FILE:LINE:COL: field.path:
message`` with the path the user gave. Files are pushed parents first, so a persona that
``extends`` another one in the same push finds it.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mien.cli.common import OutputFormat, fail, info
from mien.cli.fleet import common as cc
from mien.cli.fleet.args import parse_duration
from mien.cli.fleet.config import Connection

if TYPE_CHECKING:
    from mien.client import Client
    from mien.protocol import PersonaVersion, Problem

PERSONA_SUFFIXES = (".yaml", ".yml", ".json")


def _expand(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in PERSONA_SUFFIXES)
            if not found:
                fail(f"{path}: no persona files (.yaml, .yml, .json) in this directory", 2)
            out.extend(found)
        elif not path.exists():
            fail(f"{path}: no such file", 2)
        else:
            out.append(path)
    return list(dict.fromkeys(out))


def _peek(path: Path) -> tuple[str | None, str | None]:
    """The persona's name and parent as mien reads them locally (``None`` if the file does
    not parse: the server will then say why)."""
    from mien.spec.document import load_file
    from mien.spec.errors import SpecError

    try:
        doc = load_file(path)
    except SpecError:
        return None, None
    except Exception:  # a bug in the local parser must not stop the server from judging
        return None, None
    return doc.name, doc.data.get("extends")


def parents_first(files: list[tuple[Path, str | None, str | None]]) -> list[int]:
    """An order for pushing: a persona after the pushed persona it extends (stable
    otherwise, cycles left as given for the server to refuse)."""
    index_of = {name: i for i, (_p, name, _e) in enumerate(files) if name}
    order: list[int] = []
    state: dict[int, str] = {}

    def visit(i: int) -> None:
        if state.get(i) == "done" or state.get(i) == "visiting":
            return
        state[i] = "visiting"
        parent = files[i][2]
        if parent in index_of:
            visit(index_of[parent])
        state[i] = "done"
        order.append(i)

    for i in range(len(files)):
        visit(i)
    return order


def problem_lines(problems: list[Problem], path: Path) -> list[str]:
    """The server's problems, positioned in the file as the user named it."""
    lines = []
    for p in problems:
        text = p.text or f"{p.path}: {p.message}"
        if p.source and p.source == path.name and text.startswith(p.source + ":"):
            text = str(path) + text[len(p.source) :]
        lines.append(text)
    return lines


def _push_one(
    api: Client, path: Path, name: str | None, if_match: str | None
) -> tuple[str, PersonaVersion]:
    from mien.client import Conflict, NotFound

    previous: PersonaVersion | None = None
    if name:
        try:
            previous = api.get_persona(name)
        except NotFound:
            previous = None
    if previous is None:
        if if_match:
            fail(f"{path}: persona {name!r} does not exist, so --if-match cannot match it")
        try:
            return "created", api.create_persona(path)
        except Conflict as exc:
            if exc.code != "exists" or not name:
                raise
            # Created by someone else between our read and our write: update it instead.
    assert name is not None
    stored = api.update_persona(name, path, if_match=if_match)
    if previous is not None and stored.version == previous.version:
        return "unchanged", stored
    return "updated", stored


def _push_report(action: str, stored: PersonaVersion, path: Path) -> None:
    verb = {"created": "created", "updated": "new version", "unchanged": "unchanged"}[action]
    info(
        f"{path}: {stored.name} v{stored.version} {verb} "
        f"({cc.short_hash(stored.content_hash)}, ETag {stored.etag})"
    )
    for w in problem_lines(stored.warnings, path):
        sys.stderr.write(w + "\n")  # already reads FILE:LINE:COL: field: warning: …
    for note in stored.notes:
        if not note.startswith("unchanged:"):
            info(f"  {note}")


def push_cmd(
    files: Annotated[
        list[Path],
        typer.Argument(metavar="FILE...", help="Persona files (.yaml/.yml/.json) or directories."),
    ],
    if_match: Annotated[
        str | None,
        typer.Option(
            "--if-match",
            metavar="ETAG",
            help="Store only if the latest version is still this one (the ETag 'show' "
            "printed); one file only.",
        ),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="Then follow the rollout until every instance applied it."),
    ] = False,
    timeout: Annotated[
        str, typer.Option("--timeout", metavar="DURATION", help="How long --wait waits.")
    ] = "5m",
    default: Annotated[
        bool,
        typer.Option(
            "--default",
            help="Then make it the fleet's default persona (one file only); a push never "
            "changes the default otherwise.",
        ),
    ] = False,
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """Create personas or store new versions of them; print each version and content hash.

    A persona that exists gets a new version when its content changed (unchanged content
    stores nothing). A persona that [bold]extends[/bold] another one in the same push is
    pushed after it. The server validates every file and its problems are printed as
    FILE:LINE:COL: field.path: message. Exit status: 0 all stored, 1 a file was refused,
    2 usage error.

    Examples:

      mien persona push web.yaml

      mien persona push personas/ --wait --timeout 10m

      mien persona push web.yaml --if-match '"v3-1a2b3c4d5e6f"'

      mien persona push kiosk.yaml --default
    """
    from mien.client import ClientError, InvalidDocument, PreconditionFailed

    wait_for = parse_duration(timeout, "--timeout")
    paths = _expand(files)
    if if_match and len(paths) > 1:
        fail("--if-match applies to one persona: push one file with it", 2)
    if default and len(paths) > 1:
        fail("--default makes one persona the fleet's default: push one file with it", 2)
    peeked = [(p, *_peek(p)) for p in paths]
    results: list[dict[str, Any]] = []
    changed: dict[str, int] = {}
    stored_at: list[datetime] = []  # the server's time of each new version
    with cc.client(conn) as api:
        for i in parents_first(peeked):
            path, name, _extends = peeked[i]
            try:
                action, stored = _push_one(api, path, name, if_match)
            except InvalidDocument as exc:
                lines = problem_lines(exc.problems, path) or [f"{path}: {exc.message}"]
                if output is OutputFormat.table:  # with json they are in the document
                    for line in lines:
                        sys.stderr.write(line + "\n")
                results.append({"file": str(path), "error": exc.message, "problems": lines})
                continue
            except PreconditionFailed as exc:
                if output is OutputFormat.table:
                    info(f"{path}: {exc.message}")
                results.append({"file": str(path), "error": exc.message})
                continue
            except ClientError as exc:
                if exc.status is None or exc.status >= 500 or exc.status in (401, 403):
                    raise  # the server or the token, not this file: stop here
                if output is OutputFormat.table:
                    info(f"{path}: {exc}")
                results.append({"file": str(path), "error": str(exc)})
                continue
            if action != "unchanged":
                changed[stored.name] = stored.version
                stored_at.append(stored.created_at)
            results.append({"file": str(path), "action": action, **_summary(stored)})
            if output is OutputFormat.table:
                _push_report(action, stored, path)
        failed = [r for r in results if "error" in r]
        if default and not failed and results:
            from mien.cli.fleet.personas import announce_default

            made = api.set_default_persona(str(results[0]["name"]))
            results[0]["default"] = made.model_dump(mode="json")
            if output is OutputFormat.table:
                announce_default(made)
        if output is OutputFormat.json:
            cc.dump(results)
        if len(paths) > 1 and output is OutputFormat.table:
            info(f"{len(paths) - len(failed)} of {len(paths)} file(s) stored")
        if wait and changed:
            _wait_rollout(api, changed, wait_for, min(stored_at))
        if failed:
            fail(f"{len(failed)} of {len(paths)} file(s) refused", 1)


def _summary(stored: PersonaVersion) -> dict[str, Any]:
    return {
        "name": stored.name,
        "version": stored.version,
        "content_hash": stored.content_hash,
        "etag": stored.etag,
        "warnings": [w.text for w in stored.warnings],
        "notes": stored.notes,
    }


def _wait_rollout(api: Client, versions: dict[str, int], timeout: float, since: datetime) -> None:
    """Follow the instances whose desired persona is one of those just stored."""
    from mien.cli.fleet.rollout import report_rollout, watch_rollout

    names = sorted(versions)

    def fetch() -> list[Any]:
        out = []
        for name in names:
            out.extend(api.list_instances(persona=name))
        return out

    def current(inst: Any) -> bool:
        # An activation may pin an older version on purpose: that instance is not part of
        # this rollout's news, but it has nothing newer to wait for either.
        pinned = inst.desired.source == "activation"
        wanted = versions.get(inst.desired.persona, 0)
        return bool(pinned or (inst.desired.version or 0) >= wanted)

    title = "rollout of " + ", ".join(names)
    state = watch_rollout(api, title, fetch, timeout, current, since)
    if state.total == 0:
        info(f"{title}: no instance runs {'them' if len(names) > 1 else 'it'}; nothing to wait for")
        return
    if not report_rollout(state, title, timeout):
        fail(f"{title} did not converge", 1)


def register(app: typer.Typer) -> None:
    app.command("push")(cc.connected(push_cmd))
    # Listed first in ``mien persona --help``: it is where one starts.
    app.registered_commands.insert(0, app.registered_commands.pop())
