"""``mien instance activate|clear-activation|exec|commands``: asking a machine to do
something, and following it until its agent answers.

An activation is asynchronous on the server (pending → applying → applied | failed); the
command waits for the agent's outcome by default and exits 0 only when the agent reported
it applied. A remote command runs through the instance's routing table; its stdout,
stderr and exit status become this command's own (126 when the persona refuses it).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from mien.cli.common import OutputFormat, fail, info, warn
from mien.cli.fleet import common as cc
from mien.cli.fleet.args import COMMAND_NAME, parse_duration
from mien.cli.fleet.config import Connection
from mien.cli.fleet.instances import ID

if TYPE_CHECKING:
    from mien.client import Client
    from mien.protocol import Activation, CommandRecord

WAIT_TIMED_OUT = 124
"""Exit status when the result did not arrive in time (as timeout(1) uses it)."""
REFUSED = 126


def activate_cmd(
    instance_id: ID,
    persona: Annotated[str, typer.Argument(metavar="PERSONA", help="Persona name.")],
    version: Annotated[
        int | None, typer.Option("--version", "-v", min=1, help="Pin a version (default: latest).")
    ] = None,
    wait: Annotated[
        bool,
        typer.Option("--wait/--no-wait", help="Wait for the agent's outcome (default) or not."),
    ] = True,
    timeout: Annotated[
        str, typer.Option("--timeout", metavar="DURATION", help="How long to wait.")
    ] = "2m",
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """Ask an instance to run a persona, and wait until its agent applied it or failed.

    The activation takes precedence over bindings until cleared (clear-activation). The
    progress pending → applying → applied | failed is shown as the agent reports it.
    Exit status: 0 applied, 1 failed (the agent's error is printed), superseded, cancelled
    or not finished within --timeout; with --no-wait, 0 once the server accepted it (the
    activation id is printed).

    Examples:

      mien instance activate vm-0042 web

      mien instance activate vm-0042 web --version 3 --timeout 10m

      id=$(mien instance activate vm-0042 web --no-wait)
    """
    wait_for = parse_duration(timeout, "--timeout")
    with cc.client(conn) as api:
        instance_id = api.find_instance(instance_id).id
        if wait:
            _warn_offline(api, instance_id)
        activation = api.activate(instance_id, persona, version=version)
        if not wait:
            if output is OutputFormat.json:
                cc.dump(activation)
            else:
                sys.stdout.write(activation.id + "\n")
                info(
                    f"{instance_id}: {persona} v{activation.version} {activation.status}; "
                    f"follow with: mien instance show {instance_id}"
                )
            return
        from mien.cli.fleet.rollout import wait_activation

        final = wait_activation(api, activation, wait_for)
        if final is None:
            final = api.get_activation(activation.id)
            if output is OutputFormat.json:
                cc.dump(final)
            fail(
                f"{instance_id}: activation {activation.id} is still {final.status} after "
                f"{wait_for:g}s; it goes on: follow with mien instance show {instance_id}"
            )
    if output is OutputFormat.json:
        cc.dump(final)
    _outcome(final)


def _warn_offline(api: Client, instance_id: str) -> None:
    from mien.client import NotFound

    try:
        inst = api.get_instance(instance_id)
    except NotFound:
        return  # the activation itself says so
    if not inst.connected:
        warn(
            f"{instance_id} is offline (last seen {cc.ago(inst.last_seen)}): it applies the "
            "persona when its agent reconnects"
        )


def _outcome(final: Activation) -> None:
    where = f"{final.instance_id}: {final.persona} v{final.version}"
    if final.status == "applied":
        info(f"{where} applied ({cc.short_hash(final.applied_hash)})")
        return
    if final.status == "failed":
        error = (final.error or "no error message").rstrip()
        fail(
            f"{where} failed; the agent reported:\n{error}\nThe instance still runs what it ran before."
        )
    if final.status == "superseded":
        fail(f"{where}: superseded by a newer activation before it applied")
    fail(f"{where}: cancelled (the activation was cleared or the instance deleted)")


def clear_cmd(
    instance_id: ID, output: cc.OutputOpt = OutputFormat.table, *, conn: Connection
) -> None:
    """Drop the instance's explicit activation: it follows its bindings (or the default
    persona) again.

    Example:

      mien instance clear-activation vm-0042
    """
    from mien.cli.fleet.instances import desired_text

    with cc.client(conn) as api:
        instance_id = api.find_instance(instance_id).id
        api.clear_activation(instance_id)
        inst = api.get_instance(instance_id)
    if output is OutputFormat.json:
        cc.dump(inst)
        return
    info(f"{instance_id}: activation cleared; desired now {desired_text(inst.desired)}")


def exec_cmd(
    instance_id: ID,
    command: Annotated[
        list[str], typer.Argument(metavar="-- CMD [ARG]...", help="The command and its arguments.")
    ],
    timeout: Annotated[
        str,
        typer.Option("--timeout", metavar="DURATION", help="How long the command may run there."),
    ] = "60s",
    wait: Annotated[
        str | None,
        typer.Option(
            "--wait",
            metavar="DURATION",
            help="How long to wait for the result, the agent's pick-up included "
            "(default: --timeout plus 30s).",
        ),
    ] = None,
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """Run a command on an instance through its persona's routing table.

    The remote stdout and stderr are printed here as they came and this command exits with
    the remote exit status: a restricted command is refused (126, with the persona's
    message), an overridden one runs its replacement. CMD is a bare command name (the
    agent finds it on the machine). 124 when no result came within --wait (the command
    may still run; see mien instance commands ID); 1 when it could not be sent or expired
    unpicked.

    Examples:

      mien instance exec vm-0042 -- uptime

      mien instance exec vm-0042 --timeout 5m -- apt-get -s upgrade

      mien instance exec vm-0042 -o json -- df -h | jq .stdout
    """
    if not command:
        fail("give the command after --, e.g. mien instance exec ID -- uptime", 2)
    name, args = command[0], command[1:]
    if not COMMAND_NAME.match(name):
        fail(
            f"{name!r}: give a bare command name (no path, spaces or quotes); the agent finds "
            "it through the persona's routing table and PATH",
            2,
        )
    run_for = parse_duration(timeout, "--timeout")
    if run_for > 3600:
        fail("--timeout: at most 1h", 2)
    wait_for = parse_duration(wait, "--wait") if wait else run_for + 30
    record = _run(conn, instance_id, name, args, run_for, wait_for)
    if output is OutputFormat.json:
        cc.dump(record)
    else:
        sys.stdout.write(record.stdout)
        sys.stdout.flush()
        sys.stderr.write(record.stderr)
    raise typer.Exit(_exit_status(record, name, wait_for))


def _run(
    conn: Connection, instance_id: str, name: str, args: list[str], run_for: float, wait_for: float
) -> CommandRecord:
    import time

    deadline = time.monotonic() + wait_for
    # One request waits at most this long (the server caps it too); then ask again.
    step = 25.0
    with cc.client(conn, timeout=step + 30) as api:
        instance_id = api.find_instance(instance_id).id
        record = api.run_command(instance_id, name, args, timeout=run_for, wait=min(step, wait_for))
        while record.status not in ("done", "expired"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            record = api.get_command(instance_id, record.id, wait=min(step, remaining))
    return record


def _exit_status(record: CommandRecord, name: str, wait_for: float) -> int:
    where = record.instance_id
    if record.status == "expired":
        fail(f"{where}: {name}: expired before the agent picked it up (is the agent running?)")
    if record.status != "done":
        picked = "is running" if record.status == "sent" else "was not picked up yet"
        info(
            f"mien: {where}: {name} {picked} after {wait_for:g}s; its result will be at "
            f"mien instance commands {where} (command {record.id})"
        )
        return WAIT_TIMED_OUT
    if record.stdout_truncated or record.stderr_truncated:
        warn(f"{where}: output truncated by the server (it keeps 64 KiB of each stream)")
    if record.error:
        info(f"mien: {where}: {record.error}")
    if record.refused:
        if not record.stderr.strip():
            info(f"mien: {where}: {name}: refused by the persona's routing table")
        return REFUSED
    status = record.exit_status if record.exit_status is not None else 1
    return 128 - status if status < 0 else min(status, 255)  # killed by a signal: 128+N


def commands_cmd(
    instance_id: ID,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="How many.")] = 20,
    output: cc.OutputOpt = OutputFormat.table,
    *,
    conn: Connection,
) -> None:
    """Recent remote commands of an instance, newest first, with their outcome.

    Example:

      mien instance commands vm-0042 --limit 5
    """
    with cc.client(conn) as api:
        items = api.list_commands(api.find_instance(instance_id).id, limit=limit)
    if output is OutputFormat.json:
        cc.dump(items)
        return
    if not items:
        info(f"{instance_id}: no remote commands yet")
        return
    rows = [
        [
            c.id[:8],
            " ".join([c.command, *c.args]),
            c.status,
            "refused" if c.refused else ("" if c.exit_status is None else c.exit_status),
            c.created_by,
            cc.local_time(c.created_at),
        ]
        for c in items
    ]
    cc.table(["command id", "command", "status", "exit", "by", "at"], rows)


def register(app: typer.Typer) -> None:
    app.command("activate")(cc.connected(activate_cmd))
    app.command("clear-activation")(cc.connected(clear_cmd))
    app.command("exec")(cc.connected(exec_cmd))
    app.command("commands")(cc.connected(commands_cmd))
