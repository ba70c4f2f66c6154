"""``mien customize``: your own layer over any persona, and the files saved from your edits.

Thin over :class:`mien.agent.engine.Engine` (``customize``, ``customizations``,
``saved_content``, ``keep_saved``), with the options and helpers of
:mod:`mien.cli.machine.commands`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from mien.cli import common
from mien.cli.common import OutputFormat
from mien.cli.machine.commands import OUTPUT, ROOT, USER, _engine, _guard, _result_json
from mien.cli.machine.output import print_result

if TYPE_CHECKING:
    from mien.agent.outcomes import ApplyResult

customize_app = typer.Typer(
    name="customize",
    help=(
        "Your own layer over any persona, kept across switches.\n\n"
        "  mien customize set os_settings.theme light\n"
        "  mien customize unset os_settings.theme\n"
        "  mien customize list\n"
        "  mien customize show 3     # print saved file #3\n"
        "  mien customize adopt 3    # keep it as your version of its file, and apply\n"
        "  mien customize drop 3     # stop keeping it (the persona's content returns)\n\n"
        "Keys are persona key paths (quote parts containing dots: "
        'application_configuration.app.values."a.b"). Values are read as YAML, so 8080 is a '
        "number and '[a, b]' a list. Keys a persona locks are refused. As a normal user, "
        "set, unset and list go through the agent's socket (`mien agent run` or `mien agent "
        "serve-socket`) and act on your customizations only; show, adopt and drop need root."
    ),
    no_args_is_help=True,
)


def _answer(
    output: OutputFormat, data: dict[str, Any], message: str, result: ApplyResult | None
) -> None:
    """Say what changed: ``data`` plus the apply it caused (JSON), or ``message`` and the
    apply's result (people)."""
    if output is OutputFormat.json:
        common.print_json({**data, "applied": _result_json(result) if result else None})
        return
    common.info(message)
    if result is not None:
        print_result(result)


def _via_socket(
    root: Path, output: OutputFormat, data: dict[str, Any], key: str, value: Any, unset: bool
) -> bool:
    """As a normal user, ask the agent (its socket) to change your customization; the
    agent knows who you are from the kernel. False for root (the engine is used)."""
    from mien.cli.machine.local_backend import BackendError, Socket, uses_socket

    if not uses_socket(root):
        return False
    try:
        outcome = Socket(root).customize(key, value, unset=unset)
    except BackendError as exc:
        common.fail(str(exc), exc.status)
    if output is OutputFormat.json:
        common.print_json({**data, "message": outcome.message, "changes": outcome.changes})
    else:
        common.info(outcome.message)
    return True


def _list_via_socket(root: Path, output: OutputFormat) -> bool:
    import json

    from mien.cli.machine.local_backend import BackendError, Socket, uses_socket

    if not uses_socket(root):
        return False
    try:
        items = Socket(root).customizations()
    except BackendError as exc:
        common.fail(str(exc), exc.status)
    if output is OutputFormat.json:
        common.print_json(
            {"customizations": [c.model_dump(mode="json") for c in items], "saved_files": []}
        )
    elif not items:
        common.info("no customizations")
    else:
        rows = [[c.key, json.dumps(c.value), c.source] for c in items]
        common.table(["key", "value", "from"], rows, title="customizations")
    return True


@customize_app.command("set")
def customize_set(
    key: str = typer.Argument(..., help="Persona key path, e.g. os_settings.theme"),
    value: str = typer.Argument(..., help="Value (YAML: 8080, true, '[a, b]', text)."),
    root: Path = ROOT,
    user: str | None = USER,
    output: OutputFormat = OUTPUT,
) -> None:
    """Set KEY to VALUE over any persona and apply it now."""
    import yaml

    try:
        parsed = yaml.safe_load(value) if value.strip() else value
    except yaml.YAMLError:
        parsed = value
    if _via_socket(root, output, {"key": key, "value": parsed}, key, parsed, False):
        return
    engine = _engine(root, user)
    result = _guard(engine.customize, key, parsed)
    _answer(
        output, {"key": key, "value": parsed}, f"customization {key} = {parsed!r} stored", result
    )


@customize_app.command("unset")
def customize_unset(
    key: str = typer.Argument(...),
    root: Path = ROOT,
    user: str | None = USER,
    output: OutputFormat = OUTPUT,
) -> None:
    """Remove a customization (the persona's value applies again)."""
    if _via_socket(root, output, {"key": key, "removed": True}, key, None, True):
        return
    engine = _engine(root, user)
    result = _guard(engine.customize, key, unset=True)
    _answer(output, {"key": key, "removed": True}, f"customization {key} removed", result)


@customize_app.command("list")
def customize_list(root: Path = ROOT, output: OutputFormat = OUTPUT) -> None:
    """Show your customizations and the files saved from your edits."""
    import datetime as dt
    import json

    if _list_via_socket(root, output):
        return
    engine = _engine(root, None)
    items, saved = _guard(engine.customizations)
    if output is OutputFormat.json:
        common.print_json(
            {
                "customizations": [
                    {
                        "key": c.key,
                        "value": c.value,
                        "source": c.source,
                        "origin": c.origin,
                        "origin_uid": c.origin_uid,
                    }
                    for c in items
                ],
                "saved_files": [
                    {
                        "id": s.id,
                        "path": s.path,
                        "sha256": s.hash,
                        "persona": s.persona,
                        "saved_at": s.saved_at,
                        "uid": s.uid,
                        "kept": s.kept,
                        "size": s.size,
                    }
                    for s in saved
                ],
            }
        )
        return
    if not items and not saved:
        common.info("no customizations")
        return
    if items:
        common.table(
            ["key", "value", "from"],
            [
                [c.key, json.dumps(c.value), c.source + (f" ({c.origin})" if c.origin else "")]
                for c in items
            ],
            title="customizations",
        )
    if saved:
        common.table(
            ["#", "path", "owner", "bytes", "saved", "persona", "status"],
            [
                [
                    s.id,
                    s.path,
                    "?" if s.uid is None else f"uid {s.uid}",
                    s.size,
                    dt.datetime.fromtimestamp(s.saved_at).isoformat(timespec="seconds"),
                    s.persona,
                    "kept: written whenever mien writes this file for its owner"
                    if s.kept
                    else "copy (`mien customize adopt N` keeps it)",
                ]
                for s in saved
            ],
            title="saved files (your edits of managed files; `mien customize show N` prints one)",
        )


@customize_app.command("show")
def customize_show(
    number: int = typer.Argument(..., help="Saved file number (from `mien customize list`)."),
    root: Path = ROOT,
    output: OutputFormat = OUTPUT,
) -> None:
    """Print saved file N as it was saved (at most 64 KiB; the rest is counted)."""
    import base64

    from mien.agent.kept_files import SHOW_CAP

    engine = _engine(root, None)
    item, data = _guard(engine.saved_content, number)
    if output is OutputFormat.json:
        common.print_json(
            {
                "id": item.id,
                "path": item.path,
                "size": len(data),
                "kept": item.kept,
                "content_base64": base64.b64encode(data[:SHOW_CAP]).decode(),
                "truncated": len(data) > SHOW_CAP,
            }
        )
        return
    sys.stdout.buffer.write(data[:SHOW_CAP])
    sys.stdout.buffer.flush()
    if len(data) > SHOW_CAP:
        common.info(f"... {len(data) - SHOW_CAP} more bytes not shown (saved file #{item.id})")


@customize_app.command("adopt")
def customize_adopt(
    number: int = typer.Argument(..., help="Saved file number (from `mien customize list`)."),
    root: Path = ROOT,
    user: str | None = USER,
    output: OutputFormat = OUTPUT,
) -> None:
    """Keep saved file N as your version of its file, and apply it now.

    It is written whenever a persona manages that path, while the user who owned it when
    it was saved owns the file.
    """
    engine = _engine(root, user)
    result = _guard(engine.keep_saved, number, True)
    _answer(output, {"saved": number, "kept": True}, f"saved file #{number} is kept", result)


@customize_app.command("drop")
def customize_drop(
    number: int = typer.Argument(..., help="Saved file number (from `mien customize list`)."),
    root: Path = ROOT,
    user: str | None = USER,
    output: OutputFormat = OUTPUT,
) -> None:
    """Stop keeping saved file N (the persona's content applies again; the copy stays)."""
    engine = _engine(root, user)
    result = _guard(engine.keep_saved, number, False)
    _answer(
        output, {"saved": number, "kept": False}, f"saved file #{number} is no longer kept", result
    )


def register(app: typer.Typer) -> None:
    app.add_typer(customize_app)
